"""Symbolic tracing of the derivative rules: ``Symbol`` records NumPy code as it runs.

A Symbol is a node of an expression tree that also carries the real value it
stands for, so shapes, dtypes and the rules' shape-dependent branches
(``a.ndim == 1``) are known while a rule runs. Running a rule of
``microad.rules`` on Symbols records exactly the NumPy calls that the engine
makes, which is how ``microad.explain`` prints equations without a second
table of formulas.

Node kinds (``Symbol.kind``):

- ``name``: a named array (``op`` is the name), such as ``dlogits`` or ``X``;
- ``literal``: a constant (``value`` is the Python or NumPy object);
- ``tuple`` / ``list``: a sequence with Symbols inside (``args``);
- ``binop`` / ``unary``: a Python operator (``op`` is ``"*"``, ``">"``, ...);
- ``call``: a function such as ``np.exp`` or the helper ``scatter_add``;
- ``method``: ``args[0].op(*args[1:], **kwargs)``, such as ``g.sum(axis=0)``;
- ``attr``: ``args[0].T``;
- ``index``: ``args[0][args[1]]``, where ``args[1]`` is a literal index.

Every walk over a tree is iterative (:func:`postorder`).
"""

from __future__ import annotations

import keyword
import math
import operator

import numpy as np

from .errors import UnsupportedError

# Helper primitives whose forward has no plain NumPy expression: the
# generated code calls a function of the same name (see microad.codegen).
HELPER_PRIMITIVES = frozenset({"scatter_add"})

_BINARY_UFUNCS = {
    np.add: "+", np.subtract: "-", np.multiply: "*", np.divide: "/", np.power: "**",
    np.matmul: "@", np.greater: ">", np.greater_equal: ">=", np.less: "<",
    np.less_equal: "<=", np.equal: "==", np.not_equal: "!=", np.bitwise_and: "&",
    np.bitwise_or: "|",
}
_UNARY_UFUNCS = {np.negative: "-", np.invert: "~"}

OPERATOR_FUNCTIONS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "**": operator.pow, "@": operator.matmul, ">": operator.gt, ">=": operator.ge,
    "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    "&": operator.and_, "|": operator.or_,
}

# Python operator precedence, higher binds tighter.
COMPARE, OR, AND, SUM, PRODUCT, UNARY, POWER, NUMBER, POSTFIX = 5, 6, 8, 11, 12, 13, 14, 15, 16
_BINARY_PRECEDENCE = {
    ">": COMPARE, ">=": COMPARE, "<": COMPARE, "<=": COMPARE, "==": COMPARE, "!=": COMPARE,
    "|": OR, "&": AND, "+": SUM, "-": SUM, "*": PRODUCT, "/": PRODUCT, "@": PRODUCT,
    "**": POWER,
}


def values_of(obj):
    """Replace every Symbol in ``obj`` (nested tuples and lists too) by its value."""
    if isinstance(obj, Symbol):
        return obj.value
    if isinstance(obj, (tuple, list)) and any(_contains_symbol(x) for x in obj):
        return type(obj)(values_of(x) for x in obj)
    return obj


def _contains_symbol(obj) -> bool:
    if isinstance(obj, Symbol):
        return True
    if isinstance(obj, (tuple, list)):
        return any(_contains_symbol(x) for x in obj)
    return False


def lift(obj) -> "Symbol":
    """Return ``obj`` as a Symbol: a literal, or a sequence node when it contains Symbols."""
    if isinstance(obj, Symbol):
        return obj
    if isinstance(obj, (tuple, list)) and _contains_symbol(obj):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        items = tuple(lift(x) for x in obj)
        return Symbol(kind, None, items, (), values_of(obj))
    return Symbol("literal", None, (), (), obj)


