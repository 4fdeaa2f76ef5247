"""Tests of microad.gradcheck: the checker passes right rules, catches a wrong one, and skips kinks.

The checker is itself tested against deliberately wrong primitives that are
applied with ``microad.tensor.apply`` and never registered in the table.
"""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microad as ma
from microad.errors import MicroadError
from microad.gradcheck import GRADCHECK_TOLERANCES, GradcheckError, Replay, gradcheck
from microad.rules import Primitive
from microad.tensor import apply
from notes_data import single_vector, vectorised

# sin with sin(x) as its derivative: the rule is wrong except where
# sin(x) == cos(x), which is true at none of POINTS.
WRONG_SIN = Primitive("sin_wrong", np.sin, (lambda g, out, x: g * np.sin(x),))
RIGHT_SIN = Primitive("sin_right", np.sin, (lambda g, out, x: g * np.cos(x),))
# A product rule whose second operand gets g instead of g * a.
WRONG_MULTIPLY = Primitive("multiply_wrong", np.multiply,
                           (lambda g, out, a, b: g * b, lambda g, out, a, b: g))

POINTS = np.array([0.3, 1.1, -0.7, 2.0])


def no_warnings():
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("error")
    return context


# ---------------------------------------------------------------------------
# Right and wrong rules
# ---------------------------------------------------------------------------

def test_wrong_rule_fails():
    result = gradcheck(lambda x: apply(WRONG_SIN, (x,)).sum(), [POINTS])
    assert not result.ok
    assert len(result.inputs[0].mismatches) == 4


def test_right_rule_passes():
    result = gradcheck(lambda x: apply(RIGHT_SIN, (x,)).sum(), [POINTS])
    assert result.ok
    assert result.inputs[0].checked == 4


def test_wrong_second_operand_fails():
    rng = np.random.default_rng(0)
    result = gradcheck(lambda a, b: apply(WRONG_MULTIPLY, (a, b)).sum(),
                       [rng.standard_normal(3), rng.standard_normal(3)])
    assert result.inputs[0].ok
    assert not result.inputs[1].ok


def test_wrong_rule_random_mode_fails():
    x = np.random.default_rng(1).standard_normal(200)
    result = gradcheck(lambda x: apply(WRONG_SIN, (x,)).sum(), [x], mode="random", directions=4)
    assert not result.ok
    assert result.inputs[0].checked == 4


def test_right_rule_random_mode_passes():
    x = np.random.default_rng(1).standard_normal(200)
    result = gradcheck(lambda x: apply(RIGHT_SIN, (x,)).sum(), [x], mode="random", directions=4)
    assert result.ok


def test_wrong_rule_vector_output_fails():
    result = gradcheck(lambda x: apply(WRONG_SIN, (x,)), [POINTS])
    assert not result.ok


def test_raise_on_failure_message():
    with pytest.raises(GradcheckError) as caught:
        gradcheck(lambda angle: apply(WRONG_SIN, (angle,)).sum(), {"angle": POINTS},
                  raise_on_failure=True)
    message = str(caught.value)
    assert "input angle (4,)" in message
    assert "angle[3]: engine 0.9092974268, numeric -0.4161468365" in message
    assert "rtol 1e-05, atol 1e-07" in message
    assert "float32 needs looser tolerances" in message
    assert "eps_machine / h" in message


def test_raise_on_failure_is_microad_error():
    with pytest.raises(MicroadError):
        gradcheck(lambda x: apply(WRONG_SIN, (x,)).sum(), [POINTS], raise_on_failure=True)


def test_raise_on_failure_quiet_when_right():
    result = gradcheck(lambda x: apply(RIGHT_SIN, (x,)).sum(), [POINTS], raise_on_failure=True)
    assert result.ok


def test_worst_elements_sorted():
    result = gradcheck(lambda x: apply(WRONG_SIN, (x,)).sum(), [POINTS])
    worst = result.inputs[0].worst
    assert worst[0].index == (2,)
    assert worst[0].abs_error >= worst[-1].abs_error


