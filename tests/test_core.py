"""The core engine: Tensor, backward, NumPy interop, tie rule and errors."""

import sys
import threading
import warnings

import numpy as np
import pytest

import microad as ma
from notes_data import (DL1, N, NOTES_DW1, PRINTED_DL, PRINTED_DW, PRINTED_LOGITS,
                        PRINTED_LOGITS1, PRINTED_X1, PRINTED_Y1, single_vector, vectorised)


def relu_layer(x_raw, w, upstream):
    """The notes' layer on Tensors, written as NumPy code."""
    X = np.hstack([ma.Tensor(x_raw, name="Xraw"), np.ones((x_raw.shape[0], 1))])
    W = ma.Tensor(w, requires_grad=True, name="W")
    logits = X @ W
    Y = np.maximum(logits, 0)
    loss = np.sum(Y * upstream) / x_raw.shape[0]
    return X, W, logits, Y, loss


# -- Tensor basics -----------------------------------------------------------

def test_tensor_attributes():
    t = ma.Tensor([[1.0, 2.0, 3.0]], requires_grad=True, name="W")
    assert t.shape == (1, 3)
    assert t.ndim == 2
    assert t.dtype == np.float64
    assert t.T.shape == (3, 1)
    assert t.name == "W"
    assert t.grad is None
    assert isinstance(t.data, np.ndarray)


def test_integer_input_requiring_grad_becomes_float64():
    t = ma.Tensor([1, 2, 3], requires_grad=True)
    assert t.dtype == np.float64


def test_boolean_input_requiring_grad_becomes_float64():
    t = ma.Tensor([True, False], requires_grad=True)
    assert t.dtype == np.float64


def test_integer_constant_stays_integer():
    assert ma.Tensor([1, 2]).dtype.kind == "i"


def test_float32_stays_float32_end_to_end():
    x = ma.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = (np.exp(x) * 2.0 + x @ np.ones((3, 3), np.float32)).sum()
    y.backward()
    assert y.dtype == np.float32
    assert x.grad.dtype == np.float32


def test_comparison_returns_mask_outside_graph():
    x = ma.Tensor([-1.0, 2.0], requires_grad=True)
    mask = x > 0
    assert mask.dtype == bool
    assert not mask.requires_grad
    assert mask.tolist() == [False, True]


def test_complex_input_rejected():
    with pytest.raises(ma.DTypeError, match="complex"):
        ma.Tensor(np.array([1 + 2j]))


def test_object_input_rejected():
    with pytest.raises(ma.DTypeError, match="object"):
        ma.Tensor(np.array([1, "a"], dtype=object))


def test_string_input_rejected():
    with pytest.raises(ma.DTypeError):
        ma.Tensor(np.array(["a", "b"]))


def test_array_conversion_of_grad_tensor_rejected():
    with pytest.raises(ma.UnsupportedError, match="detach"):
        np.asarray(ma.Tensor([1.0], requires_grad=True))


def test_detach_leaves_graph():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad
    assert d.is_leaf


# -- the notes' ReLU layer ---------------------------------------------------------

def test_notes_single_vector_forward():
    x, w = single_vector()
    X = ma.Tensor(x, name="X")
    W = ma.Tensor(w, requires_grad=True, name="W")
    logits = np.matmul(X, W)
    Y = np.maximum(logits, 0)
    np.testing.assert_allclose(np.round(X.data, 3), PRINTED_X1)
    np.testing.assert_allclose(np.round(logits.data, 3), PRINTED_LOGITS1)
    np.testing.assert_allclose(np.round(Y.data, 3), PRINTED_Y1)


def test_notes_single_vector_gradients():
    x, w = single_vector()
    X = ma.Tensor(x, name="X")
    W = ma.Tensor(w, requires_grad=True, name="W")
    logits = X @ W
    Y = np.maximum(logits, 0)
    Y.backward(DL1)
    np.testing.assert_allclose(logits.grad, [0.031, 0.0, 0.926])
    np.testing.assert_allclose(W.grad, np.outer(x, DL1 * (logits.data > 0)))


def test_notes_single_vector_dw_differs_in_column_1():
    x, w = single_vector()
    W = ma.Tensor(w, requires_grad=True)
    (np.maximum(ma.Tensor(x) @ W, 0)).backward(DL1)
    differs = ~np.isclose(W.grad, NOTES_DW1)
    assert differs[:, 1].all()
    assert not differs[:, [0, 2]].any()


def test_notes_vectorised_forward():
    x_raw, w, dl = vectorised()
    _, _, logits, _, _ = relu_layer(x_raw, w, dl)
    np.testing.assert_allclose(np.round(logits.data, 3), PRINTED_LOGITS)
    np.testing.assert_allclose(dl, PRINTED_DL, atol=5e-9)


def test_notes_vectorised_dw_matches_printed():
    x_raw, w, dl = vectorised()
    _, W, _, _, loss = relu_layer(x_raw, w, dl)
    loss.backward()
    np.testing.assert_allclose(W.grad, PRINTED_DW, atol=5e-9)


