"""Tests of microad.draw: the DOT text, real SVG renders, saving, the CLI and the guards.

Structure is checked on the DOT text. Renders run Graphviz's ``dot`` and are
skipped, with the reason, only where ``dot`` is not installed.
"""

import html
import re
import shutil
import sys
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microad as ma
from notes_data import PRINTED_DL, PRINTED_DW
from microad import cli
from microad.draw import (MASKED_CELL, ZERO_CELL, Diagram, DrawError, GraphvizNotFoundError,
                          escape, format_number, save)
from microad.errors import MicroadError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot program is not installed; "
                                      "install the graphviz system package to run renders")

SVG = "{http://www.w3.org/2000/svg}"

# The notes' ReLU layer: N = 5 inputs, D = 4 features, C = 3 classes, with
# their upstream gradient and their printed dW = X.T @ (dL * (logits > 0)) / N.
UPSTREAM_DL = PRINTED_DL
EXPECTED_DW = PRINTED_DW


def relu_layer():
    """Build the ReLU layer, run backward, and return its variables by name."""
    np.random.seed(1)
    n, d, c = 5, 4, 3
    features = 10 * np.random.randn(n, d)
    weights = 0.1 * np.random.randn(d, c)
    X = ma.Tensor(np.hstack([features, np.ones((n, 1))]))
    W = ma.Tensor(np.vstack([weights, np.zeros(c)]), requires_grad=True)
    logits = X @ W
    Y = np.maximum(logits, 0)
    dL = UPSTREAM_DL
    loss = (Y * dL).sum() / n
    loss.backward()
    return {"X": X, "W": W, "logits": logits, "Y": Y, "dL": dL, "loss": loss}


def node_ids(source):
    found = re.findall(r"^\s*([A-Za-z_]\w*) \[", source, flags=re.MULTILINE)
    return [name for name in found if name not in ("graph", "node", "edge")]


def node_statement(source, node_id):
    match = re.search(rf"^\s*{node_id} \[(.*)\]$", source, flags=re.MULTILINE)
    assert match is not None, f"no node {node_id} in the DOT text"
    return match.group(1)


def edges(source):
    return re.findall(r"^\s*(\w+) -> (\w+)", source, flags=re.MULTILINE)


def render_svg(diagram):
    return ET.fromstring(diagram.pipe(format="svg"))


def svg_groups(root, kind):
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == kind]


def svg_texts(root):
    return [text.text for text in root.iter(f"{SVG}text") if text.text]


# ---------------------------------------------------------------------------
# The forward view on the DOT text
# ---------------------------------------------------------------------------

def test_relu_gradient_matches_hand():
    names = relu_layer()
    np.testing.assert_allclose(names["W"].grad, EXPECTED_DW, atol=1e-7)


def test_relu_forward_nodes_and_edges():
    names = relu_layer()
    source = ma.draw(names["loss"], names, legend=False).source
    ids = node_ids(source)
    tensors = [i for i in ids if re.fullmatch(r"n\d+", i)]
    ops = [i for i in ids if i.endswith("_op")]
    assert tensors == [f"n{i}" for i in range(8)]
    assert len(ops) == 5
    assert len(edges(source)) == 5 + 7  # one op -> result edge per op, 7 operand edges


def test_relu_forward_op_labels():
    names = relu_layer()
    source = ma.draw(names["loss"], names, legend=False).source
    for call in ["matmul(X, W)", "maximum(logits, 0)", "multiply(Y, dL)", "sum(t0)",
                 "divide(t1, 5)"]:
        assert f"label=<{call}>" in source


def test_relu_forward_values_and_grads():
    names = relu_layer()
    source = ma.draw(names["loss"], names, legend=False, max_elements=25).source
    x_label = node_statement(source, "n0")
    w_label = node_statement(source, "n1")
    assert "<B>X</B>" in x_label
    assert ">16.243<" in x_label
    assert ">-23.015<" in x_label
    assert ">grad<" not in x_label
    assert ">0.953<" in w_label
    assert ">-0.38<" in w_label


