"""microad.explain, derive and compile: equations and generated NumPy against the engine.

The generated code must give the engine's numbers, so every check compares
with ``microad.grad`` at rtol 1e-12 in float64. Cases cover every primitive
of ``rules.TABLE``, random graphs with fan-out, a ReLU layer with printed
reference values (``notes_data``) and a softmax layer.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microad as ma
from microad import rules
from microad.codegen import HELPER_SOURCES, numpy_source
from microad.symbolic import Symbol
from microad.tensor import apply
from notes_data import N, PRINTED_DW, vectorised

RTOL = 1e-12


# -- helpers -----------------------------------------------------------------

def run_generated(derivation, seed=None):
    """Exec the generated module and call forward_backward with the graph's own arrays."""
    namespace = {}
    exec(numpy_source(derivation), namespace)
    arguments = {name: tensor.data for name, tensor in derivation.inputs}
    arguments.update(dict(derivation.constants))
    if derivation.seed_is_input:
        arguments[derivation.seed] = seed
    return namespace["forward_backward"](**arguments)


def run_steps(derivation, seed=None):
    """Exec every forward and backward step in order and return all the variables."""
    namespace = {"np": np}
    for source in HELPER_SOURCES.values():
        exec(source, namespace)
    namespace.update({name: tensor.data for name, tensor in derivation.inputs})
    namespace.update(dict(derivation.constants))
    if derivation.seed_is_input:
        namespace[derivation.seed] = seed
    for step in derivation.forward + derivation.steps:
        exec(f"{step.target} = {step.expression}", namespace)
    return namespace


def assert_matches_engine(loss, leaves, names=None):
    """Check the generated code's output and gradients against the engine's."""
    derivation = ma.derive(loss, names)
    result = run_generated(derivation)
    expected = ma.grad(loss, leaves)
    np.testing.assert_allclose(result[derivation.output_name], loss.data, rtol=RTOL)
    gradient_names = {id(tensor): name for name, tensor in derivation.gradients}
    for leaf, engine_gradient in zip(leaves, expected):
        if id(leaf) not in gradient_names:
            # A leaf that the output does not depend on is not in the graph.
            assert not np.any(engine_gradient)
            continue
        generated = result[gradient_names[id(leaf)]]
        assert np.shape(generated) == leaf.shape
        assert np.asarray(generated).dtype == leaf.dtype
        np.testing.assert_allclose(generated, engine_gradient, rtol=RTOL, atol=1e-300)


def relu_layer(x_requires_grad=False):
    x_raw, w, dl = vectorised()
    X = ma.Tensor(np.hstack([x_raw, np.ones((N, 1))]), requires_grad=x_requires_grad, name="X")
    W = ma.Tensor(w, requires_grad=True, name="W")
    logits = X @ W
    Y = np.maximum(logits, 0)
    return X, W, logits, Y, dl


def by_target(derivation):
    return {step.target: step for step in derivation.steps}


# -- the ReLU layer ------------------------------------------------------------

def test_relu_dlogits_equation():
    X, W, logits, Y, dl = relu_layer()
    steps = by_target(ma.derive(Y, locals()))
    assert steps["dlogits"].expression == "dY * (logits > 0)"
    assert steps["dlogits"].reads == ("dY", "logits")
    assert steps["dlogits"].tensor is logits
    assert steps["dlogits"].primitive == "maximum"
    assert steps["dlogits"].shape == (5, 3)


def test_relu_dw_equation():
    X, W, logits, Y, dl = relu_layer()
    derivation = ma.derive(Y, locals())
    assert [str(step) for step in derivation.steps] == ["dlogits = dY * (logits > 0)",
                                                       "dW = X.T @ dlogits"]
    assert derivation.steps[1].tensor is W
    assert derivation.seed == "dY"
    assert derivation.seed_is_input


def test_relu_dx_when_x_requires_grad():
    X, W, logits, Y, dl = relu_layer(x_requires_grad=True)
    steps = by_target(ma.derive(Y, locals()))
    assert steps["dX"].expression == "dlogits @ W.T"
    assert steps["dW"].expression == "X.T @ dlogits"


def test_relu_generated_dw_matches_printed():
    X, W, logits, Y, dl = relu_layer()
    result = run_generated(ma.derive(Y, locals()), seed=dl)
    # The printed dW is divided by N after the product: dW = X.T @ dlogits / N.
    np.testing.assert_allclose(result["dW"] / N, PRINTED_DW, atol=1e-8)