def numpy_path(func) -> str:
    """Return the source name of a NumPy function, such as ``np.broadcast_to``."""
    name = getattr(func, "__name__", None)
    if name and getattr(np, name, None) is func:
        return f"np.{name}"
    module = getattr(func, "__module__", "") or ""
    if module.startswith("numpy"):
        return "np" + module[len("numpy"):] + "." + name
    raise UnsupportedError(f"{func!r} is not a NumPy function, so it cannot be written as "
                           "NumPy source. Rules may only call np.* functions")


class Symbol:
    """An expression tree node plus the real value it stands for.

    >>> import numpy as np
    >>> g = Symbol.name("dY", np.ones((2, 3)))
    >>> logits = Symbol.name("logits", np.array([[1.0, -1.0, 2.0], [0.0, 3.0, -2.0]]))
    >>> mask = g * (logits > 0)
    >>> python_source(mask)
    'dY * (logits > 0)'
    >>> mask.value
    array([[1., 0., 1.],
           [0., 1., 0.]])
    """

    __slots__ = ("kind", "op", "args", "kwargs", "value", "definition")
    # Above Tensor's 100, so mixed operations dispatch to the Symbol.
    __array_priority__ = 200

    def __init__(self, kind, op, args=(), kwargs=(), value=None, definition=None):
        self.kind = kind
        self.op = op
        self.args = args
        self.kwargs = kwargs
        self.value = value
        # For a name: the tree that the step of that name computes, so the
        # simplifier can look through it (see microad.explain).
        self.definition = definition

    @classmethod
    def name(cls, name, value, definition=None):
        return cls("name", name, (), (), value, definition)

    def __repr__(self):
        return f"Symbol({python_source(self)!r}, shape={self.shape})"

    __hash__ = object.__hash__

    # -- array attributes ---------------------------------------------------

    @property
    def shape(self):
        return np.shape(self.value)

    @property
    def ndim(self):
        return np.ndim(self.value)

    @property
    def size(self):
        return int(np.size(self.value))

    @property
    def dtype(self):
        return np.asarray(self.value).dtype

    @property
    def T(self):
        return Symbol("attr", "T", (self,), (), np.asarray(self.value).T)

    def __len__(self):
        return len(self.value)

    def __bool__(self):
        raise UnsupportedError(
            f"the truth value of {python_source(self)} depends on the data, so a rule that "
            "branches on it cannot be written as one equation. Branch on shapes or "
            "parameters instead, or use np.where")

    def __array__(self, dtype=None, copy=None):
        raise UnsupportedError(
            f"{python_source(self)} was converted to a plain ndarray, which would drop it from "
            "the equation. Rules may only use the np.* functions that microad.functions "
            "registers")

    # -- methods that rules call --------------------------------------------

    def _method(self, name, args, kwargs, value):
        lifted = tuple(lift(a) for a in args)
        lifted_kwargs = tuple((k, lift(v)) for k, v in kwargs.items())
        return Symbol("method", name, (self,) + lifted, lifted_kwargs, value)

    def sum(self, axis=None, keepdims=False):
        value = np.sum(self.value, axis=axis, keepdims=keepdims)
        return self._method("sum", (), {"axis": axis, "keepdims": keepdims}, value)

    def mean(self, axis=None, keepdims=False):
        value = np.mean(self.value, axis=axis, keepdims=keepdims)
        return self._method("mean", (), {"axis": axis, "keepdims": keepdims}, value)

    def max(self, axis=None, keepdims=False):
        value = np.max(self.value, axis=axis, keepdims=keepdims)
        return self._method("max", (), {"axis": axis, "keepdims": keepdims}, value)

    def min(self, axis=None, keepdims=False):
        value = np.min(self.value, axis=axis, keepdims=keepdims)
        return self._method("min", (), {"axis": axis, "keepdims": keepdims}, value)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        value = np.reshape(self.value, shape)
        return self._method("reshape", (tuple(shape),), {}, value)

    def transpose(self, *axes):
        value = np.transpose(self.value, axes or None)
        return self._method("transpose", axes, {}, value)

    def astype(self, dtype):
        dtype = np.dtype(dtype)
        value = np.asarray(self.value).astype(dtype)
        return self._method("astype", (dtype,), {}, value)

    def __getitem__(self, index):
        if _contains_symbol(index):
            raise UnsupportedError(f"indexing {python_source(self)} with a traced array is not "
                                   "supported. Index with constants")
        return Symbol("index", None, (self, lift(index)), (), np.asarray(self.value)[index])

    # -- NumPy protocols ----------------------------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise UnsupportedError(f"np.{ufunc.__name__}.{method} with arguments "
                                   f"{sorted(kwargs)} cannot be traced. Call the ufunc directly")
        if ufunc in _BINARY_UFUNCS:
            return _binary(_BINARY_UFUNCS[ufunc], inputs[0], inputs[1])
        if ufunc in _UNARY_UFUNCS:
            return _unary(_UNARY_UFUNCS[ufunc], inputs[0])
        value = ufunc(*[values_of(x) for x in inputs])
        return Symbol("call", f"np.{ufunc.__name__}", tuple(lift(x) for x in inputs), (), value)

    def __array_function__(self, func, types, args, kwargs):
        value = func(*values_of(args), **{k: values_of(v) for k, v in kwargs.items()})
        lifted = tuple(lift(a) for a in args)
        lifted_kwargs = tuple((k, lift(v)) for k, v in kwargs.items())
        return Symbol("call", numpy_path(func), lifted, lifted_kwargs, value)

    def __microad_function__(self, primitive, args, params):
        if primitive.name in HELPER_PRIMITIVES:
            values = {key: values_of(param) for key, param in params.items()}
            value = primitive.forward(*values_of(args), **values)
            lifted_args = tuple(lift(a) for a in args)
            lifted_kwargs = tuple((key, lift(param)) for key, param in params.items())
            return Symbol("call", primitive.name, lifted_args, lifted_kwargs, value)
        # Other helpers (unbroadcast_to) are plain NumPy: trace their forward.
        return primitive.forward(*args, **params)

    # -- operators ----------------------------------------------------------

    def __add__(self, other):
        return _binary("+", self, other)

    def __radd__(self, other):
        return _binary("+", other, self)

    def __sub__(self, other):
        return _binary("-", self, other)

    def __rsub__(self, other):
        return _binary("-", other, self)

    def __mul__(self, other):
        return _binary("*", self, other)

    def __rmul__(self, other):
        return _binary("*", other, self)

    def __truediv__(self, other):
        return _binary("/", self, other)

    def __rtruediv__(self, other):
        return _binary("/", other, self)

    def __pow__(self, other):
        return _binary("**", self, other)

    def __rpow__(self, other):
        return _binary("**", other, self)

    def __matmul__(self, other):
        return _binary("@", self, other)

    def __rmatmul__(self, other):
        return _binary("@", other, self)

    def __and__(self, other):
        return _binary("&", self, other)

    def __rand__(self, other):
        return _binary("&", other, self)

    def __or__(self, other):
        return _binary("|", self, other)

    def __ror__(self, other):
        return _binary("|", other, self)

    def __gt__(self, other):
        return _binary(">", self, other)

    def __ge__(self, other):
        return _binary(">=", self, other)

    def __lt__(self, other):
        return _binary("<", self, other)

    def __le__(self, other):
        return _binary("<=", self, other)

    def __eq__(self, other):
        return _binary("==", self, other)

    def __ne__(self, other):
        return _binary("!=", self, other)

    def __neg__(self):
        return _unary("-", self)

    def __pos__(self):
        return self

    def __invert__(self):
        return _unary("~", self)

    def __abs__(self):
        return np.absolute(self)


