"""Tests of microad.compare: verdicts, diagnoses, first divergence, report formats and the CLI.

Each diagnosis is produced from a gradient built with that mistake, and a
correct gradient of the same graph must get no diagnosis at all. The ReLU
layer of the hand derivation supplies the real cases: its dW from dL instead
of dlogits (mask missing) and its bias gradient read from the last column of
dW instead of the last row.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microad as ma
from microad import compare as compare_function
from microad.compare import (NUMERIC_MAX_ELEMENTS, ManualGradientError, Report, _use_colour,
                             load_manual_file, run_check)
from microad.errors import MicroadError
from microad.rules import Primitive
from microad.tensor import apply
from notes_data import DL1, N, NOTES_DW1, PRINTED_DL, PRINTED_DW, single_vector, vectorised

REPOSITORY = Path(__file__).resolve().parents[1]


def kinds(entry):
    return [diagnosis.kind for diagnosis in entry.diagnoses]


# ---------------------------------------------------------------------------
# Graphs
# ---------------------------------------------------------------------------

def single_vector_layer():
    """The notes' single-vector ReLU layer: loss = sum(relu(X @ W) * dL)."""
    x, w = single_vector()
    X = ma.Tensor(x)
    W = ma.Tensor(w, requires_grad=True)
    logits = X @ W
    Y = np.maximum(logits, 0)
    dL = DL1
    loss = (Y * dL).sum()
    return loss, locals()


def vectorised_layer():
    """The notes' vectorised layer with the bias as a tensor b stacked under W0."""
    x, w, dL = vectorised()
    X = ma.Tensor(np.hstack([x, np.ones((N, 1))]))
    W0 = ma.Tensor(w[:-1], requires_grad=True)
    b = ma.Tensor(w[-1], requires_grad=True)
    W = np.vstack([W0, b])
    logits = X @ W
    Y = np.maximum(logits, 0)
    loss = (Y * dL).sum() / N
    return loss, locals()


def right_vectorised(names):
    """The correct hand gradients of the vectorised layer, as the notes derive them."""
    dL = names["dL"]
    dlogits = dL * (names["logits"].data > 0) / N
    dW = names["X"].data.T @ dlogits
    return {"dlogits": dlogits, "dW": dW, "db": dW[-1, :], "dY": dL / N}


def square_product():
    """logits = X @ W with square operands, so every product order has a valid shape."""
    rng = np.random.default_rng(3)
    X = ma.Tensor(rng.standard_normal((3, 3)), requires_grad=True)
    W = ma.Tensor(rng.standard_normal((3, 3)), requires_grad=True)
    G = rng.standard_normal((3, 3))
    logits = X @ W
    loss = (logits * G).sum()
    return loss, locals()


def broadcast_bias():
    """logits = X @ W + b with b of shape (3,) broadcast over the 4 rows."""
    rng = np.random.default_rng(4)
    X = ma.Tensor(rng.standard_normal((4, 2)))
    W = ma.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = ma.Tensor(rng.standard_normal(3), requires_grad=True)
    G = rng.standard_normal((4, 3))
    logits = X @ W + b
    loss = (logits * G).sum()
    return loss, locals()


# ---------------------------------------------------------------------------
# The notes' two mistakes
# ---------------------------------------------------------------------------

def test_notes_single_vector_mask_missing():
    loss, names = single_vector_layer()
    report = compare_function(loss, {"dW": NOTES_DW1}, names=names)
    entry = report["dW"]
    assert not report.ok
    assert entry.verdict == "mismatch"
    assert "ReLU mask missing" in kinds(entry)
    assert entry.mismatch_positions == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]
    assert entry.mismatch_count == 5


def test_notes_single_vector_mask_message():
    loss, names = single_vector_layer()
    report = compare_function(loss, {"dW": NOTES_DW1}, names=names)
    message = report["dW"].diagnoses[0].message
    assert "(logits > 0)" in message
    assert "[1] of logits" in message


