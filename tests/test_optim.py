"""Tests of microad.optim: each update against its formula, worked by hand, and the guards."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microad as ma
from microad import nn, optim
from microad.optim import HyperparameterError


def parameter_with_grad(value, grad):
    """Return a one-element Parameter holding ``value`` whose ``.grad`` is ``grad``."""
    parameter = nn.Parameter([value])
    parameter.grad = np.array([grad])
    return parameter


# ---------------------------------------------------------------------------
# SGD, worked by hand
# ---------------------------------------------------------------------------

def test_sgd_plain_step():
    p = parameter_with_grad(1.0, 0.5)
    optim.SGD([p], lr=0.1).step()
    # p = 1 - 0.1 * 0.5
    assert p.data[0] == pytest.approx(0.95)


def test_sgd_momentum_two_steps():
    p = parameter_with_grad(1.0, 0.5)
    optimizer = optim.SGD([p], lr=0.1, momentum=0.9)
    optimizer.step()
    # v = 0.5, p = 1 - 0.1 * 0.5 = 0.95
    assert p.data[0] == pytest.approx(0.95)
    p.grad = np.array([-0.25])
    optimizer.step()
    # v = 0.9 * 0.5 - 0.25 = 0.2, p = 0.95 - 0.1 * 0.2 = 0.93
    assert p.data[0] == pytest.approx(0.93)
    assert optimizer.velocities[0][0] == pytest.approx(0.2)


def test_sgd_weight_decay():
    p = parameter_with_grad(2.0, 0.5)
    optim.SGD([p], lr=0.1, weight_decay=0.1).step()
    # g = 0.5 + 0.1 * 2 = 0.7, p = 2 - 0.1 * 0.7 = 1.93
    assert p.data[0] == pytest.approx(1.93)


def test_sgd_momentum_and_decay():
    p = parameter_with_grad(2.0, 0.5)
    optimizer = optim.SGD([p], lr=0.1, momentum=0.5, weight_decay=0.1)
    optimizer.step()
    # g = 0.7, v = 0.7, p = 2 - 0.07 = 1.93
    assert p.data[0] == pytest.approx(1.93)
    optimizer.step()
    # g = 0.5 + 0.1 * 1.93 = 0.693, v = 0.5 * 0.7 + 0.693 = 1.043, p = 1.93 - 0.1043 = 1.8257
    assert p.data[0] == pytest.approx(1.8257)


def test_sgd_updates_in_place():
    p = parameter_with_grad(1.0, 0.5)
    array = p.data
    optim.SGD([p], lr=0.1).step()
    assert p.data is array


# ---------------------------------------------------------------------------
# Adam, worked by hand
# ---------------------------------------------------------------------------

def test_adam_first_step_bias_corrected():
    p = parameter_with_grad(1.0, 0.5)
    optim.Adam([p], lr=0.1).step()
    # m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25 = 0.00025
    # m_hat = 0.05 / 0.1 = 0.5, v_hat = 0.00025 / 0.001 = 0.25
    # p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert p.data[0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-12)


def test_adam_second_step():
    p = parameter_with_grad(1.0, 0.5)
    optimizer = optim.Adam([p], lr=0.1)
    optimizer.step()
    after_first = p.data[0]
    p.grad = np.array([-0.25])
    optimizer.step()
    # m = 0.9 * 0.05 + 0.1 * (-0.25) = 0.02
    # v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225
    # m_hat = 0.02 / (1 - 0.81) = 0.02 / 0.19
    # v_hat = 0.00031225 / (1 - 0.998001) = 0.00031225 / 0.001999
    m_hat = 0.02 / 0.19
    v_hat = 0.00031225 / 0.001999
    expected = after_first - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    assert optimizer.first_moments[0][0] == pytest.approx(0.02)
    assert optimizer.second_moments[0][0] == pytest.approx(0.00031225)
    assert p.data[0] == pytest.approx(expected, rel=1e-12)
    assert p.data[0] == pytest.approx(0.873366, abs=1e-6)


def test_adam_weight_decay():
    p = parameter_with_grad(2.0, 0.5)
    optimizer = optim.Adam([p], lr=0.1, betas=(0.5, 0.75), eps=0.1, weight_decay=0.1)
    optimizer.step()
    # g = 0.5 + 0.1 * 2 = 0.7, m = 0.35, v = 0.25 * 0.49 = 0.1225
    # m_hat = 0.35 / 0.5 = 0.7, v_hat = 0.1225 / 0.25 = 0.49
    # p = 2 - 0.1 * 0.7 / (0.7 + 0.1) = 1.9125
    assert p.data[0] == pytest.approx(1.9125)


def test_adam_counts_steps_per_parameter():
    busy = parameter_with_grad(1.0, 0.5)
    idle = nn.Parameter([1.0])
    optimizer = optim.Adam([busy, idle], lr=0.1)
    optimizer.step()
    idle.grad = np.array([0.5])
    optimizer.step()
    # idle's first update is bias-corrected with t = 1, like busy's first one.
    assert optimizer.steps == [2, 1]
    assert idle.data[0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-12)


def sgd_reference(p, grads, lr, momentum, weight_decay):
    velocity = np.zeros_like(p)
    for grad in grads:
        g = grad + weight_decay * p
        velocity = momentum * velocity + g
        p = p - lr * velocity
    return p


def adam_reference(p, grads, lr, beta1, beta2, eps, weight_decay):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, grad in enumerate(grads, start=1):
        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return p


rates = st.floats(1e-4, 1.0)
fractions = st.floats(0.0, 0.99)


@given(seed=st.integers(0, 2**16), steps=st.integers(1, 5), lr=rates, momentum=fractions,
       weight_decay=st.floats(0.0, 0.5))
def test_sgd_matches_reference(seed, steps, lr, momentum, weight_decay):
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(2, 3))
    grads = rng.normal(size=(steps, 2, 3))
    p = nn.Parameter(start)
    optimizer = optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    for grad in grads:
        p.grad = grad
        optimizer.step()
    assert np.allclose(p.data, sgd_reference(start, grads, lr, momentum, weight_decay))


@given(seed=st.integers(0, 2**16), steps=st.integers(1, 5), lr=rates, beta1=fractions,
       beta2=fractions, weight_decay=st.floats(0.0, 0.5))
def test_adam_matches_reference(seed, steps, lr, beta1, beta2, weight_decay):
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(3,))
    grads = rng.normal(size=(steps, 3))
    p = nn.Parameter(start)
    optimizer = optim.Adam([p], lr=lr, betas=(beta1, beta2), weight_decay=weight_decay)
    for grad in grads:
        p.grad = grad
        optimizer.step()
    expected = adam_reference(start, grads, lr, beta1, beta2, 1e-8, weight_decay)
    assert np.allclose(p.data, expected)


# ---------------------------------------------------------------------------
# Shared behaviour and guards
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1)], ids=["sgd", "adam"])
def test_step_skips_missing_grad(make):
    p = nn.Parameter([1.0, 2.0])
    make([p]).step()
    assert p.data.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1),
                                  lambda ps: optim.Adam(ps)], ids=["sgd", "adam"])
def test_zero_grad_clears(make):
    first = parameter_with_grad(1.0, 0.5)
    second = parameter_with_grad(2.0, 0.5)
    make([first, second]).zero_grad()
    assert first.grad is None
    assert second.grad is None


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.05)], ids=["sgd", "adam"])
def test_training_lowers_loss(make):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4))
    y = rng.integers(0, 3, size=16)
    model = nn.Sequential(nn.Linear(4, 8, rng=1), nn.ReLU(), nn.Linear(8, 3, rng=2))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = make(model.parameters())

    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))

    assert losses[-1] < 0.5 * losses[0]


def test_accepts_generator():
    model = nn.Linear(2, 2, rng=0)
    optimizer = optim.SGD((p for p in model.parameters()), lr=0.1)
    assert len(optimizer.params) == 2


def test_accepts_plain_tensor():
    w = ma.Tensor([1.0], requires_grad=True)
    w.grad = np.array([1.0])
    optim.SGD([w], lr=0.5).step()
    assert w.data[0] == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -0.1}, "lr=-0.1 is invalid"),
    ({"lr": float("nan")}, "lr=nan is invalid"),
    ({"lr": 0.1, "momentum": 1.0}, "momentum=1.0 is invalid"),
    ({"lr": 0.1, "momentum": -0.5}, "momentum=-0.5 is invalid"),
    ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay=-1.0 is invalid"),
    ({"lr": "0.1"}, "lr='0.1' is invalid. It must be a real number"),
    ({"lr": 0.1, "momentum": None}, "momentum=None is invalid"),
])
def test_sgd_invalid_settings(kwargs, message):
    with pytest.raises(HyperparameterError, match=message):
        optim.SGD([nn.Parameter([1.0])], **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr=-1.0 is invalid"),
    ({"betas": (1.0, 0.999)}, "beta1=1.0 is invalid"),
    ({"betas": (0.9, 1.5)}, "beta2=1.5 is invalid"),
    ({"betas": (0.9,)}, "must be a pair"),
    ({"eps": -1e-8}, "eps=-1e-08 is invalid"),
    ({"weight_decay": -0.1}, "weight_decay=-0.1 is invalid"),
])
def test_adam_invalid_settings(kwargs, message):
    with pytest.raises(HyperparameterError, match=message):
        optim.Adam([nn.Parameter([1.0])], **kwargs)


def test_empty_params_rejected():
    with pytest.raises(HyperparameterError, match="parameter list is empty"):
        optim.Adam([])


def test_single_tensor_rejected():
    with pytest.raises(HyperparameterError, match="not a single tensor"):
        optim.SGD(nn.Parameter([1.0]), lr=0.1)


def test_constant_tensor_rejected():
    with pytest.raises(HyperparameterError, match="must be a leaf that requires grad"):
        optim.SGD([ma.Tensor([1.0])], lr=0.1)


def test_intermediate_tensor_rejected():
    w = nn.Parameter([1.0])
    with pytest.raises(HyperparameterError, match="must be a leaf"):
        optim.SGD([w * 2], lr=0.1)


def test_ndarray_rejected():
    with pytest.raises(HyperparameterError, match="is a ndarray, not a microad Tensor"):
        optim.SGD([np.zeros(2)], lr=0.1)


def test_read_only_data_rejected():
    data = np.zeros(2)
    data.flags.writeable = False
    w = ma.Tensor(data, requires_grad=True)
    with pytest.raises(HyperparameterError, match="writable float array"):
        optim.SGD([w], lr=0.1)


def test_duplicate_param_rejected():
    w = nn.Parameter([1.0], name="w")
    with pytest.raises(HyperparameterError, match="parameter 1 \\(w\\) appears twice"):
        optim.SGD([w, w], lr=0.1)
