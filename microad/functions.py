"""Public functions of microad, and the NumPy functions that dispatch to them.

Each function takes Tensors, ndarrays or scalars and returns a Tensor. The
``@implements`` decorator registers a function as the handler of a NumPy
function or ufunc, so ``np.maximum(logits, 0)`` on a Tensor records the same
graph as ``microad.maximum(logits, 0)``. Functions that are not primitives
are composed from primitives, so their gradients come from the derivative
table too.
"""

from __future__ import annotations

import numpy as np

from . import rules
from .errors import ShapeError, UnsupportedError, describe
from .tensor import (HANDLED_FUNCTIONS, HANDLED_UFUNCS, UFUNC_PRIMITIVES, Tensor, _normalize_axis,
                     apply)


def implements(*numpy_callables):
    """Register the decorated function as microad's version of NumPy callables."""
    def register(function):
        for callable_ in numpy_callables:
            if isinstance(callable_, np.ufunc):
                HANDLED_UFUNCS[callable_] = function
            else:
                HANDLED_FUNCTIONS[callable_] = function
        return function
    return register


def supported_functions() -> list[str]:
    """Return the names of the NumPy functions and ufuncs that record the graph on Tensors."""
    names = {f"np.{f.__name__}" for f in HANDLED_FUNCTIONS} | {f"np.{u.__name__}" for u in HANDLED_UFUNCS}
    return sorted(names)


def as_tensor(value) -> Tensor:
    """Return ``value`` as a Tensor, wrapping arrays and scalars as constants."""
    return value if isinstance(value, Tensor) else Tensor(value)


def _reject(op, **arguments):
    """Raise for NumPy keyword arguments that microad does not implement."""
    used = [name for name, value in arguments.items() if value is not None]
    if used:
        raise UnsupportedError(f"{op}: argument(s) {', '.join(used)} not supported on Tensors; "
                               "call it without them and convert the result afterwards")


# ---------------------------------------------------------------------------
# Elementwise
# ---------------------------------------------------------------------------

def _unary(primitive, numpy_ufunc):
    def function(x):
        return apply(primitive, (as_tensor(x),))
    function.__name__ = primitive.name
    function.__qualname__ = primitive.name
    function.__doc__ = f"Elementwise {primitive.name}; gradient rule: {primitive.math}."
    implements(numpy_ufunc)(function)
    UFUNC_PRIMITIVES[numpy_ufunc] = primitive
    return function


def _binary(primitive, numpy_ufunc):
    def function(a, b):
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            a = Tensor(a)
        return apply(primitive, (a, b))
    function.__name__ = primitive.name
    function.__qualname__ = primitive.name
    function.__doc__ = f"Elementwise {primitive.name} with broadcasting; gradient rules: {primitive.math}."
    implements(numpy_ufunc)(function)
    UFUNC_PRIMITIVES[numpy_ufunc] = primitive
    return function


negative = _unary(rules.negative, np.negative)
absolute = _unary(rules.absolute, np.absolute)
abs = absolute
exp = _unary(rules.exp, np.exp)
log = _unary(rules.log, np.log)
log1p = _unary(rules.log1p, np.log1p)
sqrt = _unary(rules.sqrt, np.sqrt)
square = _unary(rules.square, np.square)
tanh = _unary(rules.tanh, np.tanh)
sin = _unary(rules.sin, np.sin)
cos = _unary(rules.cos, np.cos)

add = _binary(rules.add, np.add)
subtract = _binary(rules.subtract, np.subtract)
multiply = _binary(rules.multiply, np.multiply)
divide = _binary(rules.divide, np.divide)
power = _binary(rules.power, np.power)
maximum = _binary(rules.maximum, np.maximum)
minimum = _binary(rules.minimum, np.minimum)
matmul = _binary(rules.matmul, np.matmul)