def test_notes_single_vector_right_dw():
    loss, names = single_vector_layer()
    dlogits = DL1 * (names["logits"].data > 0)
    report = compare_function(loss, {"dW": np.outer(names["X"].data, dlogits),
                                     "dlogits": dlogits}, names=names)
    assert report.ok
    assert all(entry.diagnoses == [] for entry in report.entries)


def test_notes_bias_column_instead_of_row():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    manual["db"] = manual["dW"][:, manual["dW"].shape[1] - 1]
    report = compare_function(loss, manual, names=names)
    entry = report["db"]
    assert entry.verdict == "shape mismatch"
    assert kinds(entry) == ["rows and columns swapped"]
    assert "dW[:, -1]" in entry.diagnoses[0].message
    assert "dW[-1, :]" in entry.diagnoses[0].message


def test_notes_bias_column_same_values_as_notes():
    loss, names = vectorised_layer()
    report = compare_function(loss, {"db": PRINTED_DW[:, -1]}, names=names, atol=1e-7)
    assert kinds(report["db"]) == ["rows and columns swapped"]


def test_notes_printed_dw_agrees():
    loss, names = vectorised_layer()
    report = compare_function(loss, {"dW": PRINTED_DW}, names=names, atol=1e-7)
    assert report.ok
    assert report["dW"].diagnoses == []


def test_notes_printed_dw_fails_default_atol():
    # The printed table has 8 decimals, so it differs from the engine by up to
    # 5e-9, above the float64 default atol of 1e-9.
    assert np.allclose(vectorised()[2], PRINTED_DL, rtol=0, atol=5e-9)
    loss, names = vectorised_layer()
    report = compare_function(loss, {"dW": PRINTED_DW}, names=names)
    assert not report.ok
    assert report["dW"].max_abs_error < 1e-8


def test_notes_right_gradients_ok():
    loss, names = vectorised_layer()
    report = compare_function(loss, right_vectorised(names), names=names)
    assert report.ok
    assert report.root_cause is None
    for entry in report.entries:
        assert entry.diagnoses == [], entry.key
        assert entry.numeric.agrees_with_engine, entry.key
        assert entry.numeric.agrees_with_manual, entry.key


# ---------------------------------------------------------------------------
# Each diagnosis against its faulty gradient
# ---------------------------------------------------------------------------

def test_diagnosis_transposed():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"dW": manual["dW"].T}, names=names)
    assert kinds(report["dW"]) == ["transposed"]


def test_diagnosis_transposed_square():
    loss, names = square_product()
    dW = names["X"].data.T @ names["G"]
    report = compare_function(loss, {"dW": dW.T}, names=names)
    assert "transposed" in kinds(report["dW"])


def test_diagnosis_scale_missing_division():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"dW": manual["dW"] * N}, names=names)
    entry = report["dW"]
    assert kinds(entry) == ["scaled by a constant"]
    assert "division by 5 is missing" in entry.diagnoses[0].message


def test_diagnosis_scale_extra_division():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"dW": manual["dW"] / N}, names=names)
    message = report["dW"].diagnoses[0].message
    assert kinds(report["dW"]) == ["scaled by a constant"]
    assert "0.2 = 1/5" in message
    assert "extra division by 5" in message


def test_diagnosis_scale_other_factor():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"dW": manual["dW"] * 1.37}, names=names)
    assert kinds(report["dW"]) == ["scaled by a constant"]
    assert "1.37" in report["dW"].diagnoses[0].message


def test_diagnosis_sign_flipped():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"dW": -manual["dW"]}, names=names)
    assert kinds(report["dW"]) == ["sign flipped"]


def test_diagnosis_mask_missing_intermediate():
    loss, names = vectorised_layer()
    report = compare_function(loss, {"dlogits": names["dL"] / N}, names=names)
    entry = report["dlogits"]
    assert kinds(entry)[0] == "ReLU mask missing"
    assert "only where the mask is 0" in entry.diagnoses[0].message


