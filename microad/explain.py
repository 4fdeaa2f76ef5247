"""The backward pass written out as named equations, derived from the engine's own rules.

:func:`derive` walks the graph in the order that ``microad.backprop.walk``
does and runs each primitive's VJP rule from ``microad.rules`` on
:class:`~microad.symbolic.Symbol` tracers. Each recorded expression becomes a
:class:`Step`, such as ``dlogits = dY * (logits > 0)``, so the equations are
the code that the engine runs, not a second table of formulas. The engine's
own work gets steps of its own: ``unbroadcast`` (summing broadcast axes away)
and ``accumulate`` (adding the gradients of a tensor used more than once).

Names: a tensor's label comes from :func:`microad.graph.label_tensors`, and
its gradient is ``d`` + label (``dlogits``). A gradient that reaches a tensor
from one of several consumers is ``dx_from_t3``. A rule's result before
un-broadcasting is ``db_broadcast``, and a shared subexpression is ``dx_tmp``.

:func:`explain` formats the steps as text, Markdown, LaTeX or runnable NumPy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from . import rules
from .errors import BackwardError, MicroadError, ShapeError
from .graph import is_tensor, label_tensors, topological_order
from .symbolic import (HELPER_PRIMITIVES, OPERATOR_FUNCTIONS, ArrayNames, Symbol, children,
                       identifier, index_source, lift, literal_source, names_read, postorder,
                       python_source, rebuild)

logger = logging.getLogger(__name__)

_RESERVED = frozenset({"np", "forward_backward"}) | HELPER_PRIMITIVES
_ELEMENTWISE = frozenset({"+", "-", "*", "/", "**"})
# Keyword arguments equal to NumPy's defaults, left out of the source.
_DEFAULT_KEYWORDS = {
    "sum": {"axis": None, "keepdims": False},
    "mean": {"axis": None, "keepdims": False},
    "max": {"axis": None, "keepdims": False},
    "min": {"axis": None, "keepdims": False},
    "transpose": {"axes": None},
}


@dataclass
class Step:
    """One assignment of the derivation: ``target = expression``.

    ``tensor`` is the forward Tensor whose value (in the forward pass) or
    gradient (in the backward pass) ``target`` is, or None for a temporary.
    ``primitive`` is the name of the primitive whose forward or VJP rule the
    step runs, or ``"seed"``, ``"unbroadcast"`` or ``"accumulate"`` for the
    engine's own steps. ``tree`` is the expression as a
    :class:`~microad.symbolic.Symbol` tree, which the LaTeX writer reads.
    """

    target: str
    expression: str
    reads: tuple
    tensor: object
    shape: tuple
    primitive: str
    tree: Symbol = field(repr=False, compare=False, default=None)

    def __str__(self):
        return f"{self.target} = {self.expression}"


@dataclass
class Derivation:
    """The forward and backward passes of one graph as lists of :class:`Step`.

    ``inputs`` lists ``(name, tensor)`` for the leaves, in graph order;
    ``constants`` lists ``(name, array)`` for arrays that the source reads
    by name (large index arrays). ``gradients`` lists ``(name, tensor)``
    for the leaves that require grad. ``seed`` is the name of the output's
    gradient: a step of its own (1) for a one-element output, else an
    input of the backward pass.
    """

    output: object
    output_name: str
    seed: str
    seed_is_input: bool
    inputs: list
    constants: list
    forward: list
    steps: list
    gradients: list
    helpers: frozenset
    _gradient_labels: dict = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------------------
# Simplification: drop factors that change nothing, keep the numbers
# ---------------------------------------------------------------------------

def _same_array_type(a, b) -> bool:
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return False
    return np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype


def _is_literal(node, number) -> bool:
    if node.kind != "literal" or isinstance(node.value, (bool, np.bool_)):
        return False
    value = node.value
    return isinstance(value, (int, float, np.number)) and value == number


def _is_broadcast(node):
    """Return the operand of ``np.broadcast_to(operand, shape)`` written inline, else None.

    A named step (a tensor's gradient, such as ``dt1 = np.broadcast_to(dt2, ...)``)
    is kept as it is, so that the next step reads it and no listed step is a dead end.
    """
    if node.kind == "call" and node.op == "np.broadcast_to":
        return node.args[0]
    return None


def _simplify_node(node):
    """Return a simpler node with the same value, shape and dtype, or ``node`` itself."""
    kind, op = node.kind, node.op
    if kind == "binop":
        left, right = node.args
        if op == "*" and _is_literal(right, 1) and _same_array_type(left.value, node.value):
            return left
        if op == "*" and _is_literal(left, 1) and _same_array_type(right.value, node.value):
            return right
        if op == "/" and _is_literal(right, 1) and _same_array_type(left.value, node.value):
            return left
        if op in ("+", "-") and _is_literal(right, 0) and _same_array_type(left.value, node.value):
            return left
        if op == "+" and _is_literal(left, 0) and _same_array_type(right.value, node.value):
            return right

        if op in _ELEMENTWISE:
            return _drop_broadcasts(node)
        return node
    if kind == "unary" and op == "-" and node.args[0].kind == "unary" and node.args[0].op == "-":
        return node.args[0].args[0]

    # Calls and methods that return their operand unchanged.
    operand = node.args[0] if node.args else None
    unchanged = operand is not None and _same_array_type(operand.value, node.value)
    if kind == "method" and op in ("reshape", "astype") and unchanged:
        return operand
    if kind == "method" and op == "sum" and unchanged and dict(node.kwargs)["axis"].value == ():
        return operand
    if kind == "call" and op in ("np.broadcast_to", "np.reshape", "np.expand_dims") and unchanged:
        return operand
    if kind == "attr" and op == "T" and unchanged and np.ndim(node.value) < 2:
        return operand

    if kind == "call" and op == "np.expand_dims" and len(node.args) == 2:
        axis = node.args[1]
        if axis.kind == "literal" and isinstance(axis.value, tuple) and len(axis.value) == 1:
            node = rebuild(node, [operand, lift(axis.value[0])] + [v for _, v in node.kwargs])
    if kind in ("method", "call"):
        return _tidy_keywords(node)
    return node


def _drop_broadcasts(node):
    """Drop an explicit broadcast_to from an operand that the operator broadcasts anyway."""
    left, right = node.args
    for position in (0, 1):
        inner = _is_broadcast(node.args[position])
        if inner is None:
            continue
        trial = [left, right]
        trial[position] = inner
        try:
            with np.errstate(all="ignore"):
                value = OPERATOR_FUNCTIONS[node.op](trial[0].value, trial[1].value)
        except (TypeError, ValueError):
            continue
        if _same_array_type(value, node.value):
            left, right = trial
    if left is node.args[0] and right is node.args[1]:
        return node
    return Symbol("binop", node.op, (left, right), (), node.value)


def _tidy_keywords(node):
    """Leave out keywords equal to NumPy's defaults, and write ``axis=(1,)`` as ``axis=1``."""
    defaults = _DEFAULT_KEYWORDS.get(node.op.removeprefix("np."), {})
    remaining = []
    for key, value in node.kwargs:
        literal = value.value if value.kind == "literal" else value
        if key in defaults and type(literal) is type(defaults[key]) and literal == defaults[key]:
            continue
        if key == "axis" and isinstance(literal, tuple) and len(literal) == 1:
            value = lift(literal[0])
        remaining.append((key, value))
    unchanged = all(new is old for (_, new), (_, old) in zip(remaining, node.kwargs))
    if len(remaining) == len(node.kwargs) and unchanged:
        return node
    return Symbol(node.kind, node.op, node.args, tuple(remaining), node.value, node.definition)


def simplify(root):
    """Return the tree under ``root`` with trivial factors removed, bottom-up."""
    replaced = {}
    for node in postorder(root):
        old_kids = children(node)
        kids = [replaced[id(child)] for child in old_kids]
        if any(new is not old for new, old in zip(kids, old_kids)):
            node_new = rebuild(node, kids)
        else:
            node_new = node
        replaced[id(node)] = _simplify_node(node_new)
    return replaced[id(root)]

# ---------------------------------------------------------------------------
# Derivation
# ---------------------------------------------------------------------------

class _Deriver:
    """State of one derivation: the names in use, the steps so far, the constants."""

    def __init__(self, root, names, gradient):
        self.root = root
        self.order = topological_order(root, grad_only=False)
        self.used = set(_RESERVED)
        self.labels = {}
        raw_labels = label_tensors(self.order, names)
        for tensor in self.order:
            self.labels[id(tensor)] = self.claim(raw_labels[id(tensor)])
        self.grad_names = {}
        self.gradient_labels = {}   # gradient name -> label, for LaTeX
        self.arrays = ArrayNames(self._known_arrays(names), self.claim)
        self.helpers = set()
        self.forward = []
        self.steps = []
        self.symbols = {id(t): Symbol.name(self.labels[id(t)], t.data) for t in self.order}
        self.gradient = gradient

    def _known_arrays(self, names):
        """Map ids of arrays to the names that the source may use for them."""
        known = {}
        for tensor in self.order:
            if tensor._node is None:
                known[id(tensor.data)] = self.labels[id(tensor)]
        for key, value in (names or {}).items():
            if not isinstance(key, str) or key.startswith("_"):
                continue
            for array in (value, getattr(value, "data", None)):
                if isinstance(array, np.ndarray) and id(array) not in known:
                    known[id(array)] = identifier(key)
        return known

    def claim(self, base) -> str:
        """Reserve a new identifier based on ``base`` (``base_2``, ... when it is taken)."""
        base = identifier(base)
        name, suffix = base, 2
        while name in self.used:
            name = f"{base}_{suffix}"
            suffix += 1
        self.used.add(name)
        return name

    def grad_name(self, tensor) -> str:
        if id(tensor) not in self.grad_names:
            label = self.labels[id(tensor)]
            name = self.claim("d" + label)
            self.grad_names[id(tensor)] = name
            self.gradient_labels[name] = label
        return self.grad_names[id(tensor)]

    # -- steps --------------------------------------------------------------

    def add_step(self, steps, target, tree, primitive, tensor):
        for node in postorder(tree):
            if node.kind == "call" and node.op in HELPER_PRIMITIVES:
                self.helpers.add(node.op)
        source = python_source(tree, self.arrays)
        steps.append(Step(target, source, names_read(tree), tensor, tuple(np.shape(tree.value)),
                          primitive, tree))
        logger.debug("%s = %s", target, source)
        return Symbol.name(target, tree.value, definition=tree)

    def emit(self, steps, target, tree, primitive, tensor):
        """Simplify ``tree``, split off shared parts, and add it as the step ``target``."""
        tree = simplify(lift(tree))
        if tree.kind == "call" and tree.op == "np.broadcast_to" \
                and tree.args[0].kind not in ("name", "literal"):
            # The scaling before the broadcast (g / n of a mean) is a step of
            # its own, so that the next elementwise step can skip the broadcast.
            reduced = self.emit(steps, self.claim(target + "_reduced"), tree.args[0],
                                primitive, None)
            tree = simplify(rebuild(tree, [reduced] + list(children(tree)[1:])))
        tree = self._hoist_shared(steps, tree, target, primitive)
        return self.add_step(steps, target, tree, primitive, tensor)

    def _hoist_shared(self, steps, tree, target, primitive):
        """Give every subexpression used more than once its own step, computed once."""
        references = {}
        for node in postorder(tree):
            for child in children(node):
                references[id(child)] = references.get(id(child), 0) + 1
        replaced = {}
        for node in postorder(tree):
            old_kids = children(node)
            kids = [replaced[id(child)] for child in old_kids]
            new = node
            if any(a is not b for a, b in zip(kids, old_kids)):
                new = rebuild(node, kids)
            shared = references.get(id(node), 0) >= 2
            if shared and node.kind not in ("name", "literal", "tuple", "list"):
                new = self.add_step(steps, self.claim(target + "_tmp"), new, primitive, None)
            replaced[id(node)] = new
        return replaced[id(tree)]

    # -- forward ------------------------------------------------------------

    def trace_forward(self):
        inputs = []
        for tensor in self.order:
            node = tensor._node
            label = self.labels[id(tensor)]
            if node is None:
                inputs.append((label, tensor))
                continue
            args = [self.symbols[id(x)] if is_tensor(x) else x for x in node.inputs]
            primitive = node.primitive
            if primitive.name in HELPER_PRIMITIVES:
                tree = Symbol.__microad_function__(args[0], primitive, args, node.params)
            else:
                tree = primitive.forward(*args, **node.params)
            self.emit(self.forward, label, tree, primitive.name, tensor)
        return inputs

    # -- backward -----------------------------------------------------------

    def seed(self):
        root = self.root
        name = self.grad_name(root)
        if self.gradient is not None:
            value = np.asarray(getattr(self.gradient, "data", self.gradient))
            if value.shape != root.shape:
                raise ShapeError(f"derive(): the gradient for {self.labels[id(root)]} has shape "
                                 f"{value.shape}, but the output has shape {root.shape}. Pass "
                                 "an upstream gradient of exactly the output's shape")
            return Symbol.name(name, value.astype(root.dtype)), True
        if root.size != 1:
            # The equations do not depend on the upstream values, so ones stand in for them.
            return Symbol.name(name, np.ones(root.shape, dtype=root.dtype)), True
        if root.shape == () and root.dtype == np.float64:
            seed = lift(1.0)  # reads as plain 1.0, and NumPy treats it as float64 anyway
        else:
            seed = lift(np.ones(root.shape, dtype=root.dtype))
        return self.add_step(self.steps, name, seed, "seed", root), False

    def trace_backward(self, seed):
        order = topological_order(self.root)
        expected = {}
        for tensor in order:
            for argnum, operand in _differentiable_operands(tensor):
                expected[id(operand)] = expected.get(id(operand), 0) + 1

        pending = {}
        for tensor in reversed(order):
            if tensor is self.root:
                g = seed
            else:
                parts = pending.pop(id(tensor), None)
                if not parts:
                    continue
                g = parts[0] if len(parts) == 1 else self._accumulate(tensor, parts)
            node = tensor._node
            if node is None:
                continue
            for argnum, operand in _differentiable_operands(tensor):
                several = expected[id(operand)] > 1
                if several:
                    consumer = self.labels[id(tensor)]
                    target = self.claim(f"{self.grad_name(operand)}_from_{consumer}")
                else:
                    target = self.grad_name(operand)
                part = self._contribution(tensor, argnum, operand, g, target,
                                          None if several else operand)
                pending.setdefault(id(operand), []).append(part)

    def _contribution(self, tensor, argnum, operand, g, target, owner):
        node = tensor._node
        primitive = node.primitive
        out = self.symbols[id(tensor)]
        args = [self.symbols[id(x)] if is_tensor(x) else x for x in node.inputs]
        if primitive.variadic:
            grad = primitive.vjps[0](g, out, *args, argnum=argnum, **node.params)
        else:
            grad = primitive.vjps[argnum](g, out, *args, **node.params)
        grad = lift(grad)

        kind = primitive.name
        if np.shape(grad.value) != operand.shape:
            # The engine's un-broadcasting (backprop._fit) is a step of its own.
            if grad.kind != "name":
                grad = self.emit(self.steps, self.claim(target + "_broadcast"), grad, kind, None)
            grad = lift(rules.unbroadcast_to(grad, shape=operand.shape))
            kind = "unbroadcast"
            if np.shape(grad.value) != operand.shape:
                raise MicroadError(f"the rule of {primitive.name} for input {argnum} returned "
                                   f"shape {np.shape(grad.value)}, which does not reduce to the "
                                   f"input shape {operand.shape}. This is a bug in that rule")
        if np.asarray(grad.value).dtype != operand.dtype:
            grad = grad.astype(operand.dtype)
        return self.emit(self.steps, target, grad, kind, owner)

    def _accumulate(self, tensor, parts):
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return self.emit(self.steps, self.grad_name(tensor), total, "accumulate", tensor)


def _differentiable_operands(tensor):
    """Yield ``(argnum, operand)`` for each input that receives a gradient from ``tensor``."""
    node = tensor._node
    if node is None:
        return
    for argnum, operand in enumerate(node.inputs):
        if not getattr(operand, "requires_grad", False):
            continue
        if not node.primitive.variadic and node.primitive.vjps[argnum] is None:
            continue
        yield argnum, operand


def derive(root, names=None, *, gradient=None) -> Derivation:
    """Derive the forward and backward passes of ``root`` as named NumPy steps.

    ``names`` (such as ``locals()``) gives tensors their labels, as in
    :func:`microad.graph.label_tensors`. A one-element ``root`` is seeded
    with 1. For any other, the upstream gradient ``d<label>`` is an input,
    with the value ``gradient`` when given (else ones stand in for it).

    >>> import numpy as np
    >>> import microad as ma
    >>> X = ma.Tensor(np.ones((5, 5)), name="X")
    >>> W = ma.Tensor(np.ones((5, 3)), requires_grad=True, name="W")
    >>> logits = X @ W
    >>> Y = np.maximum(logits, 0)
    >>> for step in derive(Y, locals()).steps:
    ...     print(step, step.shape)
    dlogits = dY * (logits > 0) (5, 3)
    dW = X.T @ dlogits (5, 3)
    """
    if not is_tensor(root):
        raise MicroadError(f"derive() needs a microad Tensor, got {type(root).__name__}. Build "
                           "the output from Tensors so that microad records the graph")
    if not root.requires_grad:
        raise BackwardError(
            f"derive(): {getattr(root, 'name', None) or 'the output'} {root.shape} does not "
            "require grad, so it has no backward pass. Create the inputs with "
            "requires_grad=True, for example Tensor(W, requires_grad=True)")
    deriver = _Deriver(root, names, gradient)
    inputs = deriver.trace_forward()
    seed, seed_is_input = deriver.seed()
    deriver.trace_backward(seed)

    gradients = [(deriver.grad_name(t), t) for label, t in inputs if t.requires_grad]
    return Derivation(
        output=root, output_name=deriver.labels[id(root)], seed=seed.op,
        seed_is_input=seed_is_input, inputs=inputs, constants=list(deriver.arrays.arrays),
        forward=deriver.forward, steps=deriver.steps, gradients=gradients,
        helpers=frozenset(deriver.helpers), _gradient_labels=deriver.gradient_labels)


# ---------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------

_LATEX_OPERATORS = {">": ">", ">=": r"\geq", "<": "<", "<=": r"\leq", "==": "=", "!=": r"\neq",
                    "&": r"\land", "|": r"\lor", "+": "+", "-": "-"}
_LATEX_FUNCTIONS = {"np.exp": r"\exp", "np.log": r"\log", "np.tanh": r"\tanh", "np.sin": r"\sin",
                    "np.cos": r"\cos"}
_ATOM = 100
_CONDITIONS = frozenset({">", ">=", "<", "<=", "==", "!=", "&", "|"})


def _latex_escape(text: str) -> str:
    for char in "\\{}_%#&$^~":
        text = text.replace(char, "\\" + char if char not in "\\^~" else r"\char`" + char)
    return text


class _LatexWriter:
    """Render trees as LaTeX for MathJax: d-notation, ``\\odot`` and ``\\mathbb{1}[...]`` masks."""

    def __init__(self, gradient_labels, arrays):
        self.gradient_labels = gradient_labels
        self.arrays = arrays

    def name(self, name: str) -> str:
        label = self.gradient_labels.get(name)
        if label is not None:
            return "d" + self.name(label)
        base, _, suffix = name.rpartition("_")
        while base and base not in self.gradient_labels:
            base, _, more = base.rpartition("_")
            suffix = more + "_" + suffix
        if base:
            # A temporary of a gradient: dx_from_t3 is dx with the subscript "from t3".
            words = _latex_escape(suffix.replace("_", " ")).replace(" ", r"\ ")
            return f"{self.name(base)}_{{\\mathrm{{{words}}}}}"
        if len(name) == 1:
            return name
        return r"\mathit{" + _latex_escape(name) + "}"

    def code(self, text: str) -> str:
        return r"\mathtt{" + _latex_escape(text) + "}"

    def tree(self, root) -> str:
        rendered = {}
        conditions = {}   # id of a comparison or & node -> its text without the 1[...]
        for node in postorder(root):
            rendered[id(node)] = self._node(node, rendered, conditions)
        return rendered[id(root)][0]

    def _node(self, node, rendered, conditions):
        def text(child, minimum=0):
            body, precedence = rendered[id(child)]
            return body if precedence >= minimum else rf"\left({body}\right)"

        kind, op = node.kind, node.op
        if kind == "name":
            return self.name(op), _ATOM
        if kind == "literal":
            return self._literal(node.value)
        if kind in ("tuple", "list"):
            return "(" + ", ".join(text(child) for child in node.args) + ")", _ATOM
        if kind == "binop":
            left, right = node.args
            if op == "/":
                return rf"\frac{{{text(left)}}}{{{text(right)}}}", _ATOM
            if op == "**":
                return f"{{{text(left, _ATOM)}}}^{{{text(right)}}}", _ATOM
            if op in ("*", "@"):
                if op == "*" and 0 not in (np.ndim(left.value), np.ndim(right.value)):
                    joint = r" \odot "
                else:
                    joint = r" \, "
                return f"{text(left, 12)}{joint}{text(right, 12)}", 12
            if op in _CONDITIONS:
                # A boolean array reads as an indicator: 1[x > 0], 1[x >= lo and x <= hi].
                if op in ("&", "|"):
                    parts = [conditions.get(id(child)) or text(child) for child in (left, right)]
                else:
                    parts = [text(left, 11), text(right, 11)]
                conditions[id(node)] = f"{parts[0]} {_LATEX_OPERATORS[op]} {parts[1]}"
                return rf"\mathbb{{1}}[{conditions[id(node)]}]", _ATOM
            return f"{text(left, 11)} {_LATEX_OPERATORS[op]} {text(right, 12)}", 11
        if kind == "unary":
            sign = "-" if op == "-" else r"\lnot "
            return f"{sign}{text(node.args[0], 12)}", 12
        if kind == "attr":
            return f"{{{text(node.args[0], _ATOM)}}}^\\top", _ATOM
        if kind == "index":
            index = self.code(index_source(node.args[1].value, self.arrays))
            return f"{text(node.args[0], _ATOM)}[{index}]", _ATOM
        if kind == "call" and op == "np.sqrt":
            return rf"\sqrt{{{text(node.args[0])}}}", _ATOM
        arguments = [text(child) for child in (node.args[1:] if kind == "method" else node.args)]
        for key, value in node.kwargs:
            arguments.append(rf"\mathrm{{{_latex_escape(key)}}}{{=}}{text(value)}")
        if kind == "method":
            arguments.insert(0, text(node.args[0]))
        function = _LATEX_FUNCTIONS.get(op)
        if function is None:
            function = rf"\operatorname{{{_latex_escape(op.removeprefix('np.'))}}}"
        return rf"{function}\left({', '.join(arguments)}\right)", _ATOM

    def _literal(self, value):
        if isinstance(value, (bool, np.bool_)):
            return rf"\mathrm{{{bool(value)}}}", _ATOM
        if isinstance(value, (int, float, np.integer, np.floating)) \
                and not isinstance(value, np.ndarray):
            number = float(value)
            if np.isnan(number):
                return r"\mathrm{NaN}", _ATOM
            if np.isinf(number):
                return (r"\infty" if number > 0 else r"-\infty"), (_ATOM if number > 0 else 12)
            text = repr(int(value)) if number.is_integer() and abs(number) < 1e15 else repr(number)
            return text, (12 if text.startswith("-") else _ATOM)
        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
            return self._literal(value.item())
        return self.code(literal_source(value, self.arrays)[0]), _ATOM


# ---------------------------------------------------------------------------
# The formats
# ---------------------------------------------------------------------------

_FORMATS = ("text", "latex", "markdown", "numpy")


def _shape_text(shape) -> str:
    return "scalar" if shape == () else str(tuple(shape))


class Explanation:
    """The backward pass of one output, ready to print in several formats.

    ``str()`` gives the format chosen in :func:`explain`. ``steps`` and
    ``derivation`` give the structured form.
    """

    def __init__(self, derivation: Derivation, format: str = "text"):
        if format not in _FORMATS:
            raise MicroadError(f"explain(): unknown format {format!r}. Use one of "
                               f"{', '.join(repr(f) for f in _FORMATS)}")
        self.derivation = derivation
        self.format = format

    @property
    def steps(self):
        return self.derivation.steps

    def __str__(self):
        if self.format == "latex":
            return self.to_latex()
        if self.format == "markdown":
            return self.to_markdown()
        if self.format == "numpy":
            return self.to_numpy()
        return self.to_text()

    def __repr__(self):
        return f"<Explanation of {self.derivation.output_name}: {len(self.steps)} steps>"

    def _heading(self) -> str:
        d = self.derivation
        shape = _shape_text(tuple(d.output.shape))
        if d.seed_is_input:
            return f"Backward pass of {d.output_name} {shape}, from the upstream gradient {d.seed}:"
        if shape == "scalar":
            shape = "(scalar)"
        return f"Backward pass of {d.output_name} {shape}, seeded with {d.seed} = 1:"

    def to_text(self) -> str:
        """Return the steps as aligned ``target = expression   # shape`` lines."""
        lines = [self._heading()]
        width = max((len(step.target) for step in self.steps), default=0)
        body = [f"  {step.target:<{width}} = {step.expression}" for step in self.steps]
        column = min(max((len(line) for line in body), default=0), 72)
        for line, step in zip(body, self.steps):
            lines.append(f"{line:<{column}}  # {_shape_text(step.shape)}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Return the steps as a Markdown table: equation, shape and the rule it comes from."""
        lines = [self._heading(), "", "| # | equation | shape | from |", "|---|---|---|---|"]
        for number, step in enumerate(self.steps, start=1):
            equation = str(step).replace("|", r"\|")
            shape = _shape_text(step.shape)
            lines.append(f"| {number} | `{equation}` | {shape} | {step.primitive} |")
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """Return the steps as a LaTeX ``aligned`` block, without the ``$$`` delimiters."""
        d = self.derivation
        arrays = ArrayNames({id(array): name for name, array in d.constants})
        writer = _LatexWriter(d._gradient_labels, arrays)
        rows = []
        for step in self.steps:
            shape = r"\quad " + r"\text{" + _shape_text(step.shape) + "}"
            rows.append(f"{writer.name(step.target)} &= {writer.tree(step.tree)} {shape}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def to_numpy(self) -> str:
        """Return a runnable NumPy module, as :func:`microad.codegen.numpy_source` writes it."""
        from .codegen import numpy_source
        return numpy_source(self.derivation)

    def _repr_markdown_(self):
        return self.to_markdown()

    def _repr_latex_(self):
        return "$$" + self.to_latex() + "$$"


def explain(y, names=None, *, format="text", gradient=None) -> Explanation:
    """Write out the backward pass of ``y`` as named equations, in the order the engine runs them.

    ``format`` chooses what ``str()`` gives: ``"text"``, ``"latex"``,
    ``"markdown"`` or ``"numpy"`` (a runnable function). The other formats
    stay available as ``to_text()``, ``to_latex()``, ``to_markdown()`` and
    ``to_numpy()``. ``names`` and ``gradient`` are as in :func:`derive`.

    >>> import numpy as np
    >>> import microad as ma
    >>> X = ma.Tensor(np.ones((5, 5)), name="X")
    >>> W = ma.Tensor(np.ones((5, 3)), requires_grad=True, name="W")
    >>> logits = X @ W
    >>> Y = np.maximum(logits, 0)
    >>> print(explain(Y, locals()))
    Backward pass of Y (5, 3), from the upstream gradient dY:
      dlogits = dY * (logits > 0)  # (5, 3)
      dW      = X.T @ dlogits      # (5, 3)
    """
    return Explanation(derive(y, names, gradient=gradient), format)


def run_explain(args, stream=None) -> int:
    """Run ``microad explain FILE.py``: write the chosen format of the file's output to ``stream``.

    This is the command's entry point, so it writes to standard output by default.
    """
    import sys

    from .script import load_graph_file

    graph = load_graph_file(args.file, args.output_name)
    explanation = explain(graph.output, graph.namespace, format=args.format,
                          gradient=graph.gradient)
    text = str(explanation)
    if args.format == "latex":
        text = "$$\n" + text + "\n$$\n"  # display math, ready to paste into a MathJax page
    if not text.endswith("\n"):
        text += "\n"
    (stream or sys.stdout).write(text)
    return 0