@implements(np.positive)
def positive(x):
    return as_tensor(x)


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), computed without overflow."""
    return apply(rules.sigmoid, (as_tensor(x),))


def relu(x):
    """max(x, 0), composed from maximum: the gradient is g * (x > 0), so 0 at x == 0."""
    return maximum(x, 0)


@implements(np.where)
def where(condition, x=None, y=None):
    """Select from ``x`` where ``condition`` holds, else from ``y``.

    The unselected operand's gradient is exactly 0, even where it is inf or NaN.
    """
    if x is None or y is None:
        raise UnsupportedError("where(condition) with one argument returns indices, which have "
                               "no gradient; call np.nonzero(condition.data) instead")
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x)
    return apply(rules.where, (condition, x, y))


@implements(np.clip)
def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):
    """Clip ``a`` to [a_min, a_max]; the gradient passes where a_min <= a <= a_max."""
    _reject("clip", out=out)
    low = a_min if a_min is not None else min
    high = a_max if a_max is not None else max
    low = -np.inf if low is None else low
    high = np.inf if high is None else high
    return apply(rules.clip, (as_tensor(a), low, high))


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------

@implements(np.sum)
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum over ``axis`` (None, an int or a tuple of ints)."""
    _reject("sum", dtype=dtype, out=out, initial=initial, where=where)
    return as_tensor(a).sum(axis=axis, keepdims=keepdims)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Mean over ``axis``; its gradient spreads g / n over the n averaged elements."""
    _reject("mean", dtype=dtype, out=out, where=where)
    return as_tensor(a).mean(axis=axis, keepdims=keepdims)


@implements(np.max, np.amax)
def max(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    _reject("max", out=out, initial=initial, where=where)
    return as_tensor(a).max(axis=axis, keepdims=keepdims)


@implements(np.min, np.amin)
def min(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    """Minimum over ``axis``; tied minima share the gradient equally."""
    _reject("min", out=out, initial=initial, where=where)
    return as_tensor(a).min(axis=axis, keepdims=keepdims)


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom."""
    _reject("var", dtype=dtype, out=out, where=where, mean=mean)
    if correction is not None:
        ddof = correction
    return as_tensor(a).var(axis=axis, ddof=ddof, keepdims=keepdims)


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation over ``axis``; its gradient is infinite where the variance is 0."""
    _reject("std", dtype=dtype, out=out, where=where, mean=mean)
    if correction is not None:
        ddof = correction
    return as_tensor(a).std(axis=axis, ddof=ddof, keepdims=keepdims)


def logsumexp(x, axis=None, keepdims=False):
    """Return log(sum(exp(x))) along ``axis``, computed after subtracting the maximum so that exp cannot overflow."""
    x = as_tensor(x)
    axis = _normalize_axis(axis, x.ndim, "logsumexp")
    return apply(rules.logsumexp, (x,), {"axis": axis, "keepdims": keepdims})


def _single_axis(axis, ndim, op):
    if axis.__class__ is int and -ndim <= axis < ndim:
        return axis + ndim if axis < 0 else axis  # the common case, without building tuples
    return _normalize_axis(axis, ndim, op)[0]


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs."""
    x = as_tensor(x)
    return apply(rules.softmax, (x,), {"axis": _single_axis(axis, x.ndim, "softmax")})


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``, stable for large inputs."""
    x = as_tensor(x)
    return apply(rules.log_softmax, (x,), {"axis": _single_axis(axis, x.ndim, "log_softmax")})


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of ``logits`` (N, C) against integer ``labels`` (N,).

    >>> import microad as ma
    >>> loss = ma.cross_entropy(ma.Tensor([[0.0, 0.0]]), [1])
    >>> round(float(loss), 4)
    0.6931
    """
    logits = as_tensor(logits)
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if logits.ndim != 2:
        raise ShapeError(f"cross_entropy({describe([logits])}): logits must be 2-D, (N, C); "
                         "reshape them to (N, C) first")
    if labels.shape != (logits.shape[0],) or labels.dtype.kind not in "iu":
        raise ShapeError(f"cross_entropy({describe([logits])}, labels {labels.shape} "
                         f"{labels.dtype}): labels must be integers of shape "
                         f"({logits.shape[0]},), one class index per row")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ShapeError(f"cross_entropy({describe([logits])}): labels must lie in "
                         f"[0, {logits.shape[1]}), got values from {labels.min()} to {labels.max()}")
    picked = log_softmax(logits, axis=1)[np.arange(logits.shape[0]), labels]
    return -picked.mean()


