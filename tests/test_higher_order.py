"""Second derivatives: the same rules, run on Tensors, differentiate again.

For each op, the gradient of sum(grad_x(sum(f(x) * w)) * v) with respect to x
(a Hessian-vector product) is compared with central differences of the
first-order gradient, which the engine computes on plain arrays.
"""

import numpy as np
import pytest

import microad as ma
from numeric import central_difference_vjp

CASES = {
    "exp": lambda x: np.exp(x),
    "tanh": lambda x: np.tanh(x),
    "sigmoid": lambda x: ma.sigmoid(x),
    "log": lambda x: np.log(x * x + 1.0),
    "power": lambda x: (x * x + 1.0) ** 1.5,
    "divide": lambda x: 1.0 / (x * x + 1.0),
    "matmul": lambda x: x @ x.T,
    "sum_axis": lambda x: np.sum(x * x, axis=0),
    "mean_keepdims": lambda x: np.mean(x * x, axis=1, keepdims=True) * x,
    "getitem": lambda x: x[np.array([0, 0, 1])] * x[1],
    "concatenate": lambda x: np.concatenate([x * x, np.sin(x)], axis=1),
    "einsum": lambda x: ma.einsum("ij,ij->i", x, x * x),
    "softmax": lambda x: ma.softmax(x, axis=1),
    "log_softmax": lambda x: ma.log_softmax(x, axis=0),
    "logsumexp": lambda x: ma.logsumexp(x * x, axis=1),
    "transpose_reshape": lambda x: (x.T * x.T).reshape(-1),
    "broadcast": lambda x: x * x[0] + np.sin(x[:, :1]),
    "max": lambda x: np.max(x * x * x, axis=1),
    "maximum": lambda x: np.maximum(x * x, 0.3) * x,
    "where": lambda x: np.where(np.array([[True], [False], [True]]), x * x, np.exp(x)),
}


def first_gradient(function, x_value, weights):
    x = ma.Tensor(x_value, requires_grad=True)
    (gradient,) = ma.grad((function(x) * weights).sum(), [x])
    return gradient


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_vector_product(name):
    function = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    x_value = rng.uniform(-1.0, 1.0, size=(3, 2))
    out_shape = function(ma.Tensor(x_value)).shape
    weights = rng.normal(size=out_shape)
    direction = rng.normal(size=x_value.shape)

    x = ma.Tensor(x_value, requires_grad=True)
    (gradient,) = ma.grad((function(x) * weights).sum(), [x], create_graph=True)
    assert isinstance(gradient, ma.Tensor)
    (second,) = ma.grad((gradient * direction).sum(), [x])

    (expected,) = central_difference_vjp(
        lambda value: first_gradient(function, value, weights), [x_value], direction)
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-6)
