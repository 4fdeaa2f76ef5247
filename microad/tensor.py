"""The Tensor, the graph node, and the one function that records an op.

A Tensor wraps an ndarray. Every differentiable op goes through :func:`apply`,
which runs the primitive's NumPy forward and, when an input requires grad,
links the result to a :class:`Node` that remembers the primitive, its inputs
and its parameters. ``backward()`` walks those nodes; nothing else is stored.
"""

from __future__ import annotations

import traceback

import numpy as np

from . import backprop as _backprop
from . import rules
from .errors import DTypeError, MicroadError, ShapeError, UnsupportedError, describe
from .mode import grad_mode as _grad_mode
from .mode import modification_clock as _clock

# Filled by microad.functions: NumPy callables that record the graph.
HANDLED_FUNCTIONS: dict = {}
HANDLED_UFUNCS: dict = {}
# Ufuncs that are one primitive each (np.tanh, np.multiply, ...): dispatched
# straight to apply(), the shortest path for the most common ops.
UFUNC_PRIMITIVES: dict = {}
# Ufuncs whose result carries no gradient (comparisons, rounding, tests):
# they run on the data and return a Tensor outside the graph.
NON_DIFFERENTIABLE_UFUNCS = frozenset({
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not,
    np.isfinite, np.isnan, np.isinf, np.signbit, np.sign,
    np.floor, np.ceil, np.trunc, np.rint,
})

_DIFFERENTIABLE_KINDS = "f"
_ACCEPTED_KINDS = "biuf"
_NO_PARAMS: dict = {}


# ---------------------------------------------------------------------------
# Graph node and the op recorder
# ---------------------------------------------------------------------------

class Node:
    """How a tensor was made: the primitive, its inputs and its parameters.

    ``inputs`` contains Tensors and, for scalar constants, plain Python numbers.
    ``datas`` are the arrays (and scalars) that the forward read, which the
    rules read again. ``epoch`` is the modification clock when the op ran:
    an input whose ``_version`` stamp is later was modified in place since,
    and backward refuses it. ``parents`` lists ``(argnum, tensor)`` for the inputs that require
    grad, the only ones that backward visits. ``trace`` is where the op was
    called, kept only under ``detect_anomaly()``. ``backward_done`` is set once
    ``backward()`` has started from this node's result.
    """

    __slots__ = ("primitive", "inputs", "datas", "params", "epoch", "parents", "trace",
                 "backward_done")

    def __init__(self, primitive, inputs, datas, params, epoch, parents, trace=None):
        self.primitive = primitive
        self.inputs = inputs
        self.datas = datas
        self.params = params
        self.epoch = epoch
        self.parents = parents
        self.trace = trace