def test_relu_forward_mask_cells():
    names = relu_layer()
    source = ma.draw(names["loss"], names, legend=False, max_elements=15).source
    logits = node_statement(source, "n2")
    masked = (names["logits"].data <= 0) & (names["Y"].grad != 0)
    assert logits.count(MASKED_CELL) == np.count_nonzero(masked)
    assert np.count_nonzero(masked) == 7
    assert node_statement(source, "n3").count(MASKED_CELL) == 0


def test_zero_gradient_cells():
    x = ma.Tensor([1.0, 2.0, 3.0], requires_grad=True, name="x")
    y = (x * 0.0).sum()
    y.backward()
    label = node_statement(ma.draw(y, legend=False).source, "n0")
    assert label.count(ZERO_CELL) == 3
    assert label.count(MASKED_CELL) == 0


def test_kind_styles():
    names = relu_layer()
    source = ma.draw(names["loss"], names, legend=False).source
    assert 'fillcolor="#cfe2f3"' in node_statement(source, "n1")          # W, a parameter
    assert "dashed" in node_statement(source, "n0")                      # X, a constant
    assert 'fillcolor="#ffffff"' in node_statement(source, "n2")         # logits
    assert "peripheries=2" in node_statement(source, "n7")               # loss, the output
    assert "peripheries" not in node_statement(source, "n6")


def test_legend_forward_and_backward_entries():
    names = relu_layer()
    source = ma.draw(names["loss"], names).source
    legend = node_statement(source, "legend")
    assert "parameter: leaf with requires_grad" in legend
    assert "constant: no gradient" in legend
    assert MASKED_CELL in legend
    assert "backward step" not in legend


def test_legend_off():
    names = relu_layer()
    source = ma.draw(names["loss"], names, legend=False).source
    assert "legend" not in source


def test_values_and_grads_off():
    names = relu_layer()
    source = ma.draw(names["loss"], names, values=False, grads=False, legend=False).source
    assert ">value<" not in source
    assert ">grad<" not in source
    assert "<B>logits</B>" in source


def test_precision_rounds_cells():
    names = relu_layer()
    source = ma.draw(names["loss"], names, precision=1, max_elements=25, legend=False).source
    x_label = node_statement(source, "n0")
    assert ">16.2<" in x_label
    assert ">16.243<" not in x_label


def test_large_tensor_summary():
    x = ma.Tensor(np.array([0.0, 0.0, 1.0, 3.0] * 5), requires_grad=True, name="x")
    y = (x * 2.0).sum()
    y.backward()
    label = node_statement(ma.draw(y, legend=False).source, "n0")
    assert "min 0  max 3  mean 1  zeros 50.0%" in label
    assert "min 2  max 2  mean 2  zeros 0.0%" in label
    assert "<TABLE BORDER=\"0\" CELLBORDER=\"1\"" not in label


def test_max_elements_zero_summarises():
    x = ma.Tensor(3.0, requires_grad=True, name="x")
    label = node_statement(ma.draw(x * 2.0, max_elements=0, legend=False).source, "n0")
    assert "min 3  max 3  mean 3  zeros 0.0%" in label


def test_grad_missing_before_backward():
    x = ma.Tensor([1.0, -1.0], requires_grad=True, name="x")
    source = ma.draw(np.maximum(x, 0).sum(), legend=False).source
    assert ">grad<" not in source
    assert ">value<" in source


def test_op_label_params_and_index():
    x = ma.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="x")
    column = x[:, 0]
    rows = x.sum(axis=1, keepdims=True)
    power = 2.0 ** x
    source = ma.draw(column.sum() + rows.sum() + power.sum(), legend=False).source
    assert "label=<x[:, 0]>" in source
    assert "label=<sum(x, axis=(1,), keepdims=True)>" in source
    assert "label=<power(2, x)>" in source


def test_op_label_many_operands():
    parts = [ma.Tensor([float(i)], requires_grad=True, name=f"p{i}") for i in range(6)]
    joined = ma.concatenate(parts)
    source = ma.draw(joined, legend=False).source
    assert "concatenate(p0, p1, p2, +3 more, axis=0)" in source