def test_relu_generated_matches_engine():
    X, W, logits, Y, dl = relu_layer(x_requires_grad=True)
    derivation = ma.derive(Y, locals(), gradient=dl)
    result = run_generated(derivation, seed=dl)
    dX, dW = ma.grad(Y, [X, W], dl)
    np.testing.assert_allclose(result["Y"], Y.data, rtol=RTOL)
    np.testing.assert_allclose(result["dX"], dX, rtol=RTOL)
    np.testing.assert_allclose(result["dW"], dW, rtol=RTOL)


def test_relu_numpy_signature():
    X, W, logits, Y, dl = relu_layer()
    source = ma.explain(Y, locals()).to_numpy()
    assert "def forward_backward(X, W, dY):" in source
    assert "    logits = X @ W\n" in source
    assert "    Y = np.maximum(logits, 0)\n" in source
    assert 'return {"Y": Y, "dW": dW}' in source


def test_scalar_loss_seeded_with_one():
    X, W, logits, Y, dl = relu_layer()
    loss = np.sum(Y * dl) / N
    derivation = ma.derive(loss, locals())
    assert derivation.steps[0].target == "dloss"
    assert derivation.steps[0].primitive == "seed"
    assert not derivation.seed_is_input
    assert "dY" not in run_generated(derivation)
    assert "def forward_backward(X, W, dl):" in numpy_source(derivation)


def test_scalar_loss_scaling_step():
    X, W, logits, Y, dl = relu_layer()
    loss = np.sum(Y * dl) / N
    steps = ma.derive(loss, locals()).steps
    assert steps[1].expression == "dloss / 5"
    assert steps[1].primitive == "divide"
    assert steps[2].expression == f"np.broadcast_to({steps[1].target}, (5, 3))"
    assert by_target(ma.derive(loss, locals()))["dY"].expression == f"{steps[2].target} * dl"


def test_scalar_loss_generated_matches_engine():
    X, W, logits, Y, dl = relu_layer(x_requires_grad=True)
    loss = np.sum(Y * dl) / N
    assert_matches_engine(loss, [X, W], locals())


# -- engine steps: unbroadcast, accumulate, mean ------------------------------------

def test_bias_unbroadcast_step():
    X = ma.Tensor(np.arange(6.0).reshape(2, 3), name="X")
    W = ma.Tensor(np.ones((3, 4)), requires_grad=True, name="W")
    b = ma.Tensor(np.zeros(4), requires_grad=True, name="b")
    out = X @ W + b
    steps = by_target(ma.derive(out, locals()))
    assert steps["db"].expression == "dout.sum(axis=0)"
    assert steps["db"].primitive == "unbroadcast"
    assert steps["db"].shape == (4,)


def test_unbroadcast_after_product_is_own_step():
    a = ma.Tensor(np.arange(6.0).reshape(2, 3), name="a")
    s = ma.Tensor(np.ones((1, 3)), requires_grad=True, name="s")
    out = a * s
    steps = ma.derive(out, locals()).steps
    assert [str(step) for step in steps] == ["ds_broadcast = dout * a",
                                             "ds = ds_broadcast.sum(axis=0, keepdims=True)"]
    assert steps[0].tensor is None
    assert steps[1].tensor is s


def test_fan_out_accumulate_step():
    x = ma.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, name="x")
    y = np.tanh(x)
    z = (y * x).sum()
    steps = by_target(ma.derive(z, locals()))
    assert steps["dx"].primitive == "accumulate"
    assert steps["dx"].expression == "dx_from_t0 + dx_from_y"
    assert steps["dx_from_t0"].tensor is None
    assert_matches_engine(z, [x], locals())


def test_mean_scaling_step():
    x = ma.Tensor(np.ones((3, 5)), requires_grad=True, name="x")
    m = x.mean()
    steps = ma.derive(m, locals()).steps
    assert str(steps[1]) == "dx_reduced = dm / 15"
    assert str(steps[2]) == "dx = np.broadcast_to(dx_reduced, (3, 5))"


def test_named_broadcast_read_by_next_step():
    x = ma.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True, name="x")
    h = np.maximum(x, 0)
    loss = h.mean()
    steps = by_target(ma.derive(loss, locals()))
    assert steps["dh"].expression == "np.broadcast_to(dh_reduced, (2, 3))"
    assert steps["dx"].expression == "dh * (x > 0)"
    assert_matches_engine(loss, [x], locals())


