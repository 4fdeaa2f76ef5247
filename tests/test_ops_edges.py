"""Edge cases of the op set: ties, infinities, stability, dtypes and odd shapes."""

import numpy as np
import pytest

import microad as ma


def test_where_unselected_branch_gets_exact_zero():
    a = ma.Tensor([np.inf, 1.0, np.nan], requires_grad=True)
    b = ma.Tensor([2.0, np.inf, 3.0], requires_grad=True)
    y = ma.where(np.array([False, True, False]), a, b)
    y.backward(np.array([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(a.grad, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad, [1.0, 0.0, 1.0])


def test_where_condition_tensor_gets_no_gradient():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    y = np.where(a > 1.5, a, 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 1.0])


def test_power_exponent_gradient_at_zero_base():
    base = ma.Tensor([0.0, 0.0])
    p = ma.Tensor([2.0, 0.5], requires_grad=True)
    (base ** p).sum().backward()
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])


def test_power_exponent_gradient_at_negative_base_is_nan():
    base = ma.Tensor([-2.0])
    p = ma.Tensor([2.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        (base ** p).sum().backward()
    assert np.isnan(p.grad).all()


def test_power_base_gradient_at_negative_base_is_finite():
    base = ma.Tensor([-2.0], requires_grad=True)
    (base ** 3).sum().backward()
    np.testing.assert_array_equal(base.grad, [12.0])


@pytest.mark.parametrize("reduce", [np.max, np.min])
def test_extremum_ties_share_gradient(reduce):
    x = ma.Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    if reduce is np.min:
        x = ma.Tensor(-x.data, requires_grad=True)
    reduce(x, axis=1).backward(np.array([6.0, 9.0]))
    np.testing.assert_allclose(x.grad, [[0.0, 3.0, 3.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(x.grad.sum(axis=1), [6.0, 9.0])


def test_max_tie_count_does_not_overflow_float16():
    x = ma.Tensor(np.ones(70_000, dtype=np.float16), requires_grad=True)
    x.max().backward()
    assert x.grad.dtype == np.float16
    assert np.isfinite(x.grad).all()
    assert (x.grad > 0).all()


@pytest.mark.parametrize("scale", [1000.0, -1000.0])
def test_softmax_family_stable_at_large_inputs(scale):
    x = ma.Tensor(np.array([[1.0, 2.0, 3.0]]) * scale, requires_grad=True)
    for function in (ma.softmax, ma.log_softmax):
        y = function(x, axis=1)
        assert np.isfinite(y.data).all()
        y.backward(np.array([[1.0, 0.0, 0.0]]))
        assert np.isfinite(x.grad).all()
        x.zero_grad()
    lse = ma.logsumexp(x, axis=1)
    np.testing.assert_allclose(lse.data, [scale * 3 if scale > 0 else scale * 1])


def test_logsumexp_of_all_minus_inf():
    x = ma.Tensor(np.full(3, -np.inf))
    assert ma.logsumexp(x).item() == -np.inf


def test_cross_entropy_rejects_bad_labels():
    logits = ma.Tensor(np.zeros((2, 3)), requires_grad=True, name="logits")
    with pytest.raises(ma.ShapeError, match=r"labels must lie in \[0, 3\)"):
        ma.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ma.ShapeError, match="integers of shape"):
        ma.cross_entropy(logits, np.array([0.0, 1.0]))


def test_zero_dimensional_tensors():
    x = ma.Tensor(2.0, requires_grad=True)
    y = x * x + np.exp(x)
    y.backward()
    np.testing.assert_allclose(x.grad, 4.0 + np.exp(2.0))
    assert x.grad.shape == ()


def test_zero_size_axis():
    x = ma.Tensor(np.ones((0, 3)), requires_grad=True)
    y = (x * 2).sum(axis=0)
    y.backward(np.ones(3))
    assert x.grad.shape == (0, 3)


def test_integer_and_boolean_inputs_get_float64_gradients():
    i = ma.Tensor(np.array([1, 2, 3]), requires_grad=True)
    b = ma.Tensor(np.array([True, False, True]), requires_grad=True)
    (i * b).sum().backward()
    assert i.grad.dtype == np.float64
    assert b.grad.dtype == np.float64
    np.testing.assert_array_equal(i.grad, [1.0, 0.0, 1.0])


def test_mixed_float32_and_int_constant_stays_float32():
    x = ma.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = (x * np.array([1, 2, 3], dtype=np.int8)).sum()
    y.backward()
    assert x.grad.dtype == np.float32


def test_complex_scalar_operand_rejected():
    x = ma.Tensor([1.0], requires_grad=True)
    with pytest.raises(ma.DTypeError, match="complex"):
        x * 1j


def test_repeated_integer_indices_accumulate():
    x = ma.Tensor(np.arange(3.0), requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_boolean_mask_index():
    x = ma.Tensor(np.arange(4.0), requires_grad=True)
    mask = x > 1
    (x[mask] * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 2.0, 2.0])


def test_einsum_rejects_repeated_subscript_with_grad():
    x = ma.Tensor(np.eye(2), requires_grad=True)
    with pytest.raises(ma.UnsupportedError, match="diagonal"):
        ma.einsum("ii->i", x)


def test_einsum_implicit_output_rejected():
    x = ma.Tensor(np.eye(2), requires_grad=True)
    with pytest.raises(ma.UnsupportedError, match="explicit"):
        ma.einsum("ij,jk", x, x)


def test_split_uneven_sections_rejected():
    with pytest.raises(ma.ShapeError, match="equal sections"):
        ma.split(ma.Tensor(np.ones(5)), 2)


def test_hstack_of_1d_inputs():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    y = np.hstack([a, np.array([3.0])])
    assert y.shape == (3,)
    (y * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 2.0])


def test_vstack_of_1d_inputs():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    y = np.vstack([a, a])
    assert y.shape == (2, 2)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])


def test_negative_axes_in_reductions():
    x = ma.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.sum(axis=(-1, -2))
    y.backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_sigmoid_does_not_overflow():
    x = ma.Tensor(np.array([-1000.0, 0.0, 1000.0]), requires_grad=True)
    y = ma.sigmoid(x)
    np.testing.assert_allclose(y.data, [0.0, 0.5, 1.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.25, 0.0])


def test_relu_gradient_zero_at_zero():
    x = ma.Tensor(np.array([-1.0, 0.0, 1.0]), requires_grad=True)
    ma.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])