# ---------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------

@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    """Reshape ``a`` to ``shape`` (C order)."""
    if order != "C":
        raise UnsupportedError(f"reshape: order={order!r} is not supported; only order='C' is")
    _reject("reshape", copy=copy)
    shape = newshape if shape is None else shape
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    return as_tensor(a).reshape(tuple(shape))


@implements(np.transpose)
def transpose(a, axes=None):
    """Permute the axes of ``a``; reverse them when ``axes`` is None."""
    return as_tensor(a).transpose(axes)


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    return as_tensor(a).swapaxes(axis1, axis2)


@implements(np.ravel)
def ravel(a, order="C"):
    if order != "C":
        raise UnsupportedError(f"ravel: order={order!r} is not supported; only order='C' is")
    return as_tensor(a).reshape(-1)


flatten = ravel


@implements(np.squeeze)
def squeeze(a, axis=None):
    return as_tensor(a).squeeze(axis)


@implements(np.expand_dims)
def expand_dims(a, axis):
    """Insert axes of size 1 at the positions ``axis`` of the result."""
    a = as_tensor(a)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = a.ndim + len(axes)
    positions = _normalize_axis(axes, ndim, "expand_dims")
    shape = iter(a.shape)
    new_shape = tuple(1 if i in positions else next(shape) for i in range(ndim))
    return a.reshape(new_shape)