def test_diagnosis_mask_wrong_tensor():
    loss, names = vectorised_layer()
    wrong_mask = names["dL"] > 0
    report = compare_function(loss, {"dlogits": names["dL"] / N * wrong_mask}, names=names)
    entry = report["dlogits"]
    assert "ReLU mask applied to the wrong tensor" in kinds(entry)
    assert "ReLU mask missing" not in kinds(entry)
    message = entry.diagnoses[kinds(entry).index("ReLU mask applied to the wrong tensor")].message
    assert "(dL > 0)" in message


def test_diagnosis_missing_sum():
    loss, names = broadcast_bias()
    report = compare_function(loss, {"db": names["G"]}, names=names)
    entry = report["db"]
    # G is also dlogits, and db is its sum over axis 0.
    assert kinds(entry) == ["missing sum over a broadcast axis", "gradient of another variable"]
    assert "axis 0" in entry.diagnoses[0].message


def test_diagnosis_product_order():
    loss, names = square_product()
    dlogits = names["G"]
    report = compare_function(loss, {"dW": dlogits @ names["X"].data}, names=names)
    entry = report["dW"]
    assert "operands of a product in the wrong order" in kinds(entry)
    message = entry.diagnoses[kinds(entry).index("operands of a product in the wrong order")].message
    assert "dlogits @ X" in message
    assert "X.T @ dlogits" in message


def test_diagnosis_product_order_transpose():
    loss, names = square_product()
    dlogits = names["G"]
    report = compare_function(loss, {"dX": (names["W"].data @ dlogits).T}, names=names)
    assert "operands of a product in the wrong order" in kinds(report["dX"])


def test_diagnosis_other_variable():
    loss, names = square_product()
    dX = names["G"] @ names["W"].data.T
    report = compare_function(loss, {"dW": dX}, names=names)
    entry = report["dW"]
    assert "gradient of another variable" in kinds(entry)
    assert "dX" in entry.diagnoses[kinds(entry).index("gradient of another variable")].message


CORRECT_CASES = [
    ("vectorised", vectorised_layer),
    ("square", square_product),
    ("broadcast", broadcast_bias),
    ("single", single_vector_layer),
]


@pytest.mark.parametrize("name, build", CORRECT_CASES)
def test_correct_gradients_no_diagnosis(name, build):
    loss, names = build()
    engine = {}
    ma.backprop.walk(loss, np.ones(()), visit=lambda t, g: engine.setdefault(id(t), np.array(g)))
    labels = ma.graph.label_tensors(ma.graph.topological_order(loss, grad_only=False), names)
    manual = {"d" + labels[key]: value for key, value in engine.items()
              if not labels[key].startswith("t")}
    report = compare_function(loss, manual, names=names)
    assert report.ok
    for entry in report.entries:
        assert entry.diagnoses == [], entry.key
        assert entry.cause is None, entry.key


# ---------------------------------------------------------------------------
# Three-way comparison and the first divergence
# ---------------------------------------------------------------------------

def test_numeric_confirms_engine():
    loss, names = vectorised_layer()
    report = compare_function(loss, {"dlogits": names["dL"] / N}, names=names)
    numeric = report["dlogits"].numeric
    assert numeric.agrees_with_engine
    assert numeric.agrees_with_manual is False
    assert numeric.checked == 15


def test_numeric_off():
    loss, names = vectorised_layer()
    report = compare_function(loss, {"dlogits": names["dL"] / N}, names=names, numeric=False)
    assert report["dlogits"].numeric is None
    assert report["dlogits"].verdict == "mismatch"


def test_engine_suspect_wrong_rule():
    wrong_cos = Primitive("cos_wrong", np.cos, (lambda g, out, x: g * np.sin(x),))
    x = ma.Tensor(np.array([0.3, 1.1, -0.7]), requires_grad=True, name="x")
    loss = apply(wrong_cos, (x,)).sum()
    report = compare_function(loss, {"dx": -np.sin(x.data)})
    assert report["dx"].verdict == "engine suspect"
    assert not report.ok
    assert any("engine's derivative rule" in note for note in report["dx"].notes)


