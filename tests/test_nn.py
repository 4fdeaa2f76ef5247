"""Tests of microad.nn: parameter registration, layers, and their gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import microad as ma
from microad import nn
from microad.errors import MicroadError, ShapeError


class TwoBlocks(nn.Module):
    """A model with a nested Sequential, a head layer and a free parameter."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh())
        self.head = nn.Linear(4, 2, rng=1)
        self.temperature = nn.Parameter([1.0])

    def forward(self, x):
        return self.head(self.body(x)) / self.temperature


# ---------------------------------------------------------------------------
# Parameter
# ---------------------------------------------------------------------------

def test_parameter_requires_grad():
    parameter = nn.Parameter(np.zeros(3))
    assert parameter.requires_grad
    assert parameter.is_leaf
    assert isinstance(parameter, ma.Tensor)


def test_parameter_copies_data():
    source = np.array([1.0, 2.0])
    parameter = nn.Parameter(source)
    parameter.data -= 1.0
    assert source.tolist() == [1.0, 2.0]


def test_parameter_int_becomes_float():
    parameter = nn.Parameter([1, 2])
    assert parameter.dtype == np.float64


def test_parameter_keeps_float32():
    parameter = nn.Parameter(np.ones(2, dtype=np.float32))
    assert parameter.dtype == np.float32


# ---------------------------------------------------------------------------
# Registration and naming
# ---------------------------------------------------------------------------

def test_sequential_dotted_names():
    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=0))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]


def test_parameter_name_is_path():
    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=0))
    for name, parameter in model.named_parameters():
        assert parameter.name == name


def test_parameter_names_in_diagram():
    model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())
    loss = model(ma.Tensor(np.ones((1, 3)), name="X")).sum()
    source = ma.draw(loss, legend=False).source
    assert "<B>layers.0.weight</B>" in source
    assert "<B>layers.0.bias</B>" in source


def test_nested_module_names():
    model = TwoBlocks()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["body.layers.0.weight", "body.layers.0.bias", "head.weight", "head.bias",
                     "temperature"]
    assert model.body.layers[0].weight.name == "body.layers.0.weight"
    assert model.temperature.name == "temperature"


def test_named_modules_order():
    model = TwoBlocks()
    names = [name for name, _ in model.named_modules()]
    assert names == ["", "body", "body.layers.0", "body.layers.1", "head"]


def test_parameters_match_named():
    model = TwoBlocks()
    assert model.parameters() == [parameter for _, parameter in model.named_parameters()]
    assert len(model.parameters()) == 5


def test_shared_parameter_listed_once():
    first = nn.Linear(2, 2, rng=0)
    second = nn.Linear(2, 2, rng=1)
    second.weight = first.weight
    model = nn.Sequential(first, second)
    weights = [p for p in model.parameters() if p is first.weight]
    assert len(weights) == 1
    assert len(model.parameters()) == 3


def test_reassigned_attribute_unregisters():
    layer = nn.Linear(2, 2, rng=0)
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]


def test_list_attribute_warns():
    model = nn.Module()
    with pytest.warns(UserWarning, match="Module.blocks is a list of modules"):
        model.blocks = [nn.Linear(2, 2, rng=0)]
    assert model.parameters() == []


def test_tuple_attribute_registered():
    model = nn.Module()
    model.blocks = (nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]


def test_setattr_before_init_rejected():
    class Forgetful(nn.Module):
        def __init__(self):
            self.weight = nn.Parameter([1.0])

    with pytest.raises(MicroadError, match="super\\(\\).__init__"):
        Forgetful()


def test_zero_grad_clears_all():
    model = TwoBlocks()
    model(np.ones((2, 3))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_recursive():
    model = TwoBlocks()
    assert model.training
    returned = model.eval()
    assert returned is model
    assert all(not module.training for _, module in model.named_modules())
    model.train()
    assert all(module.training for _, module in model.named_modules())


def test_call_runs_forward():
    model = TwoBlocks()
    x = np.ones((2, 3))
    assert np.array_equal(model(x).data, model.forward(x).data)


def test_forward_missing_raises():
    with pytest.raises(NotImplementedError, match="Module defines no forward"):
        nn.Module()(1.0)


def test_repr_lists_layers():
    text = repr(nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU()))
    assert "(layers.0): Linear(in_features=4, out_features=3, bias=True)" in text
    assert "(layers.1): ReLU()" in text


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------

def test_linear_shapes():
    layer = nn.Linear(5, 7, rng=0)
    assert layer.weight.shape == (5, 7)
    assert layer.bias.shape == (7,)
    assert layer(np.ones((3, 5))).shape == (3, 7)


def test_linear_he_uniform_bound():
    layer = nn.Linear(50, 400, rng=0)
    limit = np.sqrt(6 / 50)
    assert np.abs(layer.weight.data).max() <= limit
    # U(-limit, limit) has variance limit**2 / 3 = 2 / in_features.
    assert layer.weight.data.var() == pytest.approx(2 / 50, rel=0.05)
    assert not layer.bias.data.any()


def test_linear_rng_reproducible():
    first = nn.Linear(4, 3, rng=42)
    second = nn.Linear(4, 3, rng=np.random.default_rng(42))
    assert np.array_equal(first.weight.data, second.weight.data)


def test_linear_forward_formula():
    layer = nn.Linear(3, 2, rng=0)
    layer.bias.data[:] = [0.5, -1.0]
    x = np.arange(6.0).reshape(2, 3)
    expected = x @ layer.weight.data + layer.bias.data
    assert np.allclose(layer(x).data, expected)


