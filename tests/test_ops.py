"""Every differentiable op, from one table, against NumPy and central differences.

Each case draws inputs inside the op's domain and away from its kinks, with
broadcastable shapes where the op broadcasts. The forward must equal the
NumPy reference, and every gradient must equal central differences in
float64. Neither the inputs nor the upstream gradient may be modified, and
the NumPy spelling of the op must record the same graph.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import microad as ma
from numeric import central_difference_vjp


def floats(low=-2.0, high=2.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


# Values on a grid of step 0.1, and the same grid shifted by 0.05: two arrays
# drawn from the two never tie, and none of them is 0 or ±0.5 when shifted.
GRID = st.integers(-20, 20).map(lambda k: k / 10)
SHIFTED = st.integers(-20, 20).map(lambda k: k / 10 + 0.05)


def array(data, shape, elements=None, unique=False):
    return data.draw(hnp.arrays(np.float64, shape, elements=floats() if elements is None else elements,
                                 unique=unique))


def one_shape(data, min_dims=0, max_dims=3):
    return data.draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=3))


def two_shapes(data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
    return shapes.input_shapes


def axis_args(data, ndim):
    """Draw an axis argument: None, an int (possibly negative) or a tuple."""
    if ndim == 0:
        return None
    choice = data.draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return None
    if choice == "int":
        return data.draw(st.integers(-ndim, ndim - 1))
    axes = data.draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(axes)


@dataclass
class Case:
    """One op: ``build(data)`` returns (input arrays, microad call, NumPy reference)."""

    name: str
    build: Callable
    numpy_spelling: bool = True


def unary(name, function, reference, elements=None, numpy_spelling=True):
    def build(data):
        x = array(data, one_shape(data), elements)
        return [x], function, reference
    return Case(name, build, numpy_spelling)


def binary(name, function, reference, first=None, second=None, numpy_spelling=True):
    def build(data):
        shape_a, shape_b = two_shapes(data)
        return [array(data, shape_a, first), array(data, shape_b, second)], function, reference
    return Case(name, build, numpy_spelling)


def reduction(name, method, reference, elements=None, unique=False, extra=None):
    def build(data):
        x = array(data, one_shape(data, min_dims=1), elements, unique=unique)
        axis = axis_args(data, x.ndim)
        keepdims = data.draw(st.booleans())
        kwargs = {"axis": axis, "keepdims": keepdims, **(extra or {})}
        return ([x], lambda t: method(t, **kwargs), lambda a: reference(a, **kwargs))
    return Case(name, build)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _logsumexp(x, axis=None, keepdims=False):
    peak = np.max(x, axis=axis, keepdims=True)
    result = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return result if keepdims else np.squeeze(result, axis=axis)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def build_softmax(function, reference):
    def build(data):
        x = array(data, one_shape(data, min_dims=1))
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
        return [x], lambda t: function(t, axis=axis), lambda a: reference(a, axis=axis)
    return build


def build_where(data):
    shape_a, shape_b = two_shapes(data)
    condition = data.draw(hnp.arrays(bool, np.broadcast_shapes(shape_a, shape_b)))
    return ([array(data, shape_a), array(data, shape_b)],
            lambda a, b: np.where(condition, a, b), lambda a, b: np.where(condition, a, b))


def build_clip(data):
    x = array(data, one_shape(data), SHIFTED)
    return [x], lambda t: np.clip(t, -0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5)


def build_power_tensor_exponent(data):
    shape_a, shape_b = two_shapes(data)
    return ([array(data, shape_a, floats(0.3, 2.0)), array(data, shape_b, floats(-2.0, 2.0))],
            np.power, np.power)


def build_power_constant(data):
    x = array(data, one_shape(data), floats(0.3, 2.0))
    p = data.draw(st.sampled_from([2, 3, -1, 0.5, 1.5]))
    return [x], lambda t: t ** p, lambda a: a ** p


def build_reshape(data):
    x = array(data, one_shape(data, min_dims=1))
    shape = data.draw(st.sampled_from([(-1,), (1, -1), (-1, 1), (x.size,)]))
    return [x], lambda t: np.reshape(t, shape), lambda a: np.reshape(a, shape)


def build_transpose(data):
    x = array(data, one_shape(data))
    axes = data.draw(st.permutations(range(x.ndim)).map(tuple) | st.none())
    return [x], lambda t: np.transpose(t, axes), lambda a: np.transpose(a, axes)


def build_swapaxes(data):
    x = array(data, one_shape(data, min_dims=2))
    a1 = data.draw(st.integers(-x.ndim, x.ndim - 1))
    a2 = data.draw(st.integers(-x.ndim, x.ndim - 1))
    return [x], lambda t: np.swapaxes(t, a1, a2), lambda a: np.swapaxes(a, a1, a2)


def build_expand_dims(data):
    x = array(data, one_shape(data))
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    return [x], lambda t: np.expand_dims(t, axis), lambda a: np.expand_dims(a, axis)


def build_squeeze(data):
    shape = one_shape(data)
    x = array(data, shape[:1] + (1,) + shape[1:])
    return [x], np.squeeze, np.squeeze


def build_broadcast_to(data):
    x = array(data, data.draw(st.sampled_from([(3,), (1, 3), (2, 1), ()])))
    target = np.broadcast_shapes(x.shape, (2, 3))
    return [x], lambda t: np.broadcast_to(t, target), lambda a: np.broadcast_to(a, target)


def build_flatten(data):
    x = array(data, one_shape(data))
    return [x], lambda t: t.flatten(), lambda a: a.flatten()


INDEXES = [
    (slice(1, None),),
    (Ellipsis, 0),
    (None, slice(None, None, -1)),
    np.array([0, 0, 1, 0]),          # repeated indices accumulate
    (np.array([1, 0]), Ellipsis),
    (slice(None), np.array([[0, 1], [1, 1]])),
    "mask",
]


def build_getitem(data):
    x = array(data, data.draw(st.sampled_from([(3, 2), (2, 3, 2)])))
    index = data.draw(st.sampled_from(INDEXES))
    if isinstance(index, str):
        index = data.draw(hnp.arrays(bool, x.shape))
    return [x], lambda t: t[index], lambda a: a[index]


def build_concatenate(data):
    shape = one_shape(data, min_dims=1)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    other = list(shape)
    other[axis] = data.draw(st.integers(1, 3))
    arrays = [array(data, shape), array(data, tuple(other))]
    return (arrays, lambda a, b: np.concatenate([a, b], axis=axis),
            lambda a, b: np.concatenate([a, b], axis=axis))


def build_stack(data):
    shape = one_shape(data)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    arrays = [array(data, shape), array(data, shape)]
    return arrays, lambda a, b: np.stack([a, b], axis=axis), lambda a, b: np.stack([a, b], axis=axis)


def build_hstack(data):
    shape = one_shape(data, min_dims=1, max_dims=2)
    other = list(shape)
    other[min(1, len(shape) - 1)] = data.draw(st.integers(1, 3))
    arrays = [array(data, shape), array(data, tuple(other))]
    return arrays, lambda a, b: np.hstack([a, b]), lambda a, b: np.hstack([a, b])


def build_vstack(data):
    width = data.draw(st.integers(1, 3))
    first = data.draw(st.sampled_from([(width,), (2, width)]))
    arrays = [array(data, first), array(data, (width,))]
    return arrays, lambda a, b: np.vstack([a, b]), lambda a, b: np.vstack([a, b])


def build_split(data):
    x = array(data, (data.draw(st.sampled_from([2, 4])), 3))
    axis = data.draw(st.sampled_from([0, -2]))
    weights = np.arange(1.0, 2.0 * x.shape[0] * 3 + 1).reshape(x.shape[0], 6)

    def with_weights(pieces_function):
        def run(a):
            pieces = pieces_function(a)
            return sum((p * w[: p.shape[0] * p.shape[1]].reshape(p.shape)).sum()
                       for p, w in zip(pieces, weights))
        return run

    return ([x], with_weights(lambda t: np.split(t, 2, axis=axis)),
            with_weights(lambda a: np.split(a, 2, axis=axis)))


MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (3, 4)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,)),
                 ((1, 2, 3), (4, 3, 2)), ((2, 3), (2, 3, 1))]


def build_matmul(data):
    shape_a, shape_b = data.draw(st.sampled_from(MATMUL_SHAPES))
    return [array(data, shape_a), array(data, shape_b)], np.matmul, np.matmul


DOT_SHAPES = [((), (3,)), ((3,), (3,)), ((2, 3), (3, 2)), ((2, 3), (3,)), ((2, 2, 3), (3, 2)),
              ((2, 3), (2, 3, 2))]


def build_dot(data):
    shape_a, shape_b = data.draw(st.sampled_from(DOT_SHAPES))
    return [array(data, shape_a), array(data, shape_b)], np.dot, np.dot


def build_outer(data):
    return ([array(data, one_shape(data, max_dims=2)), array(data, one_shape(data, max_dims=2))],
            np.outer, np.outer)


EINSUMS = [("ij,jk->ik", (2, 3), (3, 2)), ("ij,ij->", (2, 3), (2, 3)), ("ij->ji", (2, 3), None),
           ("bij,bjk->bik", (2, 2, 3), (2, 3, 2)), ("ij,k->ijk", (2, 2), (3,)),
           ("ij,jk->k", (2, 3), (3, 2)), ("i,j->i", (3,), (2,))]


def build_einsum(data):
    spec, shape_a, shape_b = data.draw(st.sampled_from(EINSUMS))
    arrays = [array(data, shape_a)] + ([array(data, shape_b)] if shape_b else [])
    return arrays, lambda *xs: np.einsum(spec, *xs), lambda *xs: np.einsum(spec, *xs)


def build_cross_entropy(data):
    n, c = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 4))
    logits = array(data, (n, c))
    labels = data.draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))

    def reference(x):
        return -np.mean(np.log(_softmax(x, axis=1))[np.arange(n), labels])

    return [logits], lambda t: ma.cross_entropy(t, labels), reference


def build_var(method, reference):
    def build(data):
        # At least two distinct values per group, so the variance is never 0,
        # where std has an infinite gradient.
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=3))
        x = array(data, shape, GRID, unique=True)
        kwargs = {"axis": data.draw(st.sampled_from([None, 0, -1])),
                  "ddof": data.draw(st.sampled_from([0, 1])),
                  "keepdims": data.draw(st.booleans())}
        return [x], lambda t: method(t, **kwargs), lambda a: reference(a, **kwargs)
    return build


CASES = [
    unary("negative", np.negative, np.negative),
    unary("absolute", np.abs, np.abs, SHIFTED),
    unary("exp", np.exp, np.exp),
    unary("log", np.log, np.log, floats(0.2, 3.0)),
    unary("log1p", np.log1p, np.log1p, floats(-0.5, 3.0)),
    unary("sqrt", np.sqrt, np.sqrt, floats(0.2, 3.0)),
    unary("square", np.square, np.square),
    unary("tanh", np.tanh, np.tanh),
    unary("sin", np.sin, np.sin),
    unary("cos", np.cos, np.cos),
    unary("sigmoid", ma.sigmoid, _sigmoid, numpy_spelling=False),
    unary("relu", ma.relu, lambda a: np.maximum(a, 0), SHIFTED, numpy_spelling=False),
    Case("clip", build_clip),
    binary("add", np.add, np.add),
    binary("subtract", np.subtract, np.subtract),
    binary("multiply", np.multiply, np.multiply),
    binary("divide", np.divide, np.divide, second=floats(0.5, 2.0)),
    binary("maximum", np.maximum, np.maximum, GRID, SHIFTED),
    binary("minimum", np.minimum, np.minimum, GRID, SHIFTED),
    Case("power_tensor_exponent", build_power_tensor_exponent),
    Case("power_constant_exponent", build_power_constant),
    Case("where", build_where),
    reduction("sum", np.sum, np.sum),
    reduction("mean", np.mean, np.mean),
    reduction("max", np.max, np.max, GRID, unique=True),
    reduction("min", np.min, np.min, GRID, unique=True),
    Case("var", build_var(np.var, np.var)),
    Case("std", build_var(np.std, np.std)),
    reduction("logsumexp", ma.logsumexp, _logsumexp),
    Case("softmax", build_softmax(ma.softmax, _softmax), numpy_spelling=False),
    Case("log_softmax", build_softmax(ma.log_softmax, lambda a, axis: np.log(_softmax(a, axis))),
         numpy_spelling=False),
    Case("reshape", build_reshape),
    Case("transpose", build_transpose),
    Case("swapaxes", build_swapaxes),
    Case("expand_dims", build_expand_dims),
    Case("squeeze", build_squeeze),
    Case("broadcast_to", build_broadcast_to),
    Case("flatten", build_flatten),
    Case("getitem", build_getitem),
    Case("concatenate", build_concatenate),
    Case("stack", build_stack),
    Case("hstack", build_hstack),
    Case("vstack", build_vstack),
    Case("split", build_split),
    Case("matmul", build_matmul),
    Case("dot", build_dot),
    Case("outer", build_outer),
    Case("einsum", build_einsum),
    Case("cross_entropy", build_cross_entropy, numpy_spelling=False),
]


def run_on_tensors(function, arrays):
    return function(*[ma.Tensor(a) for a in arrays]).data


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@given(data=st.data())
def test_gradient_matches_central_differences(case, data):
    arrays, function, reference = case.build(data)
    originals = [a.copy() for a in arrays]
    tensors = [ma.Tensor(a, requires_grad=True) for a in arrays]

    out = function(*tensors)
    np.testing.assert_allclose(out.data, reference(*arrays), rtol=1e-12, atol=1e-12)

    upstream = array(data, out.shape)
    upstream_copy = upstream.copy()
    out.backward(upstream)
    numeric = central_difference_vjp(lambda *xs: run_on_tensors(function, xs), arrays, upstream)

    for tensor, expected in zip(tensors, numeric):
        assert tensor.grad.shape == tensor.shape
        assert tensor.grad.dtype == np.float64
        np.testing.assert_allclose(tensor.grad, expected, rtol=1e-5, atol=1e-6)
    for tensor, original in zip(tensors, originals):
        np.testing.assert_array_equal(tensor.data, original)
    np.testing.assert_array_equal(upstream, upstream_copy)


@pytest.mark.parametrize("case", [c for c in CASES if c.numpy_spelling], ids=lambda case: case.name)
@given(data=st.data())
def test_numpy_spelling_records_same_graph(case, data):
    arrays, function, reference = case.build(data)
    through_numpy = [ma.Tensor(a, requires_grad=True) for a in arrays]
    through_microad = [ma.Tensor(a, requires_grad=True) for a in arrays]

    out = reference(*through_numpy)
    assert isinstance(out, ma.Tensor)
    expected = function(*through_microad)
    upstream = np.ones(out.shape)
    out.backward(upstream)
    expected.backward(upstream)
    for left, right in zip(through_numpy, through_microad):
        np.testing.assert_allclose(left.grad, right.grad, rtol=1e-12, atol=1e-12)