def test_divergence_inherited():
    loss, names = vectorised_layer()
    wrong_dlogits = names["dL"] / N
    manual = {"dW": names["X"].data.T @ wrong_dlogits, "dlogits": wrong_dlogits}
    report = compare_function(loss, manual, names=names)
    assert report.root_cause == "dlogits"
    assert report["dlogits"].cause == "root cause"
    assert report["dW"].cause == "inherited"
    assert "inherits the error of dlogits" in report["dW"].cause_note


def test_divergence_downstream_own_mistake():
    loss, names = vectorised_layer()
    wrong_dlogits = names["dL"] / N
    manual = {"dW": (names["X"].data.T @ wrong_dlogits).T, "dlogits": wrong_dlogits}
    report = compare_function(loss, manual, names=names)
    assert report["dW"].cause == "downstream"
    assert "downstream of dlogits" in report["dW"].cause_note
    assert kinds(report["dW"]) == ["transposed"]


def test_divergence_independent():
    loss, names = square_product()
    dX = names["G"] @ names["W"].data.T
    dW = names["X"].data.T @ names["G"]
    report = compare_function(loss, {"dX": -dX, "dW": 2 * dW}, names=names)
    causes = sorted(entry.cause for entry in report.entries)
    assert causes == ["independent", "root cause"]


def test_entries_in_backward_order():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"db": manual["db"], "dW": manual["dW"],
                                     "dlogits": manual["dlogits"]}, names=names)
    assert [entry.key for entry in report.entries] == ["dlogits", "dW", "db"]


# ---------------------------------------------------------------------------
# Keys, inputs and guards
# ---------------------------------------------------------------------------

def test_key_without_d():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    report = compare_function(loss, {"W": manual["dW"]}, names=names)
    assert report.ok
    assert report["W"].label == "W"