def test_tensor_used_twice_has_two_edges():
    x = ma.Tensor(2.0, requires_grad=True, name="x")
    source = ma.draw(x * x, legend=False).source
    assert edges(source).count(("n0", "n1_op")) == 2


# ---------------------------------------------------------------------------
# Determinism and escaping
# ---------------------------------------------------------------------------

def test_determinism_same_graph():
    names = relu_layer()
    first = ma.draw(names["loss"], names).source
    second = ma.draw(names["loss"], names).source
    assert first == second


def test_determinism_rebuilt_graph():
    first_names = relu_layer()
    first = ma.draw(first_names["loss"], first_names).source
    second_names = relu_layer()
    second = ma.draw(second_names["loss"], second_names).source
    assert first_names["W"] is not second_names["W"]
    assert first == second
    assert "0x" not in first


HOSTILE_NAMES = ['a" shape=box color="red', "<b>x</b>", "{a|b}", "x\ny", "\\", "éλ∂",
                 "a & b", "]; n9 [label=x", "tab\there"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_name_escaped(name):
    x = ma.Tensor([1.0], requires_grad=True, name=name)
    y = (x * 2.0).sum()
    y.backward()
    source = ma.draw(y, legend=False).source
    assert source.isascii()
    assert node_ids(source) == ["n0", "n1", "n1_op", "n2", "n2_op"]
    assert len(edges(source)) == 4
    assert 'color="red' not in source
    assert "<b>x</b>" not in source


@needs_dot
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_name_renders(name):
    x = ma.Tensor([1.0], requires_grad=True, name=name)
    y = (x * 2.0).sum()
    y.backward()
    root = render_svg(ma.draw(y, legend=False))
    shown = name.replace("\n", "\\n").replace("\t", "\\t")
    assert len(svg_groups(root, "node")) == 5
    assert len(svg_groups(root, "edge")) == 4
    assert shown in svg_texts(root)


@given(st.text(max_size=30))
def test_escape_roundtrip(text):
    escaped = escape(text)
    assert escaped.isascii()
    for char in '<>"\n\r':
        assert char not in escaped
    assert "\n" not in html.unescape(escaped)


# Noncharacters (category Cn, such as U+FDD0) are left out: HTML unescaping
# drops their character references by design, so they cannot round-trip.
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cn")), max_size=30))
def test_escape_printable_roundtrip(text):
    assert html.unescape(escape(text)) == text


def test_names_mapping_labels():
    x = ma.Tensor([1.0], requires_grad=True)
    hidden = x * 3.0
    source = ma.draw(hidden, {"weights": x, "scaled": hidden}, legend=False).source
    assert "<B>weights</B>" in source
    assert "<B>scaled</B>" in source
    assert "multiply(weights, 3)" in source


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (2.5449, "2.545"), (-0.0, "0"), (0.0, "0"), (1.0, "1"), (16.2434536, "16.243"),
    (4e-7, "4e-07"), (np.inf, "inf"), (np.nan, "nan"), (3, "3"), (np.True_, "True"),
    (2.5e7, "2.5e+07"),
])
def test_format_number_cases(value, expected):
    assert format_number(value) == expected


@given(st.floats(min_value=-1e5, max_value=1e5, allow_nan=False), st.integers(0, 6))
def test_format_number_rounds(value, precision):
    shown = float(format_number(value, precision))
    rounded = float(np.round(value, precision))
    if rounded != 0 or value == 0:
        # np.round rounds the scaled value half to even, so compare with it,
        # not with Python's round(), which can differ in the last digit.
        assert shown == pytest.approx(rounded, rel=1e-12, abs=1e-12)
    else:
        assert shown == pytest.approx(value, rel=0.5)


# ---------------------------------------------------------------------------
# Large graphs
# ---------------------------------------------------------------------------

def long_chain(length):
    x = ma.Tensor(1.0, requires_grad=True, name="x")
    y = x
    for _ in range(length - 1):
        y = y * 1.0001
    return y