def _as_operand(value, primitive):
    """Wrap an array operand as a constant Tensor; keep Python scalars as they are."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return value
    if isinstance(value, complex):
        raise DTypeError(f"{primitive.name}: complex operand {value!r} is not supported; "
                         "microad differentiates real arrays only")
    return Tensor(value)


def apply(primitive, args, params=_NO_PARAMS):
    """Run ``primitive`` on ``args`` and record it when an input requires grad."""
    # One pass over the operands, with Tensors (the common case) first: this
    # runs for every op, so its cost is the per-op overhead of the engine.
    inputs = []
    datas = []
    parents = []
    argnum = 0
    for arg in args:
        if arg.__class__ is Tensor or isinstance(arg, Tensor):
            datas.append(arg._data)
            if arg.requires_grad:
                parents.append((argnum, arg))
        elif arg.__class__ is float or arg.__class__ is int:
            datas.append(arg)  # a Python number stays a scalar constant
        else:
            arg = _as_operand(arg, primitive)
            datas.append(arg._data if isinstance(arg, Tensor) else arg)
        inputs.append(arg)
        argnum += 1
    inputs = tuple(inputs)

    try:
        if params:
            result = primitive.forward(*datas, **params)
        else:
            result = primitive.forward(*datas)  # most ops: no keyword dict to unpack
    except (ValueError, TypeError) as exc:
        raise _forward_error(primitive, inputs, exc) from exc
    if result.__class__ is not np.ndarray:
        result = np.asarray(result)

    out = Tensor.__new__(Tensor)
    out._data = result
    out._version = 0
    out.grad = None
    out.name = None
    if parents and _grad_mode.enabled:
        # Rules read this result (exp's rule uses it), so NumPy must refuse
        # writes into it through .data[...].
        result.setflags(write=False)  # half the cost of assigning flags.writeable
        trace = traceback.extract_stack(limit=12)[:-1] if _grad_mode.detect_anomaly else None
        out.requires_grad = True
        out._node = Node(primitive, inputs, tuple(datas), params, _clock.latest, tuple(parents),
                         trace)
    else:
        out.requires_grad = False
        out._node = None
    return out


def _forward_error(primitive, inputs, exc):
    """Turn a NumPy error from a forward into one that names the op and operands."""
    call = f"{primitive.name}({describe(inputs)})"
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    if primitive.hint is not None and len(tensors) == len(inputs):
        try:
            return ShapeError(f"{call}: {primitive.hint(*inputs)}")
        except (IndexError, AttributeError):
            pass
    message = str(exc)
    if "broadcast" in message:
        return ShapeError(f"{call}: shapes cannot be broadcast together. NumPy broadcasting "
                          "compares trailing axes, which must be equal or 1; reshape or "
                          "transpose an operand so that they match")
    return ShapeError(f"{call}: {message}")


# ---------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------

def _numpy_name(func) -> str:
    module = getattr(func, "__module__", None) or "numpy"
    module = "np" + module[len("numpy"):] if module.startswith("numpy") else module
    if module in ("np.core.fromnumeric", "np._core.fromnumeric", "np._core.multiarray",
                  "np.core.multiarray", "np._core.shape_base", "np.lib.shape_base"):
        module = "np"
    return f"{module}.{func.__name__}"


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _normalize_axis(axis, ndim, op):
    """Return ``axis`` as None or a sorted tuple of non-negative ints."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ShapeError(f"{op}: axis {a} is out of range for an array of {ndim} dimensions; "
                             f"use an axis from {-ndim} to {ndim - 1}")
        normalized.append(int(a) % max(ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"{op}: axis {axis} repeats an axis")
    return tuple(sorted(normalized))


class Tensor:
    """An ndarray that records the ops applied to it, for reverse-mode differentiation.

    Integer or boolean data that requires grad becomes float64; float data
    keeps its dtype. Comparisons return boolean Tensors outside the graph,
    usable as masks.

    >>> import microad as ma
    >>> W = ma.Tensor([[1.0, -2.0]], requires_grad=True, name="W")
    >>> loss = ma.maximum(W, 0).sum()
    >>> loss.backward()
    >>> W.grad
    array([[1., 0.]])
    """

    __slots__ = ("_data", "_version", "grad", "requires_grad", "name", "_node", "__weakref__")
    __array_priority__ = 100
    _is_microad_tensor = True  # the marker that graph.is_tensor reads

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Tensor):
            data = data.data
        array = np.asarray(data)
        kind = array.dtype.kind
        if kind not in _ACCEPTED_KINDS:
            label = f"{name!r}" if name else "Tensor"
            raise DTypeError(f"{label}: dtype {array.dtype} is not supported; microad works on "
                             "boolean, integer and real floating-point arrays. Convert the data "
                             "first, for example with np.asarray(data, dtype=float)")
        if requires_grad and kind not in _DIFFERENTIABLE_KINDS:
            array = array.astype(np.float64)
        self._data = array
        self._version = 0
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._node = None

    # -- properties ---------------------------------------------------------

    @property
    def data(self):
        """The ndarray. Assigning to it, ``t.data -= lr * g`` included, counts as a
        modification: backward through an op that saw the old value then raises."""
        return self._data

    @data.setter
    def data(self, value):
        self._data = np.asarray(value)
        self._version = _clock.tick()

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def T(self):
        return self.transpose()

    @property
    def is_leaf(self) -> bool:
        """True for a tensor that no recorded op made: an input or a parameter."""
        return self._node is None

    @property
    def op(self):
        """Name of the primitive that made this tensor, or None for a leaf."""
        return None if self._node is None else self._node.primitive.name

    @property
    def inputs(self):
        """The operands of the op that made this tensor (empty for a leaf)."""
        if self._node is None or self._node.inputs is None:
            return ()  # a leaf, or a graph released by backward(retain_graph=False)
        return self._node.inputs

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extras = []
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self.name is not None:
            extras.append(f"name={self.name!r}")
        if self.data.dtype != np.float64 and self.data.dtype.kind == "f":
            extras.append(f"dtype={self.data.dtype}")
        return "Tensor(" + ", ".join([body] + extras) + ")"

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def numpy(self):
        """Return the data as an ndarray (shared, not copied)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            raise UnsupportedError(
                f"converting {self.name or 'a tensor'} {self.shape} that requires grad to an "
                "ndarray would drop it from the graph. Call .detach() first, or read .data, "
                "if that is what you want; to keep the graph, use a NumPy function that "
                "microad supports (see microad.supported_functions())")
        if dtype is not None:
            return self.data.astype(dtype, copy=False)
        return self.data

    __hash__ = object.__hash__

    # -- graph --------------------------------------------------------------

    def detach(self):
        """Return a tensor with the same data outside the graph."""
        return Tensor(self.data, requires_grad=False, name=self.name)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on a leaf in place and return it."""
        if not self.is_leaf:
            raise MicroadError(f"requires_grad_ is for leaves; {self.name or 'this tensor'} "
                               f"was made by {self.op}. Use .detach() to start a new leaf")
        if requires_grad and self.data.dtype.kind not in _DIFFERENTIABLE_KINDS:
            self.data = self.data.astype(np.float64)
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self):
        """Forget the gradient stored in ``.grad``."""
        self.grad = None

    def backward(self, gradient=None, *, create_graph=False, keep_intermediate_grads=True,
                 retain_graph=True):
        """Compute the gradient of this tensor with respect to every tensor it depends on.

        See :func:`microad.backprop.backward` for the rules.
        """
        _backprop.backward(self, gradient, create_graph=create_graph,
                           keep_intermediate_grads=keep_intermediate_grads,
                           retain_graph=retain_graph)

    def __microad_function__(self, primitive, args, params):
        return apply(primitive, args, params)

    # -- NumPy protocols ----------------------------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        primitive = UFUNC_PRIMITIVES.get(ufunc)
        if primitive is not None and method == "__call__" and not kwargs:
            return apply(primitive, inputs)
        if method != "__call__":
            raise UnsupportedError(f"np.{ufunc.__name__}.{method} is not supported on Tensors; "
                                   "call the matching function instead (np.sum for np.add.reduce)")
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise UnsupportedError(f"np.{ufunc.__name__}: argument(s) {names} not supported on "
                                   "Tensors; microad never writes into out= arrays or masks "
                                   "ufuncs with where=. Use np.where or assign the result")
        if ufunc in NON_DIFFERENTIABLE_UFUNCS:
            return Tensor(ufunc(*[_data(x) for x in inputs]))
        handler = HANDLED_UFUNCS.get(ufunc)
        if handler is None:
            raise UnsupportedError(f"np.{ufunc.__name__} has no derivative rule in microad. "
                                   "See microad.supported_functions() for the list, or compose "
                                   "it from supported functions")
        return handler(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        handler = HANDLED_FUNCTIONS.get(func)
        if handler is None:
            tensors = [arg for arg in args if isinstance(arg, Tensor)]
            call = f"{_numpy_name(func)}({describe(tensors)})"
            raise UnsupportedError(f"{call}: this NumPy function is not supported on Tensors. "
                                   "See microad.supported_functions() for the list, or call it "
                                   "on t.detach().data if no gradient should flow through it")
        return handler(*args, **kwargs)

    # -- arithmetic ---------------------------------------------------------

    def __add__(self, other):
        return apply(rules.add, (self, other))

    def __radd__(self, other):
        return apply(rules.add, (other, self))

    def __sub__(self, other):
        return apply(rules.subtract, (self, other))

    def __rsub__(self, other):
        return apply(rules.subtract, (other, self))

    def __mul__(self, other):
        return apply(rules.multiply, (self, other))

    def __rmul__(self, other):
        return apply(rules.multiply, (other, self))

    def __truediv__(self, other):
        return apply(rules.divide, (self, other))

    def __rtruediv__(self, other):
        return apply(rules.divide, (other, self))

    def __pow__(self, exponent):
        return apply(rules.power, (self, exponent))

    def __rpow__(self, base):
        return apply(rules.power, (base, self))

    def __matmul__(self, other):
        return apply(rules.matmul, (self, other))

    def __rmatmul__(self, other):
        return apply(rules.matmul, (other, self))

    def __neg__(self):
        return apply(rules.negative, (self,))

    def __pos__(self):
        return self

    def __abs__(self):
        return apply(rules.absolute, (self,))

    # Comparisons give boolean masks outside the graph.
    def __gt__(self, other):
        return Tensor(self.data > _data(other))

    def __ge__(self, other):
        return Tensor(self.data >= _data(other))

    def __lt__(self, other):
        return Tensor(self.data < _data(other))

    def __le__(self, other):
        return Tensor(self.data <= _data(other))

    def __eq__(self, other):
        return Tensor(self.data == _data(other))

    def __ne__(self, other):
        return Tensor(self.data != _data(other))

    def __and__(self, other):
        return Tensor(self.data & _data(other))

    def __or__(self, other):
        return Tensor(self.data | _data(other))

    def __invert__(self):
        return Tensor(~self.data)

    # -- indexing -----------------------------------------------------------

    def __getitem__(self, index):
        if isinstance(index, tuple):
            index = tuple(_data(part) for part in index)
        else:
            index = _data(index)
        return apply(rules.getitem, (self,), {"index": index})

    def __setitem__(self, index, value):
        raise UnsupportedError(
            f"item assignment on {self.name or 'a tensor'} {self.shape} is not supported, "
            "since it would change a value that the graph may have saved. Build a new tensor "
            "instead, for example with microad.where(mask, new, old)")

    # -- reductions ---------------------------------------------------------

    def sum(self, axis=None, keepdims=False):
        axis = _normalize_axis(axis, self.ndim, "sum")
        return apply(rules.sum_, (self,), {"axis": axis, "keepdims": keepdims})

    def mean(self, axis=None, keepdims=False):
        axis = _normalize_axis(axis, self.ndim, "mean")
        return apply(rules.mean, (self,), {"axis": axis, "keepdims": keepdims})

    def max(self, axis=None, keepdims=False):
        axis = _normalize_axis(axis, self.ndim, "max")
        return apply(rules.max_, (self,), {"axis": axis, "keepdims": keepdims})

    def min(self, axis=None, keepdims=False):
        axis = _normalize_axis(axis, self.ndim, "min")
        return apply(rules.min_, (self,), {"axis": axis, "keepdims": keepdims})

    def var(self, axis=None, ddof=0, keepdims=False):
        """Variance, built from mean, subtract and multiply: var = sum((x - mean)^2) / (n - ddof)."""
        axis = _normalize_axis(axis, self.ndim, "var")
        count = self.size if axis is None else int(np.prod([self.shape[a] for a in axis]))
        centred = self - self.mean(axis=axis, keepdims=True)
        return (centred * centred).sum(axis=axis, keepdims=keepdims) / (count - ddof)

    def std(self, axis=None, ddof=0, keepdims=False):
        """Standard deviation, sqrt(var). Its gradient is infinite where var is 0."""
        return apply(rules.sqrt, (self.var(axis=axis, ddof=ddof, keepdims=keepdims),))

    # -- shape --------------------------------------------------------------

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return apply(rules.reshape, (self,), {"shape": shape})

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        if axes is not None and len(axes) == 0:
            axes = None
        if axes is not None:
            axes = tuple(int(a) % max(self.ndim, 1) for a in axes)
        return apply(rules.transpose, (self,), {"axes": axes})

    def swapaxes(self, axis1, axis2):
        axes = list(range(self.ndim))
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return self.transpose(tuple(axes))

    def flatten(self):
        return self.reshape(-1)

    ravel = flatten

    def squeeze(self, axis=None):
        if axis is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            axes = _normalize_axis(axis, self.ndim, "squeeze")
            for a in axes:
                if self.shape[a] != 1:
                    raise ShapeError(f"squeeze({describe([self])}): axis {a} has size "
                                     f"{self.shape[a]}, not 1; only axes of size 1 can go")
            shape = tuple(n for i, n in enumerate(self.shape) if i not in axes)
        return self.reshape(shape)

    def astype(self, dtype):
        """Cast without a gradient for non-float targets; float casts keep the graph."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            return Tensor(self.data.astype(dtype))
        return apply(rules.astype, (self,), {"dtype": dtype})
