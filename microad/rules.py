"""The derivative table: every primitive's forward and its vector-Jacobian products.

Each entry pairs a NumPy forward with one VJP rule per input. A rule is a plain
function with the signature ``rule(g, out, *inputs, **params)``:

- ``g`` is the upstream gradient, dL/d(out), with the shape of ``out``;
- ``out`` is the forward result;
- ``inputs`` are the forward operands, in order (arrays or Python scalars);
- ``params`` are the keyword parameters that the forward took (``axis``, ...).

A rule returns dL/d(input) for its input. It may return an array of the
broadcast shape: the engine (``microad.backward``) sums broadcast axes away and
checks the final shape once, so no rule un-broadcasts by itself.

Rules are written in plain NumPy: operators, ``.T``, ``.sum``, ``.reshape``
and ``np.*`` functions, plus the two helper primitives ``scatter_add`` and
``unbroadcast_to`` defined here. Three kinds of value flow through them:

- ndarrays, in the ordinary backward pass;
- Tensors, which record a graph through ``__array_ufunc__`` and
  ``__array_function__``. Running a rule on Tensors is how higher-order
  derivatives work: ``backward(create_graph=True)`` feeds Tensors to the same
  rules, so every rule is itself differentiable and none needs a second version;
- symbolic tracers (``microad.explain``), which record the rule as an equation
  and as NumPy source, so the printed derivation is the code that runs.

A new rule may therefore only use functions that all three support: the
NumPy functions that ``microad.functions`` registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True, eq=False)
class Primitive:
    """One row of the derivative table.

    ``vjps`` contains one rule per positional input, or ``None`` for an input
    that has no gradient (a mask or an index). A variadic primitive has a
    single rule that also receives ``argnum``, the index of the input.
    ``math`` is the rule in math notation, shown in diagrams and docs.
    """

    name: str
    forward: Callable
    vjps: tuple
    math: str = ""
    variadic: bool = False
    hint: Callable | None = field(default=None, repr=False)

    def __call__(self, *args, **params):
        # Helper primitives run inside rules: dispatch to a Tensor or a tracer
        # when one is among the arguments, else compute with NumPy.
        for arg in args:
            handler = getattr(type(arg), "__microad_function__", None)
            if handler is not None:
                return handler(arg, self, args, params)
        return self.forward(*args, **params)


TABLE: dict[str, Primitive] = {}


def defprim(name, forward, *vjps, math="", variadic=False, hint=None) -> Primitive:
    """Register a primitive in the table and return it."""
    assert name not in TABLE, f"primitive {name!r} registered twice"
    primitive = Primitive(name, forward, tuple(vjps), math, variadic, hint)
    TABLE[name] = primitive
    return primitive


# Arrays of at most this many elements are copied rather than viewed where
# that is faster (see _spread).
SMALL_ARRAY = 4096


def _expand(g, axis, keepdims):
    """Give a reduced gradient back the axes that the reduction removed."""
    if keepdims or axis is None:
        return g
    return np.expand_dims(g, axis)


# ---------------------------------------------------------------------------
# Helper primitives that other rules call
# ---------------------------------------------------------------------------

def _is_basic_index(index) -> bool:
    """Return True for an index without integer arrays, which selects each element at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if isinstance(part, (list, np.ndarray)) and np.asarray(part).dtype != bool:
            return False
    return True


def _scatter_add_forward(g, shape, index):
    result = np.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        result[index] = g
    else:
        np.add.at(result, index, g)
    return result


# scatter_add(g, shape=, index=) = zeros(shape) with g added at index; repeated
# integer indices accumulate, which is what the VJP of indexing needs.
scatter_add = defprim(
    "scatter_add", _scatter_add_forward,
    lambda g, out, x, shape, index: g[index],
    math="dx = g[index]",
)


def _unbroadcast_forward(g, shape):
    extra = g.ndim - len(shape)
    leading = tuple(range(extra))
    if leading:
        g = g.sum(axis=leading)
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and g.shape[axis] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g


# unbroadcast_to(g, shape=) sums g over the axes that broadcasting added or
# stretched, so that the result has `shape`. The engine applies it once after
# every rule; it is a primitive so that it also works on Tensors and tracers.
unbroadcast_to = defprim(
    "unbroadcast_to", _unbroadcast_forward,
    lambda g, out, x, shape: np.broadcast_to(g, x.shape),
    math="dx = broadcast_to(g, x.shape)",
)