def test_chain_collapsed():
    y = long_chain(10_000)
    y.backward()
    source = ma.draw(y, max_nodes=50, legend=False).source
    ids = node_ids(source)
    assert len([i for i in ids if re.fullmatch(r"n\d+", i)]) == 50
    assert "more_tensors" in ids
    assert "+9,950 more tensors" in node_statement(source, "more_tensors")
    assert ("more_tensors", "n9950_op") in edges(source)
    assert "n9999" in ids
    assert "n0" not in ids


def test_chain_full_without_recursion():
    y = long_chain(10_000)
    source = ma.draw(y, values=False, grads=False, legend=False).source
    ids = node_ids(source)
    assert len(ids) == 10_000 + 9_999
    assert len(edges(source)) == 2 * 9_999


def test_max_nodes_keeps_nearest():
    a = ma.Tensor([1.0], requires_grad=True, name="a")
    b = ma.Tensor([2.0], requires_grad=True, name="b")
    far = (a * b) * 2.0
    y = far + b
    source = ma.draw(y, max_nodes=3, legend=False).source
    assert "<B>b</B>" in source
    assert "<B>a</B>" not in source
    assert "+2 more tensors" in source


def test_max_nodes_above_size_changes_nothing():
    names = relu_layer()
    full = ma.draw(names["loss"], names).source
    assert ma.draw(names["loss"], names, max_nodes=8).source == full


def test_group_by_prefix_clusters():
    w1 = ma.Tensor([1.0], requires_grad=True, name="layer1.W")
    b1 = ma.Tensor([0.5], requires_grad=True, name="layer1.b")
    w2 = ma.Tensor([2.0], requires_grad=True, name="layer2/W")
    h = w1 * 3.0 + b1
    h.name = "layer1.out"
    y = (h * w2).sum()
    source = ma.draw(y, group_by="prefix", legend=False).source
    clusters = re.findall(r"subgraph (cluster_\d+) \{(.*?)\n\t\}", source, flags=re.DOTALL)
    assert [name for name, _ in clusters] == ["cluster_0", "cluster_1"]
    first, second = clusters[0][1], clusters[1][1]
    assert "label=<layer1>" in first
    assert "<B>layer1.W</B>" in first
    assert "<B>layer1.b</B>" in first
    assert "<B>layer1.out</B>" in first
    assert "label=<layer2>" in second
    assert "<B>layer2/W</B>" in second


def test_group_by_none_has_no_clusters():
    w1 = ma.Tensor([1.0], requires_grad=True, name="layer1.W")
    source = ma.draw(w1 * 2.0, legend=False).source
    assert "subgraph" not in source


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, fragment", [
    ({"view": "sideways"}, "view='sideways' is invalid"),
    ({"precision": -1}, "precision=-1 is invalid"),
    ({"precision": 1.5}, "precision=1.5 is invalid"),
    ({"max_nodes": 0}, "max_nodes=0 is invalid"),
    ({"group_by": "suffix"}, "group_by='suffix' is invalid"),
    ({"max_elements": -2}, "max_elements=-2 is invalid"),
])
def test_invalid_arguments(kwargs, fragment):
    x = ma.Tensor([1.0], requires_grad=True)
    with pytest.raises(DrawError) as info:
        ma.draw(x * 2.0, **kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, MicroadError)
    assert isinstance(info.value, ValueError)


def test_output_not_a_tensor():
    with pytest.raises(DrawError) as info:
        ma.draw(np.ones(3))
    assert "not a ndarray" in str(info.value)


# ---------------------------------------------------------------------------
# Rendering and saving
# ---------------------------------------------------------------------------

@needs_dot
def test_relu_svg_counts():
    names = relu_layer()
    root = render_svg(ma.draw(names["loss"], names, max_elements=25))
    assert len(svg_groups(root, "node")) == 8 + 5 + 1  # tensors, ops, legend
    assert len(svg_groups(root, "edge")) == 12
    texts = svg_texts(root)
    for text in ["matmul(X, W)", "maximum(logits, 0)", "logits", "16.243", "0.953", "legend"]:
        assert text in texts


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF")])
def test_save_by_extension(tmp_path, suffix, magic):
    names = relu_layer()
    path = save(ma.draw(names["loss"], names), tmp_path / f"relu{suffix}")
    assert path.read_bytes().startswith(magic)