def test_notes_vectorised_dlogits_is_masked_upstream():
    x_raw, w, dl = vectorised()
    _, _, logits, _, loss = relu_layer(x_raw, w, dl)
    loss.backward()
    np.testing.assert_allclose(logits.grad, dl / N * (logits.data > 0), rtol=1e-15, atol=0)


def test_bias_gradient_is_last_row():
    x_raw, w, dl = vectorised()
    _, W, logits, _, loss = relu_layer(x_raw, w, dl)
    loss.backward()
    np.testing.assert_allclose(W.grad[-1, :], logits.grad.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("n, d, c", [(1, 4, 3), (7, 4, 1), (1, 1, 1), (16, 9, 5)])
def test_relu_layer_random_shapes_match_formulas(n, d, c):
    rng = np.random.default_rng(n * 100 + d * 10 + c)
    x_raw = rng.normal(size=(n, d))
    w = rng.normal(size=(d + 1, c))
    dl = rng.normal(size=(n, c))
    X, W, logits, Y, loss = relu_layer(x_raw, w, dl)
    loss.backward()
    dlogits = dl / n * (logits.data > 0)
    np.testing.assert_allclose(logits.grad, dlogits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(W.grad, X.data.T @ dlogits, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Y.grad, dl / n, rtol=1e-12, atol=1e-12)


def test_input_gradient_when_x_requires_grad():
    rng = np.random.default_rng(0)
    X = ma.Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    W = ma.Tensor(rng.normal(size=(3, 2)), requires_grad=True)
    logits = X @ W
    g = rng.normal(size=(4, 2))
    np.maximum(logits, 0).backward(g)
    np.testing.assert_allclose(X.grad, (g * (logits.data > 0)) @ W.data.T, rtol=1e-12)


# -- NumPy interop ----------------------------------------------------------

def test_numpy_functions_record_graph():
    a = ma.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    results = [
        np.matmul(a, np.ones((3, 2))), np.maximum(a, 1.0), np.minimum(a, 1.0),
        np.hstack([a, a]), np.vstack([a, a]), np.concatenate([a, a], axis=0),
        np.sum(a, axis=0), np.mean(a, axis=1, keepdims=True),
        np.ones((2, 3)) + a, np.ones((2, 3)) * a, 2.0 - a, 1.0 / (a + 1), -a, a ** 2,
        np.ones((4, 2)) @ a,
    ]
    for result in results:
        assert isinstance(result, ma.Tensor)
        assert result.requires_grad


def test_ndarray_on_left_records_graph():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * a
    y.sum().backward()
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])


def test_unsupported_numpy_function_names_it():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ma.UnsupportedError, match="np.cumsum"):
        np.cumsum(a)


def test_unsupported_ufunc_names_it():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ma.UnsupportedError, match="np.arctan"):
        np.arctan(a)


def test_ufunc_out_argument_rejected():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ma.UnsupportedError, match="out"):
        np.exp(a, out=np.zeros(2))


def test_ufunc_reduce_rejected():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ma.UnsupportedError, match="reduce"):
        np.add.reduce(a)


def test_sum_dtype_argument_rejected():
    with pytest.raises(ma.UnsupportedError, match="dtype"):
        np.sum(ma.Tensor([1.0]), dtype=np.float32)


# -- reverse mode ---------------------------------------------------------------

def test_scalar_output_seeded_with_one():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_fan_out_accumulates():
    x = ma.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * x + x + np.maximum(x, 0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1 + (x.data > 0))