# ---------------------------------------------------------------------------
# Elementwise, one input:  y = f(x),  dx = g * f'(x)
# ---------------------------------------------------------------------------

negative = defprim("negative", np.negative, lambda g, out, x: -g, math="dx = -g")
absolute = defprim("absolute", np.absolute, lambda g, out, x: g * np.sign(x), math="dx = g * sign(x)")
exp = defprim("exp", np.exp, lambda g, out, x: g * out, math="dx = g * exp(x)")
log = defprim("log", np.log, lambda g, out, x: g / x, math="dx = g / x")
log1p = defprim("log1p", np.log1p, lambda g, out, x: g / (x + 1), math="dx = g / (1 + x)")
sqrt = defprim("sqrt", np.sqrt, lambda g, out, x: g / (out * 2), math="dx = g / (2 sqrt(x))")
square = defprim("square", np.square, lambda g, out, x: g * (x * 2), math="dx = 2 x g")
tanh = defprim("tanh", np.tanh, lambda g, out, x: g * (1 - out * out), math="dx = g * (1 - tanh(x)^2)")
sin = defprim("sin", np.sin, lambda g, out, x: g * np.cos(x), math="dx = g * cos(x)")
cos = defprim("cos", np.cos, lambda g, out, x: -g * np.sin(x), math="dx = -g * sin(x)")


def _sigmoid_forward(x):
    # exp(-logaddexp(0, -x)) = 1 / (1 + exp(-x)) without overflow for x << 0.
    return np.exp(-np.logaddexp(0, -x))


sigmoid = defprim("sigmoid", _sigmoid_forward, lambda g, out, x: g * (out * (1 - out)),
                  math="dx = g * s (1 - s)")


# ---------------------------------------------------------------------------
# Elementwise, two inputs with broadcasting:  z = f(a, b)
# ---------------------------------------------------------------------------

add = defprim("add", np.add, lambda g, out, a, b: g, lambda g, out, a, b: g,
              math="da = g;  db = g")
subtract = defprim("subtract", np.subtract, lambda g, out, a, b: g, lambda g, out, a, b: -g,
                   math="da = g;  db = -g")
multiply = defprim("multiply", np.multiply, lambda g, out, a, b: g * b, lambda g, out, a, b: g * a,
                   math="da = g * b;  db = g * a")
divide = defprim("divide", np.divide, lambda g, out, a, b: g / b, lambda g, out, a, b: -g * out / b,
                 math="da = g / b;  db = -g * a / b^2")


def _power_vjp_exponent(g, out, x, p):
    # d(x**p)/dp = x**p * log(x) for x > 0. At x == 0 the result is 0 (x**p is
    # constant 0 for p > 0; inf * 0 gives NaN for p < 0). For x < 0, x**p is
    # not real for non-integer p, so there is no real derivative: NaN.
    log_x = np.where(x > 0, np.log(np.where(x > 0, x, 1)), np.where(x < 0, np.nan, 0))
    return g * (out * log_x)


power = defprim(
    "power", np.power,
    lambda g, out, x, p: g * (p * x ** (p - 1)),
    _power_vjp_exponent,
    math="dx = g * p x^(p-1);  dp = g * x^p log(x)",
)

# Tie rule: where a == b, maximum sends the whole gradient to its second
# operand and minimum to its first. So maximum(x, 0) has the gradient
# g * (x > 0), 0 at x == 0 as in the hand formula for ReLU; maximum(x, x) and
# minimum(x, x) pass g through once; and maximum(x, 0) + minimum(x, 0) == x
# has the gradient 1 everywhere, 0 included.
maximum = defprim(
    "maximum", np.maximum,
    lambda g, out, a, b: g * (a > b),
    lambda g, out, a, b: g * (a <= b),
    math="da = g * (a > b);  db = g * (a <= b)",
)
minimum = defprim(
    "minimum", np.minimum,
    lambda g, out, a, b: g * (a <= b),
    lambda g, out, a, b: g * (a > b),
    math="da = g * (a <= b);  db = g * (a > b)",
)

# where(cond, a, b): the unselected operand gets exactly 0, even where it is
# inf or NaN, because the gradient is selected rather than multiplied by a mask.
where = defprim(
    "where", np.where,
    None,
    lambda g, out, cond, a, b: np.where(cond, g, 0),
    lambda g, out, cond, a, b: np.where(cond, 0, g),
    math="da = where(cond, g, 0);  db = where(cond, 0, g)",
)