def _binary(op, left, right):
    left, right = lift(left), lift(right)
    value = OPERATOR_FUNCTIONS[op](left.value, right.value)
    return Symbol("binop", op, (left, right), (), value)


def _unary(op, operand):
    operand = lift(operand)
    value = -operand.value if op == "-" else ~operand.value
    return Symbol("unary", op, (operand,), (), value)


# ---------------------------------------------------------------------------
# Tree walks
# ---------------------------------------------------------------------------

def children(node):
    """Return the Symbols that ``node`` reads directly: its arguments, then keyword values."""
    return node.args + tuple(value for _, value in node.kwargs)


def postorder(root):
    """Return every node of the tree under ``root`` once, each after its children."""
    order = []
    seen = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in reversed(children(node)):
            if id(child) not in seen:
                stack.append((child, False))
    return order


def names_read(root) -> tuple:
    """Return the names that the tree reads, in order of first appearance."""
    found = []
    for node in postorder(root):
        if node.kind == "name" and node.op not in found:
            found.append(node.op)
    return tuple(found)


def rebuild(node, new_children):
    """Return a copy of ``node`` with its children replaced, keeping its value."""
    count = len(node.args)
    args = tuple(new_children[:count])
    kwargs = tuple((key, value) for (key, _), value in zip(node.kwargs, new_children[count:]))
    return Symbol(node.kind, node.op, args, kwargs, node.value, node.definition)


