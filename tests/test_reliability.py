"""Reliability: mutation after save, anomaly mode, large graphs, memory, fuzzing."""

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import microad as ma
from numeric import central_difference_vjp


# -- in-place mutation -----------------------------------------------------------

def test_data_update_after_save_raises_on_backward():
    W = ma.Tensor(np.ones((2, 2)), requires_grad=True, name="W")
    X = ma.Tensor(np.ones((3, 2)), name="X")
    loss = (X @ W).sum()
    W.data -= 0.5
    with pytest.raises(ma.MutationError) as info:
        loss.backward()
    message = str(info.value)
    assert "W (2, 2)" in message
    assert "matmul" in message


def test_data_assignment_after_save_raises_on_backward():
    x = ma.Tensor([1.0, 2.0], requires_grad=True, name="x")
    y = np.exp(x).sum()
    x.data = np.array([3.0, 4.0])
    with pytest.raises(ma.MutationError, match="x"):
        y.backward()


def test_constant_update_after_save_raises_on_backward():
    w = ma.Tensor([1.0, 2.0], requires_grad=True)
    mask = ma.Tensor([1.0, 0.0], name="mask")
    y = (w * mask).sum()
    mask.data = np.array([0.0, 1.0])
    with pytest.raises(ma.MutationError, match="mask"):
        y.backward()


def test_intermediate_result_is_read_only():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    h = np.exp(x)
    with pytest.raises(ValueError, match="read-only"):
        h.data[0] = 0.0


def test_update_before_forward_is_fine():
    w = ma.Tensor([1.0, 2.0], requires_grad=True)
    w.data -= 1.0
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [0.0, 2.0])


def test_optimizer_style_update_then_new_forward():
    w = ma.Tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        w.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        w.data -= 0.25 * w.grad
    np.testing.assert_allclose(w.data, [0.125, 0.25])


# -- anomaly mode -----------------------------------------------------------------

def test_anomaly_names_op_place_and_inputs():
    x = ma.Tensor([0.0, 4.0], requires_grad=True, name="x")
    with ma.detect_anomaly(), np.errstate(divide="ignore"):
        y = np.sqrt(x).sum()
        with pytest.raises(ma.AnomalyError) as info:
            y.backward()
    message = str(info.value)
    assert "sqrt" in message
    assert "test_reliability.py" in message
    assert "inf" in message
    assert "min 0, max 4" in message


def test_anomaly_reports_first_bad_step():
    x = ma.Tensor([0.0, 1.0], requires_grad=True)
    with ma.detect_anomaly(), np.errstate(divide="ignore"):
        y = np.log(x).sum()
        with pytest.raises(ma.AnomalyError, match="backward of log produced inf"):
            y.backward()