def test_shared_subexpression_hoisted():
    x = ma.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]), requires_grad=True, name="x")
    m = x.max(axis=1)
    derivation = ma.derive(m, locals())
    temporaries = [step for step in derivation.steps if step.target.startswith("dx_tmp")]
    assert len(temporaries) == 1
    assert temporaries[0].expression.count("==") == 1
    assert derivation.steps[-1].expression.count(temporaries[0].target) == 2


# -- the softmax layer ----------------------------------------------------------

def softmax_layer():
    x_raw, w, _ = vectorised()
    X = ma.Tensor(np.hstack([x_raw, np.ones((N, 1))]), name="X")
    W = ma.Tensor(w, requires_grad=True, name="W")
    y = np.array([0, 2, 1, 2, 0])
    logits = X @ W
    loss = ma.cross_entropy(logits, y)
    return X, W, y, logits, loss


def test_softmax_dlogits_numbers():
    X, W, y, logits, loss = softmax_layer()
    values = run_steps(ma.derive(loss, locals()))
    exp = np.exp(logits.data - logits.data.max(axis=1, keepdims=True))
    softmax = exp / exp.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(values["dlogits"], (softmax - onehot) / N, rtol=1e-12)


def test_softmax_steps_read_sensibly():
    X, W, y, logits, loss = softmax_layer()
    derivation = ma.derive(loss, locals())
    primitives = [step.primitive for step in derivation.steps]
    assert primitives[0] == "seed"
    assert primitives[-2:] == ["log_softmax", "matmul"]
    assert "scatter_add" in primitives or "getitem" in primitives
    assert str(derivation.steps[-1]) == "dW = X.T @ dlogits"
    assert "np.exp(" in derivation.steps[-2].expression
    assert derivation.steps[-2].target == "dlogits"


def test_softmax_generated_matches_engine():
    X, W, y, logits, loss = softmax_layer()
    assert_matches_engine(loss, [W], locals())


def test_softmax_numpy_has_helper():
    X, W, y, logits, loss = softmax_layer()
    source = ma.explain(loss, locals(), format="numpy")
    assert str(source).startswith("import numpy as np\n\n\ndef scatter_add(g, shape, index):")
    assert "def forward_backward(X, W, y):" in str(source)


# -- every primitive of the table -------------------------------------------------

def _leaf(rng, shape, low=-2.0, high=2.0, name=None, dtype=np.float64):
    return ma.Tensor(rng.uniform(low, high, shape).astype(dtype), requires_grad=True, name=name)


def _case_scatter_add(rng):
    x = _leaf(rng, (3,))
    return apply(rules.scatter_add, (x,), {"shape": (4,), "index": np.array([0, 2, 0])}), [x]


def _case_unbroadcast_to(rng):
    x = _leaf(rng, (3, 4))
    return apply(rules.unbroadcast_to, (x,), {"shape": (1, 4)}), [x]


def _unary(function, low=-2.0, high=2.0):
    def case(rng):
        x = _leaf(rng, (3, 4), low, high)
        return function(x), [x]
    return case


def _binary(function, low=-2.0, high=2.0):
    def case(rng):
        a = _leaf(rng, (3, 4), low, high)
        b = _leaf(rng, (4,), low, high)
        return function(a, b), [a, b]
    return case


def _case_where(rng):
    a, b = _leaf(rng, (3, 4)), _leaf(rng, (1, 4))
    return ma.where(rng.uniform(size=(3, 4)) > 0.5, a, b), [a, b]


def _case_clip(rng):
    x, low = _leaf(rng, (3, 4)), _leaf(rng, (4,), -1.0, 0.0)
    return np.clip(x, low, 1.0), [x, low]


def _case_matmul(rng):
    a, b, v = _leaf(rng, (3, 4)), _leaf(rng, (4, 2)), _leaf(rng, (4,))
    batch = _leaf(rng, (2, 3, 4))
    out = (a @ b).sum() + (a @ v).sum() + (v @ b).sum() + (batch @ b).sum() + (v @ v)
    return out, [a, b, v, batch]


def _case_einsum(rng):
    a, b = _leaf(rng, (3, 4)), _leaf(rng, (2, 4))
    return ma.einsum("ij,kj->ik", a, b).sum() + ma.einsum("ij->j", a).sum(), [a, b]