def test_save_dot_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    names = relu_layer()
    diagram = ma.draw(names["loss"], names)
    path = save(diagram, tmp_path / "relu.dot")
    assert path.read_text(encoding="utf-8") == diagram.source


def test_save_unknown_extension(tmp_path):
    names = relu_layer()
    with pytest.raises(DrawError) as info:
        save(ma.draw(names["loss"], names), tmp_path / "relu.jpg")
    assert "'.svg', '.png'" not in str(info.value)
    assert ".svg, .png, .pdf, .dot" in str(info.value)


def install_hint_checks(message):
    assert "apt-get install graphviz" in message
    assert "brew install graphviz" in message
    assert "conda install graphviz" in message
    assert ".source" in message


def test_save_without_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    names = relu_layer()
    with pytest.raises(GraphvizNotFoundError) as info:
        save(ma.draw(names["loss"], names), tmp_path / "relu.svg")
    install_hint_checks(str(info.value))
    assert isinstance(info.value, MicroadError)
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "relu.svg").exists()


def test_render_without_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    names = relu_layer()
    with pytest.raises(GraphvizNotFoundError) as info:
        ma.draw(names["loss"], names).render(tmp_path / "relu", format="png")
    install_hint_checks(str(info.value))
    assert "as png" in str(info.value)


def test_pipe_without_dot(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GraphvizNotFoundError):
        ma.draw(ma.Tensor([1.0], requires_grad=True) * 2.0).pipe()


def test_jupyter_fallback_without_dot(monkeypatch):
    monkeypatch.setenv("PATH", "")
    bundle = ma.draw(ma.Tensor([1.0], requires_grad=True) * 2.0)._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    install_hint_checks(bundle["text/plain"])


@needs_dot
def test_jupyter_svg_with_dot():
    bundle = ma.draw(ma.Tensor([1.0], requires_grad=True) * 2.0)._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"]
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")


@needs_dot
def test_render_with_dot(tmp_path):
    diagram = ma.draw(ma.Tensor([1.0], requires_grad=True, name="x") * 2.0)
    path = diagram.render(tmp_path / "x", format="svg")
    assert isinstance(diagram, Diagram)
    assert str(path).endswith("x.svg")
    assert "x" in svg_texts(ET.parse(path).getroot())


# ---------------------------------------------------------------------------
# The backward view, on a derivation stub
# ---------------------------------------------------------------------------

def stub_derive(monkeypatch, steps_for):
    """Install a stand-in microad.explain whose derive() returns ``steps_for(root)``."""
    module = types.ModuleType("microad.explain")

    def derive(root, names=None):
        return types.SimpleNamespace(steps=steps_for(root))

    module.derive = derive
    monkeypatch.setitem(sys.modules, "microad.explain", module)


def relu_steps(names):
    def step(target, expression, reads, tensor, shape, primitive):
        return types.SimpleNamespace(target=target, expression=expression, reads=reads,
                                     tensor=tensor, shape=shape, primitive=primitive)

    return lambda root: [
        step("dt1", "dloss / 5", ("dloss",), None, (), "divide"),
        step("dY", "dt1 * dL", ("dt1", "dL"), names["Y"], (5, 3), "multiply"),
        step("dlogits", "dY * (logits > 0)", ("dY", "logits"), names["logits"], (5, 3),
             "maximum"),
        step("dW", "X.T @ dlogits", ("X", "dlogits"), names["W"], (5, 3), "matmul"),
    ]