@implements(np.broadcast_to)
def broadcast_to(array, shape, subok=False):
    """Broadcast ``array`` to ``shape``; the gradient sums over the broadcast axes."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    return apply(rules.broadcast_to, (as_tensor(array),), {"shape": tuple(shape)})


# ---------------------------------------------------------------------------
# Joining and splitting
# ---------------------------------------------------------------------------

@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    """Join a sequence of arrays along an existing axis; ``axis=None`` flattens first."""
    if out is not None or dtype is not None or casting is not None:
        _reject("concatenate", out=out, dtype=dtype, casting=casting)
    tensors = [as_tensor(x) for x in arrays]
    if not tensors:
        raise ShapeError("concatenate: needs at least one array to join")
    if axis is None:
        tensors = [t.reshape(-1) for t in tensors]
        axis = 0
    if tensors[0].ndim == 0:
        raise ShapeError(f"concatenate({describe(tensors)}): zero-dimensional arrays cannot be "
                         "joined; use stack, or reshape them to (1,) first")
    axis = _single_axis(axis, tensors[0].ndim, "concatenate")
    return apply(rules.concatenate, tuple(tensors), {"axis": axis})


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None, casting=None):
    """Join arrays of one shape along a new axis."""
    _reject("stack", out=out, dtype=dtype, casting=casting)
    tensors = [as_tensor(x) for x in arrays]
    if not tensors:
        raise ShapeError("stack: needs at least one array to join")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack({describe(tensors)}): all arrays must have the same shape")
    axis = _single_axis(axis, tensors[0].ndim + 1, "stack")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting=None):
    """Join arrays column-wise: along axis 1, or axis 0 for 1-D arrays."""
    _reject("hstack", dtype=dtype, casting=casting)
    tensors = [as_tensor(x) for x in tup]
    tensors = [t.reshape(1) if t.ndim == 0 else t for t in tensors]
    axis = 0 if tensors and tensors[0].ndim == 1 else 1
    return concatenate(tensors, axis=axis)


@implements(np.vstack)
def vstack(tup, *, dtype=None, casting=None):
    """Join arrays row-wise, along axis 0; a 1-D array of length n counts as a (1, n) row."""
    _reject("vstack", dtype=dtype, casting=casting)
    tensors = [as_tensor(x) for x in tup]
    tensors = [t.reshape(1, -1) if t.ndim < 2 else t for t in tensors]
    return concatenate(tensors, axis=0)


@implements(np.split)
def split(ary, indices_or_sections, axis=0):
    """Split into equal sections, or at the given indices, along ``axis``."""
    ary = as_tensor(ary)
    axis = _single_axis(axis, ary.ndim, "split")
    length = ary.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0 or length % sections:
            raise ShapeError(f"split({describe([ary])}): axis {axis} of length {length} does not "
                             f"divide into {sections} equal sections; pass split indices instead")
        bounds = [i * (length // sections) for i in range(sections + 1)]
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [length]
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = (slice(None),) * axis + (slice(start, stop),)
        pieces.append(ary[index])
    return pieces


# ---------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------

@implements(np.outer)
def outer(a, b, out=None):
    """Outer product of the flattened ``a`` and ``b``."""
    _reject("outer", out=out)
    return as_tensor(a).reshape(-1, 1) * as_tensor(b).reshape(1, -1)


@implements(np.dot)
def dot(a, b, out=None):
    """NumPy's dot: a product for scalars, matmul up to 2-D, a sum over the last and
    second-to-last axes above."""
    _reject("dot", out=out)
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim <= 2 and b.ndim <= 2:
        return matmul(a, b)
    letters = "abcdefghijklmnopqrstuvwxyz"
    shared = "z"
    a_subs = letters[:a.ndim - 1] + shared
    b_free = letters[a.ndim - 1:a.ndim - 1 + b.ndim - 1]
    if b.ndim == 1:
        b_subs = shared
    else:
        b_subs = b_free[:-1] + shared + b_free[-1]
    return einsum(f"{a_subs},{b_subs}->{a_subs[:-1]}{b_subs.replace(shared, '')}", a, b)


@implements(np.einsum)
def einsum(subscripts, *operands, out=None, dtype=None, order="K", casting="safe", optimize=False):
    """Einstein summation with explicit output subscripts, such as ``'ij,jk->ik'``."""
    _reject("einsum", out=out, dtype=dtype)
    if not isinstance(subscripts, str) or "->" not in subscripts or "." in subscripts:
        raise UnsupportedError(f"einsum({subscripts!r}): only explicit subscripts with '->' and "
                               "no ellipsis are supported, for example 'ij,jk->ik'")
    subscripts = subscripts.replace(" ", "")
    tensors = tuple(as_tensor(x) for x in operands)
    inputs = subscripts.split("->")[0].split(",")
    if len(inputs) != len(tensors):
        raise ShapeError(f"einsum({subscripts!r}): {len(inputs)} operand subscripts for "
                         f"{len(tensors)} operands")
    for subs, tensor in zip(inputs, tensors):
        if tensor.requires_grad and len(set(subs)) != len(subs):
            raise UnsupportedError(f"einsum({subscripts!r}): repeated subscripts within one "
                                   f"operand ({subs!r}, a diagonal) have no gradient rule in "
                                   "microad; take the diagonal by indexing first")
    return apply(rules.einsum, tensors, {"subscripts": subscripts})


# ---------------------------------------------------------------------------
# Functions with no gradient: they run on the data
# ---------------------------------------------------------------------------

def _on_data(numpy_function):
    def function(*args, **kwargs):
        args = [getattr(a, "data", a) if isinstance(a, Tensor) else a for a in args]
        return numpy_function(*args, **kwargs)
    function.__name__ = numpy_function.__name__
    implements(numpy_function)(function)
    return function


for _function in (np.shape, np.ndim, np.size, np.allclose, np.isclose, np.array_equal,
                  np.argmax, np.argmin, np.argsort, np.nonzero, np.count_nonzero,
                  np.any, np.all, np.around, np.round, np.array2string, np.array_repr,
                  np.zeros_like, np.ones_like, np.full_like, np.empty_like):
    _on_data(_function)