def test_without_anomaly_mode_nan_passes_silently():
    x = ma.Tensor([0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore"):
        np.sqrt(x).sum().backward()
    assert np.isinf(x.grad[0])


def test_anomaly_mode_is_off_after_block():
    with ma.detect_anomaly():
        pass
    x = ma.Tensor([1.0], requires_grad=True)
    assert (x * 2)._node.trace is None


# -- large graphs -----------------------------------------------------------------

def test_wide_fan_out():
    x = ma.Tensor(np.ones(4), requires_grad=True)
    total = ma.stack([x * float(k) for k in range(10_000)]).sum()
    total.backward()
    np.testing.assert_allclose(x.grad, np.full(4, sum(range(10_000))))


def test_long_chain_of_mixed_ops():
    x = ma.Tensor(np.full(2, 0.5), requires_grad=True)
    y = x
    for _ in range(25_000):
        y = np.tanh(y) * 1.0 + 0.0
    y.sum().backward()
    assert np.isfinite(x.grad).all()


def test_memory_released_when_graph_dropped():
    x = ma.Tensor(np.ones(1000), requires_grad=True)
    y = x
    for _ in range(1000):
        y = y * 1.0
    probe = weakref.ref(y._node.inputs[0])
    y.sum().backward()
    del y
    gc.collect()
    assert probe() is None


def test_graph_does_not_need_garbage_collector():
    # No reference cycles: dropping the output frees the graph at once.
    gc.disable()
    try:
        x = ma.Tensor(np.ones(10), requires_grad=True)
        y = (x * 2.0 + 1.0).sum()
        probe = weakref.ref(y._node.inputs[0])
        y.backward()
        del y
        assert probe() is None
    finally:
        gc.enable()


# -- random graphs ------------------------------------------------------------------

MASK = np.array([True, False, True])

SMOOTH_UNARY = {
    "tanh": np.tanh,
    "sin": np.sin,
    "sigmoid": ma.sigmoid,
    "exp_tanh": lambda a: np.exp(np.tanh(a)),
    "square": lambda a: np.square(a) * 0.5,
    "sum_keepdims": lambda a: np.sum(a, axis=-1, keepdims=True) if np.ndim(a) else a,
    "mean_keepdims": lambda a: np.mean(a, axis=0, keepdims=True) if np.ndim(a) else a,
    "times_int": lambda a: a * np.array([2, -1, 3], dtype=np.int32)[: np.shape(a)[-1] if np.ndim(a) else 1].reshape(-1)[0],
}
SMOOTH_BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": lambda a, b: a / (2.0 + np.sin(b)),
    "where": lambda a, b: np.where(np.broadcast_to(MASK, (3,)) if np.ndim(a) else True, a, b)
    if np.shape(np.add(a, b))[-1:] == (3,) else a + b,
}


@st.composite
def programs(draw):
    """Draw leaf shapes and a list of ops, each reading earlier values (fan-out allowed)."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
    leaves = [draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.5, 1.5)))
              for shape in shapes.input_shapes]
    steps = []
    for index in range(draw(st.integers(1, 12))):
        available = len(leaves) + index
        if draw(st.booleans()):
            steps.append(("unary", draw(st.sampled_from(sorted(SMOOTH_UNARY))),
                          draw(st.integers(0, available - 1))))
        else:
            steps.append(("binary", draw(st.sampled_from(sorted(SMOOTH_BINARY))),
                          draw(st.integers(0, available - 1)), draw(st.integers(0, available - 1))))
    return leaves, steps


def run_program(steps, leaves):
    values = list(leaves)
    for step in steps:
        if step[0] == "unary":
            values.append(SMOOTH_UNARY[step[1]](values[step[2]]))
        else:
            values.append(SMOOTH_BINARY[step[1]](values[step[2]], values[step[3]]))
    # Every value feeds the output, so unused branches are exercised too.
    total = 0.0
    for weight, value in enumerate(values[len(leaves):], start=1):
        total = total + np.sum(value) * (weight / 7.0)
    return total


@given(programs())
def test_random_graphs_match_central_differences(program):
    leaves, steps = program
    tensors = [ma.Tensor(leaf, requires_grad=True) for leaf in leaves]
    output = run_program(steps, tensors)
    output.backward()
    numeric = central_difference_vjp(lambda *xs: np.asarray(run_program(steps, list(xs))),
                                     leaves, np.float64(1.0))
    for tensor, expected in zip(tensors, numeric):
        got = np.zeros(tensor.shape) if tensor.grad is None else tensor.grad
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_draw_long_chain_collapsed():
    x = ma.Tensor(np.ones(3), requires_grad=True, name="x")
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    source = ma.draw(y, max_nodes=50).source
    assert "more tensors" in source
    assert source.count("->") < 200


# -- releasing the graph ---------------------------------------------------------------

def test_release_graph_keeps_gradients():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    loss = (np.exp(x) * x).sum()
    loss.backward(retain_graph=False)
    np.testing.assert_allclose(x.grad, np.exp(x.data) * (x.data + 1))


def test_release_graph_frees_intermediates():
    x = ma.Tensor(np.ones(1000), requires_grad=True)
    hidden = np.tanh(x * 2.0)
    probe = weakref.ref(hidden)
    loss = (hidden * 3.0).sum()
    del hidden
    loss.backward(retain_graph=False, keep_intermediate_grads=False)
    gc.collect()
    assert probe() is None


def test_released_graph_rejects_second_backward():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=False)
    with pytest.raises(ma.BackwardError, match="retain_graph=False"):
        loss.backward()


def test_released_graph_rejects_drawing():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=False)
    with pytest.raises(ma.BackwardError, match="released"):
        ma.draw(loss)


def test_retained_graph_by_default():
    x = ma.Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2.0
    probe = weakref.ref(hidden)
    loss = (hidden * hidden).sum()
    del hidden
    loss.backward()
    gc.collect()
    assert probe() is not None
    assert "multiply" in ma.draw(loss).source