def test_linear_without_bias():
    layer = nn.Linear(3, 2, bias=False, rng=0)
    x = np.ones((1, 3))
    assert layer.bias is None
    assert np.allclose(layer(x).data, x @ layer.weight.data)


def test_linear_wrong_features():
    layer = nn.Linear(64, 10, rng=0)
    with pytest.raises(ShapeError, match="must have 64 features") as info:
        layer(ma.Tensor(np.ones((5, 63)), name="X"))
    assert "X (5, 63)" in str(info.value)


def test_linear_scalar_input():
    with pytest.raises(ShapeError, match="Linear\\(2 -> 1\\)"):
        nn.Linear(2, 1, rng=0)(3.0)


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "3"])
def test_linear_invalid_size(size):
    with pytest.raises(ShapeError, match="in_features must be a positive integer"):
        nn.Linear(size, 2)


def test_linear_relu_notes_gradients():
    # A vectorised ReLU layer worked by hand: X (5, 4) = 10 * randn and
    # W (4, 3) = 0.1 * randn, drawn in that order after np.random.seed(1), an
    # upstream gradient dL printed to 8 decimals, and the resulting
    # dW = X.T @ dlogits / N with the bias gradient as its last row.
    rng = np.random.RandomState(1)
    X = 10 * rng.randn(5, 4)
    W = 0.1 * rng.randn(4, 3)
    dL = np.array([[0.00129298, -0.07980928, -0.00114819],
                   [-0.05755717, 0.06316294, 0.10198168],
                   [0.16855754, -0.18964963, -0.19441138],
                   [-0.10044659, -0.03399629, 0.03761689],
                   [-0.01843651, -0.25222012, -0.0806204]])
    notes_dW = np.array([[0.00635795, -0.38028697, 0.05227749],
                         [0.03236928, 0.19223368, -0.25841114],
                         [-0.00155655, -0.47027045, -0.1329191],
                         [-0.02149015, 0.95267558, 0.47151264],
                         [-0.0036873, -0.05389178, -0.02731628]])
    notes_logits = np.array([[-2.599, 2.545, 2.45], [-2.727, -2.189, 2.188],
                             [-1.749, 0.197, 0.884], [-0.561, -1.015, 0.105],
                             [0.053, -1.431, 0.202]])

    layer = nn.Linear(4, 3, rng=0)
    layer.weight.data[...] = W
    logits = layer(X)
    nn.ReLU()(logits).backward(dL)

    assert np.allclose(logits.data, notes_logits, atol=5e-4)
    # dL and dW are rounded to 8 decimals, and X is of order 10.
    assert np.allclose(layer.weight.grad / 5, notes_dW[:4], rtol=0, atol=1e-7)
    assert np.allclose(layer.bias.grad / 5, notes_dW[4], rtol=0, atol=1e-7)


@given(batch=st.integers(1, 5), inputs=st.integers(1, 4), outputs=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_linear_gradients_formula(batch, inputs, outputs, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(inputs, outputs, rng=rng)
    x = ma.Tensor(rng.normal(size=(batch, inputs)), requires_grad=True)
    g = rng.normal(size=(batch, outputs))

    layer(x).backward(g)

    assert np.allclose(layer.weight.grad, x.data.T @ g)
    assert np.allclose(layer.bias.grad, g.sum(axis=0))
    assert np.allclose(x.grad, g @ layer.weight.data.T)


# ---------------------------------------------------------------------------
# Activations, Sequential and the loss
# ---------------------------------------------------------------------------

def test_relu_values_and_gradient():
    x = ma.Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = nn.ReLU()(x)
    y.sum().backward()
    assert y.data.tolist() == [0.0, 0.0, 2.0]
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


def test_tanh_gradient():
    x = ma.Tensor([-0.5, 0.0, 1.5], requires_grad=True)
    nn.Tanh()(x).sum().backward()
    assert np.allclose(x.grad, 1 - np.tanh(x.data) ** 2)


def test_sequential_applies_in_order():
    first = nn.Linear(2, 3, rng=0)
    second = nn.Linear(3, 1, rng=1)
    model = nn.Sequential(first, nn.ReLU(), second)
    x = np.array([[1.0, -2.0]])
    expected = np.maximum(x @ first.weight.data, 0) @ second.weight.data
    assert np.allclose(model(x).data, expected)


def test_sequential_indexing():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(2, 2, rng=0), relu)
    assert len(model) == 2
    assert model[1] is relu
    assert list(model)[1] is relu


def test_sequential_empty_rejected():
    with pytest.raises(MicroadError, match="at least one module"):
        nn.Sequential()


def test_sequential_non_module_rejected():
    with pytest.raises(MicroadError, match="item 1 is a ufunc, not a microad.nn.Module"):
        nn.Sequential(nn.ReLU(), np.tanh)


def test_cross_entropy_value():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    labels = np.array([0, 1])
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_probabilities[[0, 1], labels].mean()
    loss = nn.CrossEntropyLoss()(ma.Tensor(logits), labels)
    assert float(loss) == pytest.approx(expected)


def test_cross_entropy_gradient():
    logits = ma.Tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], requires_grad=True)
    labels = np.array([0, 2])
    nn.CrossEntropyLoss()(logits, labels).backward()
    probabilities = np.exp(logits.data) / np.exp(logits.data).sum(axis=1, keepdims=True)
    onehot = np.eye(3)[labels]
    assert np.allclose(logits.grad, (probabilities - onehot) / 2)


def test_cross_entropy_bad_labels():
    with pytest.raises(ShapeError, match="labels must lie in"):
        nn.CrossEntropyLoss()(ma.Tensor(np.zeros((2, 3))), np.array([0, 3]))