def _case_getitem(rng):
    x = _leaf(rng, (3, 4))
    mask = x.data > 0
    return x[1:, [0, 2, 2]].sum() + x[mask].sum() + x[0, None].sum(), [x]


def _case_concatenate(rng):
    a, b = _leaf(rng, (3, 4)), _leaf(rng, (2, 4))
    return ma.concatenate([a, b, a], axis=0), [a, b]


def _case_astype(rng):
    x = _leaf(rng, (3, 4), dtype=np.float32)
    return x.astype(np.float64) * 3.0, [x]


def _case_transpose(rng):
    x, y = _leaf(rng, (3, 4)), _leaf(rng, (2, 3, 4))
    return x.T.sum() + np.transpose(y, (2, 0, 1))[1].sum(), [x, y]


PRIMITIVE_CASES = {
    "scatter_add": _case_scatter_add,
    "unbroadcast_to": _case_unbroadcast_to,
    "negative": _unary(lambda x: -x),
    "absolute": _unary(np.abs),
    "exp": _unary(np.exp),
    "log": _unary(np.log, 0.5, 2.0),
    "log1p": _unary(np.log1p, 0.5, 2.0),
    "sqrt": _unary(np.sqrt, 0.5, 2.0),
    "square": _unary(np.square),
    "tanh": _unary(np.tanh),
    "sin": _unary(np.sin),
    "cos": _unary(np.cos),
    "sigmoid": _unary(ma.sigmoid),
    "add": _binary(lambda a, b: a + b),
    "subtract": _binary(lambda a, b: a - b),
    "multiply": _binary(lambda a, b: a * b),
    "divide": _binary(lambda a, b: a / b, 0.5, 2.0),
    "power": _binary(lambda a, b: a ** b, 0.5, 2.0),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "where": _case_where,
    "clip": _case_clip,
    "matmul": _case_matmul,
    "einsum": _case_einsum,
    "sum": _unary(lambda x: x.sum(axis=0) + x.sum(axis=1, keepdims=True).sum()),
    "mean": _unary(lambda x: x.mean(axis=1)),
    "max": _unary(lambda x: x.max(axis=0)),
    "min": _unary(lambda x: x.min(axis=1, keepdims=True)),
    "logsumexp": _unary(lambda x: ma.logsumexp(x, axis=1)),
    "softmax": _unary(lambda x: ma.softmax(x, axis=0)),
    "log_softmax": _unary(lambda x: ma.log_softmax(x, axis=1)),
    "reshape": _unary(lambda x: x.reshape(2, 6)),
    "transpose": _case_transpose,
    "broadcast_to": _binary(lambda a, b: ma.broadcast_to(b, (3, 4)) * a),
    "getitem": _case_getitem,
    "concatenate": _case_concatenate,
    "astype": _case_astype,
}


def test_primitive_cases_cover_table():
    assert set(PRIMITIVE_CASES) == set(rules.TABLE)


@pytest.mark.parametrize("name", sorted(PRIMITIVE_CASES))
def test_primitive_generated_matches_engine(name):
    rng = np.random.default_rng(sorted(PRIMITIVE_CASES).index(name))
    out, leaves = PRIMITIVE_CASES[name](rng)
    weights = rng.uniform(-1.0, 1.0, out.shape)
    loss = (out * weights).sum()
    assert_matches_engine(loss, leaves)


@pytest.mark.parametrize("name", sorted(PRIMITIVE_CASES))
def test_primitive_every_step_matches_engine(name):
    rng = np.random.default_rng(sorted(PRIMITIVE_CASES).index(name))
    out, leaves = PRIMITIVE_CASES[name](rng)
    seed = rng.uniform(-1.0, 1.0, out.shape)
    derivation = ma.derive(out, gradient=seed)
    values = run_steps(derivation, seed=seed)
    for step in derivation.forward:
        if step.tensor is not None:  # temporaries have no tensor
            np.testing.assert_allclose(values[step.target], step.tensor.data, rtol=RTOL)
    for step in derivation.steps:
        if step.tensor is not None:
            expected = ma.grad(out, [step.tensor], seed)[0]
            np.testing.assert_allclose(values[step.target], expected, rtol=RTOL, atol=1e-300)


# -- random graphs ------------------------------------------------------------------