# ---------------------------------------------------------------------------
# Python source
# ---------------------------------------------------------------------------

def identifier(text: str) -> str:
    """Turn a label into a valid Python identifier (``W 1`` becomes ``W_1``)."""
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(text)) or "t"
    if cleaned[0].isdigit():
        cleaned = "t" + cleaned
    if keyword.iskeyword(cleaned):
        cleaned += "_"
    return cleaned


def _float_source(x: float) -> str:
    if math.isnan(x):
        return "np.nan"
    if math.isinf(x):
        return "np.inf" if x > 0 else "-np.inf"
    return repr(float(x))


class ArrayNames:
    """Names for the arrays that appear as constants in the source (index arrays, seeds).

    Small arrays are written inline. A larger one, or one in ``known`` (id of
    an array to a name), gets a name: its ``known`` name or ``const0``,
    ``const1``, ... Named arrays become parameters of the generated code.
    """

    INLINE_SIZE = 16

    def __init__(self, known=None, claim=None):
        self.known = dict(known or {})
        self.claim = claim or (lambda base: base)
        self.named = {}      # id(array) -> name
        self.arrays = []     # (name, array), in order of first use

    def source(self, array) -> str:
        if id(array) in self.named:
            return self.named[id(array)]
        if id(array) not in self.known and (array.ndim == 0 or array.size <= self.INLINE_SIZE):
            return _inline_array(array)
        name = self.known.get(id(array)) or self.claim(f"const{len(self.arrays)}")
        self.named[id(array)] = name
        self.arrays.append((name, array))
        return name


def _inline_array(array) -> str:
    dtype = f"np.{array.dtype.name}"
    if array.ndim == 0:
        item = array.item()
        if array.dtype.kind == "f":
            return f"{dtype}({_float_source(item)})"
        return f"{dtype}({item!r})"
    if array.ndim == 1 and array.dtype == np.arange(1).dtype \
            and np.array_equal(array, np.arange(array.size)):
        return f"np.arange({array.size})"
    body = repr(array.tolist()).replace("inf", "np.inf").replace("nan", "np.nan")
    if np.array(array.tolist()).dtype == array.dtype:
        return f"np.array({body})"
    return f"np.array({body}, dtype={dtype})"