def test_backward_view_stub_steps(monkeypatch):
    names = relu_layer()
    stub_derive(monkeypatch, relu_steps(names))
    source = ma.draw(names["loss"], names, view="backward", legend=False,
                     max_elements=15).source
    ids = node_ids(source)
    assert [i for i in ids if i.startswith("b")] == ["b0", "b1", "b2", "b3"]
    assert not [i for i in ids if re.fullmatch(r"n\d+(_op)?", i)]
    assert "<B>dlogits = dY * (logits &gt; 0)</B>" in node_statement(source, "b2")
    assert ("b1", "b2") in edges(source)
    assert ("b2", "b3") in edges(source)
    assert node_statement(source, "b2").count(MASKED_CELL) == 7


def test_backward_view_stub_references(monkeypatch):
    names = relu_layer()
    stub_derive(monkeypatch, relu_steps(names))
    source = ma.draw(names["loss"], names, view="backward", legend=False).source
    references = {node_statement(source, i).split("label=<")[1].split(">")[0]: i
                  for i in node_ids(source) if i.startswith("r")}
    assert sorted(references) == ["X", "dL", "dloss", "logits"]
    assert (references["logits"], "b2") in edges(source)


def test_both_view_stub_links(monkeypatch):
    names = relu_layer()
    stub_derive(monkeypatch, relu_steps(names))
    source = ma.draw(names["loss"], names, view="both").source
    assert ("n2", "b2") in edges(source)       # dlogits reads logits
    assert ("b2", "n2") in edges(source)       # and is the gradient of logits
    assert ("n0", "b3") in edges(source)       # dW reads X
    assert "backward step" in node_statement(source, "legend")
    assert "parameter" in node_statement(source, "legend")


def test_backward_view_stub_cap(monkeypatch):
    names = relu_layer()
    stub_derive(monkeypatch, relu_steps(names))
    source = ma.draw(names["loss"], names, view="backward", max_nodes=2, legend=False).source
    assert [i for i in node_ids(source) if re.fullmatch(r"b\d+", i)] == ["b0", "b1"]
    assert "+2 more gradient steps" in node_statement(source, "more_steps")


def test_backward_view_without_explain(monkeypatch):
    monkeypatch.setitem(sys.modules, "microad.explain", None)
    names = relu_layer()
    with pytest.raises(DrawError) as info:
        ma.draw(names["loss"], names, view="backward")
    assert "view='forward'" in str(info.value)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

RELU_FILE = """\
import numpy as np
import microad as ma

np.random.seed(1)
X = ma.Tensor(np.hstack([10 * np.random.randn(5, 4), np.ones((5, 1))]))
W = ma.Tensor(np.vstack([0.1 * np.random.randn(4, 3), np.zeros(3)]), requires_grad=True)
logits = X @ W
Y = np.maximum(logits, 0)
dL = np.array({dl})
loss = (Y * dL).sum() / 5
{extra}
"""


def write_graph_file(tmp_path, extra=""):
    path = tmp_path / "relu_layer.py"
    path.write_text(RELU_FILE.format(dl=UPSTREAM_DL.tolist(), extra=extra), encoding="utf-8")
    return path