# clip passes the gradient where lo <= x <= hi; outside, it goes to the bound.
clip = defprim(
    "clip", np.clip,
    lambda g, out, x, lo, hi: g * ((x >= lo) & (x <= hi)),
    lambda g, out, x, lo, hi: g * (x < lo),
    lambda g, out, x, lo, hi: g * (x > hi),
    math="dx = g * (lo <= x <= hi)",
)


# ---------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------

def _swap_last(x):
    """Transpose the last two axes: ``x.T`` for a matrix, a batched transpose above."""
    if x.ndim == 2:
        return x.T
    return np.swapaxes(x, -1, -2)


def _matmul_vjp_a(g, out, a, b):
    if b.ndim == 1:
        if a.ndim == 1:
            return g * b                      # a . b is a scalar
        return np.expand_dims(g, -1) * b      # (..., n, k) @ (k,) -> (..., n)
    if a.ndim == 1 and b.ndim > 2:
        return np.expand_dims(g, -2) @ _swap_last(b)
    return g @ _swap_last(b)


def _matmul_vjp_b(g, out, a, b):
    if a.ndim == 1:
        if b.ndim == 1:
            return g * a
        if b.ndim == 2:
            return np.outer(a, g)
        return np.expand_dims(a, -1) * np.expand_dims(g, -2)
    if b.ndim == 1:
        if a.ndim == 2:
            return a.T @ g
        return np.squeeze(_swap_last(a) @ np.expand_dims(g, -1), -1)
    return _swap_last(a) @ g


def _matmul_hint(a, b):
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    names = [getattr(x, "name", None) for x in (a, b)]
    a_name, b_name = names[0] or "the first operand", names[1] or "the second operand"
    if b.ndim >= 2 and b.shape[-1] == inner_a:
        return f"inner dimensions {inner_a} and {inner_b} differ; did you mean {b_name}.T?"
    if a.ndim >= 2 and a.shape[-2] == inner_b:
        return f"inner dimensions {inner_a} and {inner_b} differ; did you mean {a_name}.T?"
    return (f"inner dimensions {inner_a} and {inner_b} differ; the last axis of {a_name} "
            f"must match the second-to-last axis of {b_name}")


# C = A @ B:  dA = g @ B^T,  dB = A^T @ g  (with NumPy's 1-D promotion rules).
matmul = defprim("matmul", np.matmul, _matmul_vjp_a, _matmul_vjp_b,
                 math="da = g @ b^T;  db = a^T @ g", hint=_matmul_hint)


def _einsum_vjp(g, out, *operands, subscripts, argnum):
    inputs, output = subscripts.split("->")
    input_subs = inputs.split(",")
    target = input_subs[argnum]
    others = [(s, x) for j, (s, x) in enumerate(zip(input_subs, operands)) if j != argnum]
    present = output + "".join(s for s, _ in others)
    kept = "".join(letter for letter in target if letter in present)
    spec = ",".join([output] + [s for s, _ in others]) + "->" + kept
    grad = np.einsum(spec, g, *[x for _, x in others])
    if kept != target:
        # Letters summed over in this operand alone: every element of the
        # operand received the same gradient along them.
        x = operands[argnum]
        shape = tuple(size if letter in kept else 1 for letter, size in zip(target, x.shape))
        grad = np.broadcast_to(grad.reshape(shape), x.shape)
    return grad


# out = einsum(subscripts, *xs): dx_i = einsum(out, other operands -> x_i's letters).
def _einsum_forward(*operands, subscripts):
    return np.einsum(subscripts, *operands)


einsum = defprim("einsum", _einsum_forward, _einsum_vjp, variadic=True,
                 math="dx_i = einsum(g, x_j for j != i)")


# ---------------------------------------------------------------------------
# Reductions: `axis` is None or a tuple of non-negative ints, set by the caller
# ---------------------------------------------------------------------------

def _spread(g, shape, size):
    """Broadcast a reduced gradient back to the input's shape."""
    if (type(g) is np.ndarray or isinstance(g, np.generic)) and size <= SMALL_ARRAY:
        # A small new array costs less than np.broadcast_to's Python overhead (2 us).
        return np.full(shape, g)
    return np.broadcast_to(g, shape)  # a read-only view: no copy of a large gradient