def test_key_from_tensor_name():
    x = ma.Tensor([1.0, 2.0], requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": np.array([2.0, 4.0])})
    assert report.ok


def test_unknown_key_lists_names():
    loss, names = vectorised_layer()
    with pytest.raises(ManualGradientError) as caught:
        compare_function(loss, {"dV": np.zeros(3)}, names=names)
    message = str(caught.value)
    assert "'dV'" in message
    assert "dW" in message
    assert "dlogits" in message


def test_constant_key_rejected():
    loss, names = vectorised_layer()
    with pytest.raises(ManualGradientError, match="does not require grad"):
        compare_function(loss, {"dX": np.zeros((5, 5))}, names=names)


def test_ambiguous_key_rejected():
    a = ma.Tensor([1.0], requires_grad=True, name="x")
    b = ma.Tensor([2.0], requires_grad=True, name="dx")
    with pytest.raises(ManualGradientError, match="ambiguous"):
        compare_function((a * b).sum(), {"dx": np.array([2.0])})


def test_repeated_label_rejected():
    a = ma.Tensor([1.0], requires_grad=True, name="w")
    b = ma.Tensor([2.0], requires_grad=True, name="w")
    with pytest.raises(ManualGradientError, match="several tensors"):
        compare_function((a * b).sum(), {"dw": np.array([2.0])})


def test_string_manual_rejected():
    x = ma.Tensor([1.0], requires_grad=True, name="x")
    with pytest.raises(ManualGradientError, match="dtype"):
        compare_function((x * x).sum(), {"dx": np.array(["a"])})


def test_empty_manual_rejected():
    x = ma.Tensor([1.0], requires_grad=True, name="x")
    with pytest.raises(ManualGradientError, match="non-empty dict"):
        compare_function((x * x).sum(), {})


def test_vector_output_needs_gradient():
    loss, names = single_vector_layer()
    with pytest.raises(MicroadError, match="gradient="):
        compare_function(names["Y"], {"dW": NOTES_DW1}, names=names)


def test_vector_output_with_gradient():
    loss, names = single_vector_layer()
    report = compare_function(names["Y"], {"dW": NOTES_DW1}, names=names, gradient=DL1)
    assert "ReLU mask missing" in kinds(report["dW"])


def test_output_without_grad_rejected():
    x = ma.Tensor([1.0, 2.0], name="x")
    with pytest.raises(MicroadError, match="does not require grad"):
        compare_function((x * x).sum(), {"dx": np.zeros(2)})


def test_float32_tolerances():
    x = ma.Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": np.array([2.0, 4.00001], dtype=np.float32)})
    entry = report["dx"]
    assert (entry.rtol, entry.atol) == (1e-4, 1e-5)
    assert entry.ok


def test_float64_tolerances_strict():
    x = ma.Tensor(np.array([1.0, 2.0]), requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": np.array([2.0, 4.00001])})
    entry = report["dx"]
    assert (entry.rtol, entry.atol) == (1e-7, 1e-9)
    assert not entry.ok


def test_user_tolerances():
    x = ma.Tensor(np.array([1.0, 2.0]), requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": np.array([2.0, 4.00001])}, atol=1e-4)
    assert report.ok


def test_manual_not_mutated():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    saved = {key: value.copy() for key, value in manual.items()}
    compare_function(loss, manual, names=names)
    for key, value in manual.items():
        assert np.array_equal(value, saved[key]), key


def test_kink_left_out_with_warning():
    x = ma.Tensor(np.array([0.0, 2.0, -1.0]), requires_grad=True, name="x")
    loss = np.maximum(x, 0).sum()
    with pytest.warns(UserWarning, match="not differentiable"):
        report = compare_function(loss, {"dx": np.array([0.0, 1.0, 0.0])})
    assert report.ok
    assert report["dx"].numeric.kinks == [((0,), "at a kink")]
    assert report["dx"].numeric.checked == 2


def test_numeric_sampled_above_limit(monkeypatch):
    monkeypatch.setattr(sys.modules["microad.compare"], "NUMERIC_MAX_ELEMENTS", 10)
    x = ma.Tensor(np.linspace(-1, 1, 40), requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": 2 * x.data})
    assert report["dx"].numeric.checked == 10
    assert report["dx"].numeric.total == 40
    assert NUMERIC_MAX_ELEMENTS >= 100


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from([-1.0, 2.0, 3.0, 0.5]))
def test_matmul_relu_property(n, d, c, factor):
    rng = np.random.default_rng(n * 100 + d * 10 + c)
    X = ma.Tensor(rng.standard_normal((n, d)))
    W = ma.Tensor(rng.standard_normal((d, c)), requires_grad=True)
    logits = X @ W
    G = rng.standard_normal((n, c))
    loss = (np.maximum(logits, 0) * G).sum()
    dW = X.data.T @ (G * (logits.data > 0))
    if np.abs(dW).max() < 1e-6:
        return
    right = compare_function(loss, {"dW": dW}, names=locals())
    wrong = compare_function(loss, {"dW": factor * dW}, names=locals())
    expected = "sign flipped" if factor == -1.0 else "scaled by a constant"
    assert right.ok
    assert right["dW"].diagnoses == []
    assert expected in kinds(wrong["dW"])


# ---------------------------------------------------------------------------
# Report formats
# ---------------------------------------------------------------------------

def test_text_table():
    loss, names = single_vector_layer()
    text = str(compare_function(loss, {"dW": NOTES_DW1}, names=names))
    assert text.splitlines()[0] == "Gradients of loss: 1 manual gradient(s) checked, 1 differ"
    assert "max abs err" in text
    assert "MISMATCH" in text
    assert "likely ReLU mask missing" in text
    assert "\033[" not in text


def test_text_colour():
    loss, names = single_vector_layer()
    report = compare_function(loss, {"dW": NOTES_DW1}, names=names)
    assert "\033[31mMISMATCH\033[0m" in report.to_text(colour=True)


class FakeTerminal:
    def isatty(self):
        return True


def test_colour_on_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _use_colour(FakeTerminal())


def test_colour_off_no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _use_colour(FakeTerminal())


def test_colour_off_pipe(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert not _use_colour(open(os.devnull, "w"))


def test_html_escaped():
    x = ma.Tensor([1.0, 2.0], requires_grad=True, name="<x&y>")
    report = compare_function((x * x).sum(), {"<x&y>": np.array([2.0, 5.0])})
    page = report._repr_html_()
    assert "&lt;x&amp;y&gt;" in page
    assert "<x&y>" not in page
    assert "<table>" in page


def test_json_round_trip():
    loss, names = vectorised_layer()
    manual = right_vectorised(names)
    manual["db"] = manual["dW"][:, -1]
    data = json.loads(compare_function(loss, manual, names=names).to_json())
    assert data["ok"] is False
    assert data["root_cause"] == "db"
    entry = [e for e in data["entries"] if e["name"] == "db"][0]
    assert entry["diagnoses"][0]["kind"] == "rows and columns swapped"
    assert entry["manual_shape"] == [5]
    assert entry["engine_shape"] == [3]


def test_json_nan_manual():
    x = ma.Tensor([1.0, 2.0], requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": np.array([np.nan, 4.0])})
    data = json.loads(report.to_json())
    assert data["entries"][0]["max_abs_error"] == "nan"
    assert data["entries"][0]["mismatch_count"] == 1
    assert report["dx"].verdict == "mismatch"


def test_report_getitem_unknown():
    x = ma.Tensor([1.0], requires_grad=True, name="x")
    report = compare_function((x * x).sum(), {"dx": np.array([2.0])})
    with pytest.raises(KeyError):
        report["dz"]
    assert isinstance(report, Report)


# ---------------------------------------------------------------------------
# Manual gradient files and the `microad check` command
# ---------------------------------------------------------------------------

GRAPH_FILE = textwrap.dedent('''
    import numpy as np
    import microad as ma

    np.random.seed(1)
    N, D, C = 5, 4, 3
    X = ma.Tensor(np.hstack([10 * np.random.randn(N, D), np.ones((N, 1))]))
    W0 = ma.Tensor(0.1 * np.random.randn(D, C), requires_grad=True)
    b = ma.Tensor(np.zeros(C), requires_grad=True)
    W = np.vstack([W0, b])
    logits = X @ W
    Y = np.maximum(logits, 0)
    dL = np.array({dl})
    loss = (Y * dL).sum() / N

    dlogits = dL * (logits.data > 0) / N
    dW = X.data.T @ dlogits
    db = dW[{bias}]
    manual = {{"dlogits": dlogits, "dW": dW, "db": db}}
''')


def write_graph(tmp_path, bias="-1, :"):
    path = tmp_path / "relu_layer.py"
    path.write_text(GRAPH_FILE.format(dl=PRINTED_DL.tolist(), bias=bias))
    return path


def run_cli(*args):
    environment = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "microad", "check", *map(str, args)],
                          capture_output=True, text=True, cwd=REPOSITORY, env=environment,
                          timeout=120)


def test_cli_right_file(tmp_path):
    result = run_cli(write_graph(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "3 manual gradient(s) checked, all agree" in result.stdout


def test_cli_wrong_bias(tmp_path):
    result = run_cli(write_graph(tmp_path, bias=":, -1"))
    assert result.returncode == 1, result.stderr
    assert "rows and columns swapped" in result.stdout
    assert "\033[" not in result.stdout


def test_cli_json(tmp_path):
    result = run_cli(write_graph(tmp_path, bias=":, -1"), "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert data["root_cause"] == "db"


def test_cli_npy_manual(tmp_path):
    path = write_graph(tmp_path)
    np.save(tmp_path / "dW.npy", np.zeros((5, 3)))
    result = run_cli(path, "--manual", tmp_path / "dW.npy")
    assert result.returncode == 1
    assert "dW" in result.stdout


def test_cli_npz_manual(tmp_path):
    path = write_graph(tmp_path)
    np.savez(tmp_path / "grads.npz", dW0=np.zeros((4, 3)))
    result = run_cli(path, "--manual", tmp_path / "grads.npz", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 1
    assert [e["name"] for e in data["entries"] if not e["ok"]] == ["dW0"]


def test_cli_pickled_manual(tmp_path):
    path = write_graph(tmp_path)
    np.save(tmp_path / "dW.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = run_cli(path, "--manual", tmp_path / "dW.npy")
    assert result.returncode == 2
    assert "unpickling" in result.stderr


def test_cli_missing_file(tmp_path):
    result = run_cli(tmp_path / "absent.py")
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_cli_output_name(tmp_path):
    path = tmp_path / "graph.py"
    path.write_text("import microad as ma\n"
                    "x = ma.Tensor([1.0, 3.0], requires_grad=True)\n"
                    "total = (x * x).sum()\n"
                    "manual = {'dx': [2.0, 6.0]}\n")
    result = run_cli(path, "--tensor", "total")
    assert result.returncode == 0, result.stderr
    assert "Gradients of total" in result.stdout


def test_run_check_no_manual(tmp_path):
    path = tmp_path / "graph.py"
    path.write_text("import microad as ma\nx = ma.Tensor([1.0], requires_grad=True)\n"
                    "loss = (x * x).sum()\n")
    args = type("Args", (), {"file": str(path), "output_name": "loss", "manual": [], "json": False})
    with pytest.raises(ManualGradientError, match="no manual gradients"):
        run_check(args)


def test_load_npz(tmp_path):
    np.savez(tmp_path / "g.npz", dW=np.ones((2, 2)), db=np.zeros(2))
    loaded = load_manual_file(tmp_path / "g.npz")
    assert sorted(loaded) == ["dW", "db"]
    assert np.array_equal(loaded["dW"], np.ones((2, 2)))


def test_load_wrong_suffix(tmp_path):
    path = tmp_path / "dW.txt"
    path.write_text("1 2 3")
    with pytest.raises(ManualGradientError, match=".npy"):
        load_manual_file(path)


def test_load_corrupt_npy(tmp_path):
    path = tmp_path / "dW.npy"
    path.write_bytes(b"not an array")
    with pytest.raises(ManualGradientError):
        load_manual_file(path)


def test_load_pickled_npz(tmp_path):
    np.savez(tmp_path / "g.npz", dW=np.array([None], dtype=object))
    with pytest.raises(ManualGradientError, match="unpickling"):
        load_manual_file(tmp_path / "g.npz")


def test_docs_example_runs(tmp_path):
    text = (REPOSITORY / "docs" / "referee.md").read_text()
    start = text.index("```python\n", text.index("## A complete graph file")) + len("```python\n")
    source = text[start:text.index("```", start)]
    path = tmp_path / "relu_layer.py"
    path.write_text(source)
    result = run_cli(path)
    assert result.returncode == 1, result.stderr
    assert "rows and columns swapped" in result.stdout
    assert "ReLU mask missing" in result.stdout


def _relu_loss_for_shapes():
    rng = np.random.default_rng(0)
    X = ma.Tensor(rng.normal(size=(5, 4)), name="X")
    W = ma.Tensor(rng.normal(size=(4, 3)), requires_grad=True, name="W")
    loss = np.maximum(X @ W, 0).sum()
    loss.backward()
    return loss, W


def _diagnosis_kinds(report):
    return [d["kind"] for d in report.to_dict()["entries"][0]["diagnoses"]]


def test_diagnosis_extra_size_one_axis():
    loss, W = _relu_loss_for_shapes()
    report = ma.compare(loss, {"dW": W.grad[..., None]}, names={"W": W}, numeric=False)
    assert _diagnosis_kinds(report) == ["extra axes of size 1"]


def test_diagnosis_scalar_is_wrong_shape():
    loss, W = _relu_loss_for_shapes()
    report = ma.compare(loss, {"dW": 1.0}, names={"W": W}, numeric=False)
    assert _diagnosis_kinds(report) == ["wrong shape"]


def test_diagnosis_unexplained_shape_mismatch():
    loss, W = _relu_loss_for_shapes()
    report = ma.compare(loss, {"dW": np.ones((3, 3))}, names={"W": W}, numeric=False)
    kinds = _diagnosis_kinds(report)
    assert kinds == ["wrong shape"]
    assert "(3, 3)" in report.to_dict()["entries"][0]["diagnoses"][0]["message"]