def literal_source(value, arrays=None) -> tuple:
    """Return ``(source, precedence)`` of a literal value."""
    if isinstance(value, (bool, np.bool_)) and not isinstance(value, np.ndarray):
        if isinstance(value, bool):
            return repr(value), POSTFIX
        return f"np.bool_({bool(value)})", POSTFIX

    if isinstance(value, int):
        return repr(value), (UNARY if value < 0 else NUMBER)
    if isinstance(value, float):
        text = _float_source(value)
        return text, (UNARY if text.startswith("-") else NUMBER)
    if isinstance(value, np.generic):
        return _inline_array(np.asarray(value)), POSTFIX

    if isinstance(value, np.ndarray):
        arrays = arrays or ArrayNames()
        return arrays.source(value), POSTFIX
    if isinstance(value, np.dtype):
        return f"np.{value.name}", POSTFIX
    if isinstance(value, type) and issubclass(value, np.generic):
        return f"np.{value.__name__}", POSTFIX

    if isinstance(value, slice):
        parts = [literal_source(part, arrays)[0] for part in (value.start, value.stop, value.step)]
        return f"slice({', '.join(parts)})", POSTFIX
    if value is Ellipsis:
        return "...", POSTFIX
    if isinstance(value, tuple):
        items = [literal_source(x, arrays)[0] for x in value]
        return ("(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"), POSTFIX
    if isinstance(value, list):
        return "[" + ", ".join(literal_source(x, arrays)[0] for x in value) + "]", POSTFIX
    if value is None or isinstance(value, str):
        return repr(value), POSTFIX
    raise UnsupportedError(f"the constant {value!r} of type {type(value).__name__} cannot be "
                           "written as NumPy source")


def index_source(index, arrays=None) -> str:
    """Return the text between the brackets of ``x[index]``."""
    parts = index if isinstance(index, tuple) else (index,)
    texts = []
    for part in parts:
        if isinstance(part, slice):
            bounds = ["" if b is None else literal_source(b, arrays)[0]
                      for b in (part.start, part.stop)]
            text = ":".join(bounds)
            if part.step is not None:
                text += ":" + literal_source(part.step, arrays)[0]
            texts.append(text)
        else:
            texts.append(literal_source(part, arrays)[0])
    if isinstance(index, tuple) and len(index) == 1 and not isinstance(index[0], slice):
        return texts[0] + ","
    if isinstance(index, tuple) and not index:
        return "()"
    return ", ".join(texts)


def _wrap(text_and_precedence, minimum):
    text, precedence = text_and_precedence
    return text if precedence >= minimum else f"({text})"


def python_source(root, arrays=None) -> str:
    """Return the NumPy source of the tree under ``root``."""
    rendered = {}
    for node in postorder(root):
        rendered[id(node)] = _render_node(node, rendered, arrays)
    return rendered[id(root)][0]


def _render_node(node, rendered, arrays):
    def text(child, minimum=0):
        return _wrap(rendered[id(child)], minimum)

    kind = node.kind
    if kind == "name":
        return node.op, POSTFIX + 1
    if kind == "literal":
        return literal_source(node.value, arrays)
    if kind in ("tuple", "list"):
        items = [text(child) for child in node.args]
        if kind == "list":
            return "[" + ", ".join(items) + "]", POSTFIX
        return ("(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"), POSTFIX
    if kind == "binop":
        precedence = _BINARY_PRECEDENCE[node.op]
        left, right = node.args
        if node.op == "**":
            return f"{text(left, POWER + 1)} ** {text(right, UNARY)}", POWER
        if precedence == COMPARE:
            return f"{text(left, COMPARE + 1)} {node.op} {text(right, COMPARE + 1)}", COMPARE
        return f"{text(left, precedence)} {node.op} {text(right, precedence + 1)}", precedence
    if kind == "unary":
        return f"{node.op}{text(node.args[0], POWER)}", UNARY
    if kind == "attr":
        return f"{text(node.args[0], POSTFIX)}.{node.op}", POSTFIX
    if kind == "index":
        return f"{text(node.args[0], POSTFIX)}[{index_source(node.args[1].value, arrays)}]", POSTFIX
    arguments = [text(child) for child in (node.args[1:] if kind == "method" else node.args)]
    for key, value in node.kwargs:
        if key == "index" and value.kind == "literal":
            # np.s_ turns bracket syntax into the index object: np.s_[1:, [0, 2]].
            arguments.append(f"index=np.s_[{index_source(value.value, arrays)}]")
        else:
            arguments.append(f"{key}={text(value)}")
    if kind == "method":
        return f"{text(node.args[0], POSTFIX)}.{node.op}({', '.join(arguments)})", POSTFIX
    return f"{node.op}({', '.join(arguments)})", POSTFIX