def _sum_vjp(g, out, x, axis, keepdims):
    return _spread(_expand(g, axis, keepdims), x.shape, x.size)


def _mean_vjp(g, out, x, axis, keepdims):
    count = x.size // max(out.size, 1)
    return _spread(_expand(g, axis, keepdims) / count, x.shape, x.size)


def _extremum_vjp(g, out, x, axis, keepdims):
    # Tie rule: tied extrema share the gradient equally, so the gradients of
    # the tied entries add up to g. The count is an integer array, which
    # cannot overflow in float16.
    g = _expand(g, axis, keepdims)
    hit = x == _expand(out, axis, keepdims)
    return g * hit / hit.sum(axis=axis, keepdims=True)


# The forwards call the ndarray methods, which skip the Python wrappers of
# np.sum and friends (about 1 us per call on small arrays).
sum_ = defprim("sum", lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims), _sum_vjp,
               math="dx = broadcast(g)")
mean = defprim("mean", lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims), _mean_vjp,
               math="dx = broadcast(g) / n")
max_ = defprim("max", lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims),
               _extremum_vjp, math="dx = g * (x == max) / count")
min_ = defprim("min", lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims),
               _extremum_vjp, math="dx = g * (x == min) / count")


def _logsumexp_forward(x, axis, keepdims):
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right value for all -inf inputs
        result = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    if not keepdims:
        result = np.squeeze(result, axis=axis)
    return result


# y = log sum exp(x):  dx = g * exp(x - y) = g * softmax(x)
logsumexp = defprim(
    "logsumexp", _logsumexp_forward,
    lambda g, out, x, axis, keepdims: _expand(g, axis, keepdims) * np.exp(x - _expand(out, axis, keepdims)),
    math="dx = g * softmax(x)",
)


def _softmax_forward(x, axis):
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def _log_softmax_forward(x, axis):
    return x - _logsumexp_forward(x, axis, keepdims=True)


# s = softmax(x):  dx = s * (g - sum(g * s))
softmax = defprim(
    "softmax", _softmax_forward,
    lambda g, out, x, axis: out * (g - (g * out).sum(axis=axis, keepdims=True)),
    math="dx = s * (g - sum(g * s))",
)
# y = log_softmax(x):  dx = g - exp(y) * sum(g)
log_softmax = defprim(
    "log_softmax", _log_softmax_forward,
    lambda g, out, x, axis: g - np.exp(out) * g.sum(axis=axis, keepdims=True),
    math="dx = g - softmax(x) * sum(g)",
)


# ---------------------------------------------------------------------------
# Shape, indexing and joining
# ---------------------------------------------------------------------------

def _reshape_forward(x, shape):
    return np.reshape(x, shape)  # positional: NumPy before 2.1 has no shape= keyword


reshape = defprim("reshape", _reshape_forward, lambda g, out, x, shape: g.reshape(x.shape),
                  math="dx = reshape(g, x.shape)")


def _transpose_vjp(g, out, x, axes):
    if axes is None:
        return g.T
    return np.transpose(g, np.argsort(axes))


transpose = defprim("transpose", np.transpose, _transpose_vjp, math="dx = transpose(g, inverse axes)")

# broadcast_to: the engine's un-broadcasting step is the whole VJP.
broadcast_to = defprim("broadcast_to", np.broadcast_to, lambda g, out, x, shape: g,
                       math="dx = unbroadcast(g)")


def _getitem_forward(x, index):
    return x[index]


getitem = defprim("getitem", _getitem_forward,
                  lambda g, out, x, index: scatter_add(g, shape=x.shape, index=index),
                  math="dx = scatter_add(g, x.shape, index)")


def _concatenate_forward(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _concatenate_vjp(g, out, *xs, axis, argnum):
    start = 0
    for x in xs[:argnum]:
        start += x.shape[axis]
    stop = start + xs[argnum].shape[axis]
    return g[(slice(None),) * axis + (slice(start, stop),)]


# out = concatenate(xs, axis): each input gets its own slice of g along axis.
concatenate = defprim("concatenate", _concatenate_forward, _concatenate_vjp, variadic=True,
                      math="dx_i = g[..., start_i:stop_i, ...]")

# A float-to-float cast: the gradient is cast back to the input's dtype.
astype = defprim("astype", lambda x, dtype: x.astype(dtype),
                 lambda g, out, x, dtype: g.astype(x.dtype),
                 math="dx = g cast to x.dtype")