# ---------------------------------------------------------------------------
# Real functions pass
# ---------------------------------------------------------------------------

def test_notes_single_vector_layer():
    x, w = single_vector()
    dl = np.array([0.031, -0.415, 0.926])
    result = gradcheck(lambda W: (np.maximum(ma.Tensor(x) @ W, 0) * dl).sum(), {"W": w})
    assert result.ok
    assert result.inputs[0].kinks == []


def test_notes_vectorised_layer():
    x, w, dl = vectorised()
    X = np.hstack([x, np.ones((5, 1))])
    result = gradcheck(lambda X, W: np.maximum(X @ W, 0), {"X": X, "W": w})
    assert result.ok


def test_softmax_cross_entropy():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 1])
    result = gradcheck(lambda z: ma.cross_entropy(z, labels), [logits])
    assert result.ok


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(0, 1000))
def test_matmul_tanh_property(n, d, c, seed):
    rng = np.random.default_rng(seed)
    result = gradcheck(lambda a, b: np.tanh(a @ b).mean(),
                       [rng.standard_normal((n, d)), rng.standard_normal((d, c))])
    assert result.ok, str(result)


def test_float32_defaults():
    x = np.linspace(-1, 1, 6, dtype=np.float32)
    result = gradcheck(lambda x: (np.exp(x) * x).sum(), [x])
    assert result.ok
    assert (result.h, result.rtol, result.atol) == GRADCHECK_TOLERANCES[np.dtype(np.float32)]


def test_user_tolerance_tightens():
    result = gradcheck(lambda x: (np.exp(x) * x).sum(), [POINTS], atol=0.0, rtol=1e-14)
    assert not result.ok


def test_unused_input_zero():
    result = gradcheck(lambda a, b: (a * a).sum(), [POINTS, np.ones(2)])
    assert result.ok
    assert result.inputs[1].max_abs_error == 0.0


def test_constant_output():
    result = gradcheck(lambda a: ma.Tensor(3.0) * 2, [POINTS])
    assert result.ok


def test_inputs_not_mutated():
    x = POINTS.copy()
    gradcheck(lambda x: (x * x).sum(), [x])
    assert np.array_equal(x, POINTS)


def test_integer_input_promoted():
    result = gradcheck(lambda x: (x * x).sum(), [np.array([1, 2, 3])])
    assert result.ok
    assert result.dtype == np.float64


# ---------------------------------------------------------------------------
# Kinks
# ---------------------------------------------------------------------------

def test_relu_kink_left_out():
    with pytest.warns(UserWarning, match=r"x\[1\] \(at a kink\)"):
        result = gradcheck(lambda x: np.maximum(x, 0).sum(), {"x": np.array([-1.0, 0.0, 2.0])})
    assert result.ok
    assert result.inputs[0].kinks == [((1,), "at a kink")]
    assert result.inputs[0].checked == 2


def test_abs_kink_left_out():
    with pytest.warns(UserWarning):
        result = gradcheck(lambda x: np.abs(x).sum(), [np.array([0.0, 1.0])])
    assert result.inputs[0].kinks == [((0,), "at a kink")]


def test_clip_bound_left_out():
    with pytest.warns(UserWarning):
        result = gradcheck(lambda x: np.clip(x, -1.0, 1.0).sum(), [np.array([1.0, 0.5, -3.0])])
    assert result.inputs[0].kinks == [((0,), "at a kink")]


def test_max_tie_left_out():
    with pytest.warns(UserWarning):
        result = gradcheck(lambda x: x.max(), [np.array([2.0, 2.0, 1.0])])
    assert [index for index, _ in result.inputs[0].kinks] == [(0,), (1,)]
    assert result.inputs[0].checked == 1