UNARY_OPS = [np.tanh, np.sin, ma.sigmoid, lambda t: t * t, lambda t: -t,
             lambda t: np.exp(np.tanh(t)), lambda t: t.sum(axis=0, keepdims=True),
             lambda t: t.mean(axis=-1, keepdims=True), lambda t: np.maximum(t, 0.1)]
BINARY_OPS = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
              lambda a, b: a / (1.5 + np.tanh(b)), np.maximum, np.minimum]


@given(seed=st.integers(0, 2**32 - 1),
       program=st.lists(st.tuples(st.booleans(), st.integers(0, 99), st.integers(0, 99),
                                  st.integers(0, 99)), min_size=1, max_size=12))
def test_random_graph_matches_engine(seed, program):
    rng = np.random.default_rng(seed)
    leaves = [_leaf(rng, (3, 4), name="x"), _leaf(rng, (4,), name="b"), _leaf(rng, (3, 1))]
    pool = list(leaves)
    for binary, op, first, second in program:
        a, b = pool[first % len(pool)], pool[second % len(pool)]
        if binary:
            pool.append(BINARY_OPS[op % len(BINARY_OPS)](a, b))
        else:
            pool.append(UNARY_OPS[op % len(UNARY_OPS)](a))
    # Every tensor feeds the loss, so tensors used more than once accumulate.
    loss = pool[-1].sum()
    for tensor in pool[len(leaves):-1]:
        loss = loss + tensor.mean()
    assert_matches_engine(loss, leaves)


# -- formats --------------------------------------------------------------------

def test_text_format_lists_shapes():
    X, W, logits, Y, dl = relu_layer()
    text = str(ma.explain(Y, locals()))
    lines = text.splitlines()
    assert lines[0] == "Backward pass of Y (5, 3), from the upstream gradient dY:"
    assert lines[1].split("#")[0].rstrip() == "  dlogits = dY * (logits > 0)"
    assert lines[1].endswith("# (5, 3)")
    assert lines[2].split("#")[0].rstrip() == "  dW      = X.T @ dlogits"


def test_latex_format_uses_odot_and_mask():
    X, W, logits, Y, dl = relu_layer()
    latex = ma.explain(Y, locals()).to_latex()
    assert r"d\mathit{logits} &= dY \odot \mathbb{1}[\mathit{logits} > 0]" in latex
    assert r"dW &= {X}^\top \, d\mathit{logits}" in latex
    assert latex.startswith("\\begin{aligned}\n")
    assert latex.endswith("\\end{aligned}")


def test_latex_format_fraction_and_subscript():
    x = ma.Tensor(np.ones((3, 5)), requires_grad=True, name="x")
    m = x.mean()
    latex = ma.explain(m, locals(), format="latex")
    assert r"\frac{dm}{15}" in str(latex)
    assert r"dx_{\mathrm{reduced}}" in str(latex)


def test_markdown_format_table():
    X, W, logits, Y, dl = relu_layer()
    markdown = ma.explain(Y, locals()).to_markdown()
    assert "| # | equation | shape | from |" in markdown
    assert "| 1 | `dlogits = dY * (logits > 0)` | (5, 3) | maximum |" in markdown
    assert "| 2 | `dW = X.T @ dlogits` | (5, 3) | matmul |" in markdown


def test_markdown_clip_mask():
    x = ma.Tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True, name="x")
    c = np.clip(x, -0.5, 1.0)
    markdown = ma.explain(c, locals()).to_markdown()
    assert "| 1 | `dx = dc * ((x >= -0.5) & (x <= 1.0))` | (3,) | clip |" in markdown


def test_jupyter_reprs():
    X, W, logits, Y, dl = relu_layer()
    explanation = ma.explain(Y, locals())
    assert explanation._repr_latex_().startswith("$$\\begin{aligned}")
    assert explanation._repr_latex_().endswith("\\end{aligned}$$")
    assert explanation._repr_markdown_() == explanation.to_markdown()
    assert explanation.steps is explanation.derivation.steps


def test_format_choice_sets_str():
    X, W, logits, Y, dl = relu_layer()
    assert str(ma.explain(Y, locals(), format="markdown")).startswith("Backward pass")
    assert "|---|" in str(ma.explain(Y, locals(), format="markdown"))
    assert "def forward_backward" in str(ma.explain(Y, locals(), format="numpy"))


def test_unknown_format_rejected():
    X, W, logits, Y, dl = relu_layer()
    with pytest.raises(ma.MicroadError, match="unknown format 'html'"):
        ma.explain(Y, locals(), format="html")