def test_intermediate_gradients_stored():
    x = ma.Tensor([1.0, -2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    y.backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    np.testing.assert_array_equal(y.grad, 1.0)


def test_intermediate_gradients_can_be_skipped():
    x = ma.Tensor([1.0, -2.0], requires_grad=True)
    h = x * 2
    (h * h).sum().backward(keep_intermediate_grads=False)
    assert h.grad is None
    np.testing.assert_array_equal(x.grad, 8 * x.data)


def test_grad_arrays_do_not_alias():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    b = ma.Tensor([3.0, 4.0], requires_grad=True)
    s = a + b
    s.backward(np.array([1.0, 1.0]))
    a.grad += 10
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(s.grad, [1.0, 1.0])


def test_intermediate_grad_is_read_only():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    h = a * 2.0
    s = h + 1.0
    s.sum().backward()
    with pytest.raises(ValueError, match="read-only"):
        h.grad[0] = 5.0
    a.grad[0] = 5.0
    np.testing.assert_array_equal(s.grad, [1.0, 1.0])


def test_upstream_gradient_not_modified():
    a = ma.Tensor([1.0, 2.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    (a + a).backward(seed)
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_long_chain_at_default_recursion_limit():
    assert sys.getrecursionlimit() <= 10_000
    x = ma.Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_second_backward_warns_and_accumulates_leaves():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = h.sum()
    y.backward()
    with pytest.warns(UserWarning, match="already called"):
        y.backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    np.testing.assert_array_equal(h.grad, [1.0, 1.0])


def test_second_backward_after_zero_grad_is_clean():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).sum()
    y.backward()
    x.zero_grad()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_no_grad_records_nothing():
    x = ma.Tensor([1.0], requires_grad=True)
    with ma.no_grad():
        y = x * 2
    assert not y.requires_grad
    with pytest.raises(ma.BackwardError, match="does not require grad"):
        y.backward()


def test_no_grad_is_per_thread():
    x = ma.Tensor([1.0], requires_grad=True)
    seen = {}

    def other_thread():
        seen["requires_grad"] = (x * 2).requires_grad

    with ma.no_grad():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen["requires_grad"] is True


def test_threads_differentiate_separate_graphs():
    results = {}

    def work(k):
        x = ma.Tensor(np.full(50, float(k)), requires_grad=True)
        y = x
        for _ in range(200):
            y = y * 1.0 + 0.0
        (y * y).sum().backward()
        results[k] = x.grad

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(1, 5):
        np.testing.assert_array_equal(results[k], np.full(50, 2.0 * k))


def test_higher_order_gradient():
    x = ma.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    (first,) = ma.grad((np.exp(x) * x).sum(), [x], create_graph=True)
    (second,) = ma.grad(first.sum(), [x])
    np.testing.assert_allclose(first.data, np.exp(x.data) * (x.data + 1), rtol=1e-12)
    np.testing.assert_allclose(second, np.exp(x.data) * (x.data + 2), rtol=1e-12)


def test_grad_leaves_dot_grad_alone():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    (g,) = ma.grad((x * x).sum(), [x])
    np.testing.assert_array_equal(g, [2.0, 4.0])
    assert x.grad is None


# -- tie rule ---------------------------------------------------------------

def test_tie_rule_relu_matches_notes_formula_at_zero():
    logits = ma.Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    dl = np.array([5.0, 7.0, 11.0])
    np.maximum(logits, 0).backward(dl)
    np.testing.assert_array_equal(logits.grad, dl * (logits.data > 0))


def test_tie_rule_maximum_of_same_tensor():
    x = ma.Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    np.sum(np.maximum(x, x)).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])


def test_tie_rule_max_plus_min_is_identity():
    x = ma.Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    np.sum(np.maximum(x, 0) + np.minimum(x, 0)).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])


def test_tie_rule_minimum_of_same_tensor():
    x = ma.Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    np.sum(np.minimum(x, x)).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])


# -- errors -------------------------------------------------------------------

def test_backward_non_scalar_needs_gradient():
    y = ma.Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ma.BackwardError, match=r"shape \(2, 3\) needs a gradient"):
        y.backward()


def test_backward_gradient_wrong_shape():
    y = ma.Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ma.ShapeError, match=r"has shape \(3, 2\).*shape \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_gradient_complex_rejected():
    y = ma.Tensor(np.ones(2), requires_grad=True) * 2
    with pytest.raises(ma.DTypeError, match="complex"):
        y.backward(np.ones(2, dtype=complex))


def test_backward_on_constant_rejected():
    with pytest.raises(ma.BackwardError, match="requires_grad=True"):
        ma.Tensor([1.0]).sum().backward()


def test_matmul_error_names_operands_and_fix():
    X = ma.Tensor(np.ones((5, 4)), name="X")
    W = ma.Tensor(np.ones((5, 3)), requires_grad=True, name="W")
    with pytest.raises(ma.ShapeError) as info:
        X @ W
    message = str(info.value)
    assert "matmul(X (5, 4), W (5, 3))" in message
    assert "inner dimensions 4 and 5 differ" in message
    assert "X.T" in message


def test_matmul_error_suggests_transposed_weight():
    X = ma.Tensor(np.ones((5, 4)), name="X")
    W = ma.Tensor(np.ones((3, 4)), name="W")
    with pytest.raises(ma.ShapeError, match=r"did you mean W\.T"):
        X @ W


def test_broadcast_error_names_operands():
    a = ma.Tensor(np.ones((5, 3)), name="Y")
    b = ma.Tensor(np.ones(4), name="b")
    with pytest.raises(ma.ShapeError, match=r"add\(Y \(5, 3\), b \(4,\)\).*broadcast"):
        a + b


def test_concatenate_error_names_operands():
    a = ma.Tensor(np.ones((2, 3)), name="A")
    b = ma.Tensor(np.ones((2, 4)), name="B")
    with pytest.raises(ma.ShapeError, match=r"concatenate\(A \(2, 3\), B \(2, 4\)\)"):
        np.vstack([a, b])


def test_axis_out_of_range():
    with pytest.raises(ma.ShapeError, match="axis 2 is out of range"):
        ma.Tensor(np.ones((2, 3))).sum(axis=2)


def test_item_assignment_rejected():
    t = ma.Tensor([1.0, 2.0], requires_grad=True, name="W")
    with pytest.raises(ma.UnsupportedError, match="W"):
        t[0] = 3.0


def test_errors_share_base_class():
    for error in (ma.ShapeError, ma.DTypeError, ma.UnsupportedError, ma.BackwardError,
                  ma.MutationError, ma.AnomalyError):
        assert issubclass(error, ma.MicroadError)