def test_max_without_tie_checked():
    context = no_warnings()
    try:
        result = gradcheck(lambda x: x.max(), [np.array([3.0, 2.0, 1.0])])
    finally:
        context.__exit__(None, None, None)
    assert result.inputs[0].kinks == []
    assert result.ok


def test_maximum_of_itself_no_kink():
    context = no_warnings()
    try:
        result = gradcheck(lambda x: np.maximum(x, x).sum(), [np.array([0.0, 1.0])])
    finally:
        context.__exit__(None, None, None)
    assert result.inputs[0].kinks == []
    assert result.ok


def test_kink_on_intermediate():
    # relu(x - 1) has its kink at x = 1, reached through a subtraction.
    with pytest.warns(UserWarning):
        result = gradcheck(lambda x: np.maximum(x - 1.0, 0).sum(), [np.array([1.0, 3.0])])
    assert result.inputs[0].kinks == [((0,), "at a kink")]


def test_near_kink_left_out():
    with pytest.warns(UserWarning, match="within h of a kink"):
        result = gradcheck(lambda x: np.maximum(x, 0).sum(), [np.array([1e-8, 1.0])])
    assert result.inputs[0].kinks == [((0,), "within h of a kink")]


def test_kink_random_mode():
    with pytest.warns(UserWarning, match="direction"):
        result = gradcheck(lambda x: np.maximum(x, 0).sum(), [np.array([0.0, 1.0, 2.0])],
                           mode="random", directions=2)
    assert len(result.inputs[0].kinks) == 2
    assert result.inputs[0].checked == 0


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------

def test_replay_intermediate():
    x = ma.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    run = Replay(y, [h]).run({id(h): np.array([1.0, 1.0])})
    assert float(run.output) == 2.0


def test_replay_leaves_data():
    x = ma.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    Replay(y, [x]).run({id(x): np.array([5.0, 5.0])})
    assert np.array_equal(x.data, [1.0, 2.0])
    assert float(y.data) == 5.0


def test_replay_astype_float64():
    x = ma.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.astype(np.float32).sum()
    run = Replay(y, [x]).run({id(x): np.array([1.0 + 1e-12, 2.0])})
    assert run.output.dtype == np.float64
    assert float(run.output) - 3.0 > 0


def test_replay_long_chain():
    x = ma.Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1e-3
    run = Replay(y, [x]).run({id(x): np.array(2.0)})
    assert abs(float(run.output) - 7.0) < 1e-9


# ---------------------------------------------------------------------------
# Guards and report
# ---------------------------------------------------------------------------

def test_bad_mode_rejected():
    with pytest.raises(MicroadError, match="mode"):
        gradcheck(lambda x: x.sum(), [POINTS], mode="fast")


def test_bad_directions_rejected():
    with pytest.raises(MicroadError, match="directions"):
        gradcheck(lambda x: x.sum(), [POINTS], mode="random", directions=0)


def test_non_tensor_result_rejected():
    with pytest.raises(MicroadError, match="not a microad Tensor"):
        gradcheck(lambda x: 3.0, [POINTS])


def test_string_input_rejected():
    with pytest.raises(MicroadError, match="dtype"):
        gradcheck(lambda x: x.sum(), [np.array(["a"])])


def test_no_inputs_rejected():
    with pytest.raises(MicroadError, match="no inputs"):
        gradcheck(lambda: ma.Tensor(1.0), [])


def test_report_text():
    result = gradcheck(lambda x: apply(WRONG_SIN, (x,)).sum(), {"x": POINTS})
    text = result.report
    assert text.splitlines()[0] == "gradcheck (full mode, float64): FAILED"
    assert "x: worst elements:" in text
    assert "max abs err" in text


def test_report_dict():
    result = gradcheck(lambda x: apply(WRONG_SIN, (x,)).sum(), {"x": POINTS})
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is False
    assert data["inputs"][0]["name"] == "x"
    assert data["inputs"][0]["mismatches"] == 4