# -- bad input --------------------------------------------------------------------

def test_derive_rejects_constant_output():
    x = ma.Tensor(np.ones(3), name="x")
    with pytest.raises(ma.BackwardError, match="does not require grad"):
        ma.derive(x * 2)


def test_derive_rejects_wrong_gradient_shape():
    X, W, logits, Y, dl = relu_layer()
    with pytest.raises(ma.ShapeError, match=r"has shape \(3,\), but the output has shape \(5, 3\)"):
        ma.derive(Y, gradient=np.ones(3))


def test_derive_rejects_plain_array():
    with pytest.raises(ma.MicroadError, match="needs a microad Tensor"):
        ma.derive(np.ones(3))


def test_symbol_rejects_data_branch():
    symbol = Symbol.name("x", np.ones(3))
    with pytest.raises(ma.UnsupportedError, match="depends on the data"):
        bool(symbol > 0)


def test_labels_become_identifiers():
    w = ma.Tensor(np.ones(2), requires_grad=True, name="W 1")
    loss = (w * w).sum()
    derivation = ma.derive(loss)
    assert [name for name, _ in derivation.gradients] == ["dW_1"]
    assert_matches_engine(loss, [w])


def test_unreached_leaf_gets_zero_gradient():
    a = ma.Tensor(np.ones(2), requires_grad=True, name="a")
    b = ma.Tensor(np.ones(3), requires_grad=True, name="b")
    with ma.no_grad():
        frozen = b * 2
    loss = (a * frozen.sum()).sum()
    result = run_generated(ma.derive(loss, locals()))
    np.testing.assert_array_equal(result["da"], np.full(2, 6.0))


# -- compile ----------------------------------------------------------------------

def relu_loss(Xraw, W, dL):
    X = ma.hstack([Xraw, np.ones((Xraw.shape[0], 1))])
    logits = X @ W
    Y = np.maximum(logits, 0)
    return (Y * dL).sum() / Xraw.shape[0]


def engine_relu(Xraw, W, dL):
    x_tensor, w_tensor = ma.Tensor(Xraw, requires_grad=True), ma.Tensor(W, requires_grad=True)
    loss = relu_loss(x_tensor, w_tensor, dL)
    return loss.data, ma.grad(loss, [x_tensor, w_tensor])


def test_compile_matches_engine():
    x_raw, w, dl = vectorised()
    loss, grads = ma.compile(relu_loss, wrt=["Xraw", "W"])(x_raw, w, dl)
    expected_loss, (dXraw, dW) = engine_relu(x_raw, w, dl)
    np.testing.assert_allclose(loss, expected_loss, rtol=RTOL)
    np.testing.assert_allclose(grads["Xraw"], dXraw, rtol=RTOL)
    np.testing.assert_allclose(grads["W"], dW, rtol=RTOL)
    assert set(grads) == {"Xraw", "W"}


def test_compile_default_wrt_is_float_arguments():
    x_raw, w, dl = vectorised()
    loss, grads = ma.compile(relu_loss)(x_raw, w, dl)
    assert set(grads) == {"Xraw", "W", "dL"}


def test_compile_new_values_no_retrace():
    x_raw, w, dl = vectorised()
    step = ma.compile(relu_loss, wrt=["W"])
    step(x_raw, w, dl)
    other = (x_raw[::-1] * 0.5, w + 0.1, -dl)
    loss, grads = step(*other)
    expected_loss, (_, dW) = engine_relu(*other)
    np.testing.assert_allclose(loss, expected_loss, rtol=RTOL)
    np.testing.assert_allclose(grads["W"], dW, rtol=RTOL)
    assert len(step._cache) == 1


def test_compile_retraces_on_new_shape():
    x_raw, w, dl = vectorised()
    step = ma.compile(relu_loss, wrt=["W"])
    step(x_raw, w, dl)
    loss, grads = step(x_raw[:2], w, dl[:2])
    expected_loss, (_, dW) = engine_relu(x_raw[:2], w, dl[:2])
    assert len(step._cache) == 2
    np.testing.assert_allclose(loss, expected_loss, rtol=RTOL)
    np.testing.assert_allclose(grads["W"], dW, rtol=RTOL)
    assert "t0 (2, 1)" in step.source(x_raw[:2], w, dl[:2])


