"""The ReLU and softmax walk-throughs, run as a user runs them."""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

import microad as ma
from microad.demos import softmax
from notes_data import PRINTED_DW

HAS_DOT = subprocess.run(["which", "dot"], capture_output=True).returncode == 0


def run_demo(name, tmp_path):
    return subprocess.run([sys.executable, "-m", "microad", "demo", name, "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory):
    if not HAS_DOT:
        pytest.skip("Graphviz's dot program is not installed; the demo writes an SVG with it")
    folder = tmp_path_factory.mktemp("relu")
    return run_demo("relu", folder), folder


def test_relu_demo_exits_zero(relu_run):
    result, _ = relu_run
    assert result.returncode == 0, result.stderr


def test_relu_demo_writes_svg(relu_run):
    _, folder = relu_run
    root = ElementTree.parse(folder / "relu-layer.svg").getroot()
    assert root.tag.endswith("svg")
    assert "logits" in (folder / "relu-layer.svg").read_text()


def test_relu_demo_prints_notes_forward_values(relu_run):
    output = relu_run[0].stdout
    assert "logits = X @ W = [ 1.511 -4.062  4.337]" in output
    assert "[-2.599  2.545  2.45 ]" in output
    assert "[ 0.053 -1.431  0.202]" in output


def test_relu_demo_prints_notes_dw(relu_run):
    output = relu_run[0].stdout
    for row in np.around(PRINTED_DW, 3):
        assert np.array2string(row, separator=" ", suppress_small=True) in output


def test_relu_demo_diagnoses_notes_mistakes(relu_run):
    output = relu_run[0].stdout
    assert "ReLU mask missing" in output
    assert "rows and columns swapped" in output
    assert "differs in column(s) [1]" in output


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_softmax_demo_agrees_with_hand_formula(tmp_path):
    result = run_demo("softmax", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "softmax-layer.svg").is_file()
    assert "all agree" in result.stdout


def test_softmax_gradients_match_hand_formula_to_1e_12():
    tensors = softmax.build()
    tensors["loss"].backward()
    hand = softmax.hand_gradients(tensors["X"].data, tensors["logits"].data)
    np.testing.assert_allclose(tensors["logits"].grad, hand["dlogits"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tensors["W"].grad, hand["dW"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(tensors["b"].grad, hand["db"], rtol=0, atol=1e-12)


def test_version_flag():
    result = subprocess.run([sys.executable, "-m", "microad", "--version"],
                            capture_output=True, text=True)
    assert result.stdout.strip() == f"microad {ma.__version__}"


def test_unknown_demo_rejected():
    result = subprocess.run([sys.executable, "-m", "microad", "demo", "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def run_cli(*arguments):
    return subprocess.run([sys.executable, "-m", "microad", *arguments],
                          capture_output=True, text=True, timeout=120)


def test_graph_file_that_raises_exits_2(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("raise ValueError('boom')\n")
    result = run_cli("check", str(script))
    assert result.returncode == 2
    assert "failed with ValueError: boom" in result.stderr
    assert "Traceback" not in result.stderr


def test_draw_to_missing_folder_exits_2(tmp_path):
    script = tmp_path / "layer.py"
    script.write_text("import microad as ma\n"
                      "w = ma.Tensor([1.0, 2.0], requires_grad=True, name='w')\n"
                      "loss = (w * w).sum()\n")
    result = run_cli("draw", str(script), "-o", str(tmp_path / "missing" / "g.dot"))
    assert result.returncode == 2
    assert "No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_output_that_is_a_file_exits_2(tmp_path):
    target = tmp_path / "taken"
    target.write_text("")
    result = run_cli("demo", "relu", "--output", str(target))
    assert result.returncode == 2
    assert "is a file" in result.stderr
    assert result.stdout == ""