def test_cli_draw_dot(tmp_path):
    graph_file = write_graph_file(tmp_path)
    out = tmp_path / "relu.dot"
    assert cli.main(["draw", str(graph_file), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "maximum(logits, 0)" in text
    assert ">0.953<" not in text  # W has 15 elements, above the default of 12
    assert "<B>W</B>" in text
    assert ">grad<" in text


def test_cli_draw_after_file_backward(tmp_path):
    graph_file = write_graph_file(tmp_path, extra="loss.backward()")
    out = tmp_path / "relu.dot"
    assert cli.main(["draw", str(graph_file), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<B>loss</B>" in text
    assert "mean -0.008" in text   # mean of dW once, not twice
    assert "mean -0.016" not in text


def test_cli_draw_nonscalar_output(tmp_path):
    graph_file = write_graph_file(tmp_path, extra="gradient = dL")
    out = tmp_path / "relu.dot"
    assert cli.main(["draw", str(graph_file), "-o", str(out), "--tensor", "Y"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<B>Y</B>" in text
    assert "multiply" not in text
    assert ">grad<" in text


def test_cli_draw_nonscalar_without_gradient(tmp_path):
    graph_file = write_graph_file(tmp_path)
    out = tmp_path / "relu.dot"
    with pytest.warns(UserWarning, match="defines no 'gradient'"):
        assert cli.main(["draw", str(graph_file), "-o", str(out), "--tensor", "Y"]) == 0
    assert ">grad<" not in out.read_text(encoding="utf-8")


def test_cli_draw_bad_extension(tmp_path, capsys):
    graph_file = write_graph_file(tmp_path)
    assert cli.main(["draw", str(graph_file), "-o", str(tmp_path / "relu.jpg")]) == 2
    assert "use one of .svg, .png, .pdf, .dot" in capsys.readouterr().err


def test_cli_draw_without_dot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "")
    graph_file = write_graph_file(tmp_path)
    assert cli.main(["draw", str(graph_file), "-o", str(tmp_path / "relu.svg")]) == 2
    install_hint_checks(capsys.readouterr().err)


@needs_dot
def test_cli_draw_svg(tmp_path):
    graph_file = write_graph_file(tmp_path)
    out = tmp_path / "relu.svg"
    assert cli.main(["draw", str(graph_file), "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert len(svg_groups(root, "node")) == 8 + 5 + 1
    assert "maximum(logits, 0)" in svg_texts(root)


# ---------------------------------------------------------------------------
# The backward view with microad.explain.derive
# ---------------------------------------------------------------------------

def real_derive():
    try:
        from microad.explain import derive
    except ImportError:
        pytest.skip("microad.explain.derive is not available in this checkout")
    return derive


def test_relu_backward_view_steps():
    derive = real_derive()
    names = relu_layer()
    steps = derive(names["loss"], names).steps
    source = ma.draw(names["loss"], names, view="backward", max_elements=15).source
    step_ids = [i for i in node_ids(source) if re.fullmatch(r"b\d+", i)]
    assert len(step_ids) == len(steps)
    labels = {node_statement(source, i).split("<B>")[1].split("</B>")[0] for i in step_ids}
    assert "dlogits = dY * (logits &gt; 0)" in labels
    assert "dW = X.T @ dlogits" in labels
    dlogits = [i for i in step_ids if "<B>dlogits =" in node_statement(source, i)]
    assert len(dlogits) == 1
    assert node_statement(source, dlogits[0]).count(MASKED_CELL) == 7


@needs_dot
def test_relu_backward_view_svg():
    derive = real_derive()
    names = relu_layer()
    steps = derive(names["loss"], names).steps
    root = render_svg(ma.draw(names["loss"], names, view="backward"))
    forward_reads = {"X", "dL", "logits"}
    assert len(svg_groups(root, "node")) == len(steps) + len(forward_reads) + 1
    texts = svg_texts(root)
    assert "dlogits = dY * (logits > 0)" in texts
    assert "dW = X.T @ dlogits" in texts


@needs_dot
def test_relu_both_view_svg():
    derive = real_derive()
    names = relu_layer()
    steps = derive(names["loss"], names).steps
    diagram = ma.draw(names["loss"], names, view="both", max_elements=15)
    assert "rank=same" in diagram.source
    root = render_svg(diagram)
    assert len(svg_groups(root, "node")) == 8 + 5 + len(steps) + 1
    texts = svg_texts(root)
    assert "maximum(logits, 0)" in texts
    assert "dlogits = dY * (logits > 0)" in texts
    assert "0.953" in texts


def test_cli_draw_both_view(tmp_path):
    real_derive()
    graph_file = write_graph_file(tmp_path)
    out = tmp_path / "relu.dot"
    assert cli.main(["draw", str(graph_file), "-o", str(out), "--view", "both"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "maximum(logits, 0)" in text
    assert "dlogits = dY * (logits &gt; 0)" in text


def test_small_index_array_shown_by_value():
    x = ma.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True, name="x")
    picked = x[np.array([0, 2, 2])]
    source = ma.draw(picked.sum()).source
    assert "x[[0,2,2]]" in source