def test_compile_retraces_on_new_dtype():
    x_raw, w, dl = vectorised()
    step = ma.compile(relu_loss, wrt=["W"])
    step(x_raw, w, dl)
    loss, grads = step(x_raw.astype(np.float32), w.astype(np.float32), dl.astype(np.float32))
    assert len(step._cache) == 2
    assert grads["W"].dtype == np.float32


def test_compile_labels_argument_is_parameter():
    x_raw, w, _ = vectorised()

    def softmax_loss(X, W, y):
        return ma.cross_entropy(X @ W[:4], y)

    step = ma.compile(softmax_loss)
    for labels in (np.array([0, 2, 1, 2, 0]), np.array([1, 1, 0, 2, 2])):
        loss, grads = step(x_raw, w, labels)
        X, W = ma.Tensor(x_raw, requires_grad=True), ma.Tensor(w, requires_grad=True)
        expected = softmax_loss(X, W, labels)
        np.testing.assert_allclose(loss, expected.data, rtol=RTOL)
        np.testing.assert_allclose(grads["W"], ma.grad(expected, [W])[0], rtol=RTOL)
    assert set(grads) == {"X", "W"}


def test_compile_rejects_vector_output():
    step = ma.compile(lambda x: x * 2)
    with pytest.raises(ma.ShapeError, match="needs a scalar loss"):
        step(np.ones(3))


def test_compile_rejects_array_output():
    step = ma.compile(lambda x: np.ones(3))
    with pytest.raises(ma.MicroadError, match="not a microad Tensor"):
        step(np.ones(3))


def test_compile_rejects_unknown_wrt():
    step = ma.compile(relu_loss, wrt=["V"])
    x_raw, w, dl = vectorised()
    with pytest.raises(ma.MicroadError, match=r"wrt names \['V'\]"):
        step(x_raw, w, dl)


def test_compile_unused_argument_zero_gradient():
    step = ma.compile(lambda x, unused: (x * x).sum())
    loss, grads = step(np.array([1.0, 2.0]), np.ones((2, 2)))
    np.testing.assert_array_equal(grads["unused"], np.zeros((2, 2)))
    np.testing.assert_array_equal(grads["x"], np.array([2.0, 4.0]))


# -- command line -------------------------------------------------------------------

GRAPH_FILE = '''\
import numpy as np
import microad as ma

X = ma.Tensor(np.arange(15.0).reshape(5, 3) - 7, name="X")
W = ma.Tensor(np.ones((3, 2)) * 0.1, requires_grad=True, name="W")
logits = X @ W
Y = np.maximum(logits, 0)
gradient = np.ones((5, 2))
'''


@pytest.fixture
def graph_file(tmp_path):
    path = tmp_path / "layer.py"
    path.write_text(GRAPH_FILE)
    return path


def test_cli_text(graph_file, capsys):
    from microad.cli import main
    assert main(["explain", str(graph_file), "--tensor", "Y"]) == 0
    output = capsys.readouterr().out
    assert "dlogits = dY * (logits > 0)" in output
    assert "dW      = X.T @ dlogits" in output


@pytest.mark.parametrize("flag, expected", [
    ("--latex", r"\odot"),
    ("--markdown", "| 2 | `dW = X.T @ dlogits` | (3, 2) | matmul |"),
    ("--numpy", "def forward_backward(X, W, dY):"),
])
def test_cli_formats(graph_file, capsys, flag, expected):
    from microad.cli import main
    assert main(["explain", str(graph_file), "--tensor", "Y", flag]) == 0
    assert expected in capsys.readouterr().out


def test_cli_numpy_output_runs(graph_file, capsys):
    from microad.cli import main
    main(["explain", str(graph_file), "--tensor", "Y", "--numpy"])
    namespace = {}
    exec(capsys.readouterr().out, namespace)
    X = np.arange(15.0).reshape(5, 3) - 7
    result = namespace["forward_backward"](X, np.ones((3, 2)) * 0.1, np.ones((5, 2)))
    np.testing.assert_allclose(result["dW"], X.T @ (X @ (np.ones((3, 2)) * 0.1) > 0))


def test_cli_missing_output_variable(graph_file, capsys):
    from microad.cli import main
    assert main(["explain", str(graph_file)]) == 2
    assert "defines no variable 'loss'" in capsys.readouterr().err


def test_cli_missing_file(tmp_path, capsys):
    from microad.cli import main
    assert main(["explain", str(tmp_path / "absent.py")]) == 2
    assert "not found" in capsys.readouterr().err
