"""The benchmarked workloads, written once per engine.

Each workload has inputs made from a fixed seed, a hand-derived NumPy
reference (forward plus the backward formulas worked out by hand), and one
builder per engine. A builder takes the inputs and returns a :class:`Runner`:
``gradients()`` runs one forward and backward pass and returns the gradients
as ndarrays keyed by input name, and ``step()`` is the timed call.

This module imports NumPy and the engines, so ``run.py`` pins the thread
counts before it imports this module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import microad as ma


@dataclass
class Runner:
    """The timed step and the gradient readout of one engine on one workload."""

    step: Callable[[], object]
    gradients: Callable[[], dict]


@dataclass
class Workload:
    """One benchmark case: its inputs, the NumPy reference and the engine builders."""

    name: str
    description: str
    make_inputs: Callable[[], dict]
    builders: dict = field(default_factory=dict)  # engine name -> builder(inputs) -> Runner
    ops: int = 1  # the chain divides its time by this to report microseconds per op


def optional_module(name):
    """Import an optional engine, or return None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# ---------------------------------------------------------------------------
# ReLU layer: X = hstack([Xraw, ones]), logits = X @ W, Y = maximum(logits, 0),
# loss = sum(Y * dL) / N. The gradients are those of W and Xraw.
# ---------------------------------------------------------------------------

def relu_inputs(n, d, c, seed=1):
    """Draw the ReLU layer's inputs.

    With seed 1 and NumPy's legacy generator, the draws come in the order of
    the hand derivation that tests/notes_data.py rebuilds, so the tiny case
    (5, 4, 3) has the same Xraw, W (with a zero bias row) and dL.
    """
    rng = np.random.RandomState(seed)
    xraw = 10 * rng.randn(n, d)
    weights = 0.1 * rng.randn(d, c)
    w = np.vstack([weights, np.zeros(c)])
    # That derivation's dL is the third draw of its shape, so skip two.
    rng.randn(2 * n * c)
    dl = 0.1 * (rng.randn(n, c) - 0.5)
    return {"Xraw": xraw, "W": w, "dL": dl, "ones": np.ones((n, 1))}


def relu_numpy(inputs):
    xraw, w, dl, ones = inputs["Xraw"], inputs["W"], inputs["dL"], inputs["ones"]
    n, d = xraw.shape

    def gradients():
        x = np.hstack([xraw, ones])
        logits = x @ w
        y = np.maximum(logits, 0)
        loss = np.sum(y * dl) / n

        dy = dl / n
        dlogits = dy * (logits > 0)
        dw = x.T @ dlogits
        dx = dlogits @ w.T
        grads = {"W": dw, "Xraw": dx[:, :d]}
        return loss, grads

    return Runner(step=gradients, gradients=lambda: gradients()[1])


def relu_microad(inputs, *, keep_intermediate_grads=True):
    xraw = ma.Tensor(inputs["Xraw"], requires_grad=True, name="Xraw")
    w = ma.Tensor(inputs["W"], requires_grad=True, name="W")
    dl, ones = inputs["dL"], inputs["ones"]
    n = xraw.shape[0]

    def step():
        xraw.zero_grad()
        w.zero_grad()
        x = np.hstack([xraw, ones])
        logits = x @ w
        y = np.maximum(logits, 0)
        loss = np.sum(y * dl) / n
        loss.backward(keep_intermediate_grads=keep_intermediate_grads)
        return loss

    def gradients():
        step()
        return {"W": w.grad, "Xraw": xraw.grad}

    return Runner(step=step, gradients=gradients)


def relu_microad_lean(inputs):
    """Run the ReLU layer with backward(keep_intermediate_grads=False): only leaves get .grad."""
    return relu_microad(inputs, keep_intermediate_grads=False)


def relu_loss(xraw, w, ones, dl):
    """Return the ReLU layer's loss, written in NumPy style for microad.compile to trace."""
    x = np.hstack([xraw, ones])
    logits = x @ w
    y = np.maximum(logits, 0)
    return np.sum(y * dl) / xraw.shape[0]


def relu_microad_compiled(inputs):
    # microad.compile traces relu_loss once and replays generated NumPy code.
    step_function = ma.compile(relu_loss, wrt=["xraw", "w"])
    arguments = (inputs["Xraw"], inputs["W"], inputs["ones"], inputs["dL"])

    def gradients():
        _, grads = step_function(*arguments)
        return {"W": grads["w"], "Xraw": grads["xraw"]}

    return Runner(step=lambda: step_function(*arguments), gradients=gradients)


def relu_autograd(inputs):
    autograd = optional_module("autograd")
    anp = autograd.numpy
    xraw, w, dl, ones = inputs["Xraw"], inputs["W"], inputs["dL"], inputs["ones"]
    n = xraw.shape[0]

    def loss_function(xraw, w):
        x = anp.hstack([xraw, ones])
        logits = x @ w
        y = anp.maximum(logits, 0)
        return anp.sum(y * dl) / n

    value_and_grad = autograd.value_and_grad(loss_function, argnum=(0, 1))

    def step():
        return value_and_grad(xraw, w)

    def gradients():
        _, (dxraw, dw) = step()
        return {"W": dw, "Xraw": dxraw}

    return Runner(step=step, gradients=gradients)


def relu_mygrad(inputs):
    mg = optional_module("mygrad")
    xraw_data, w_data = inputs["Xraw"], inputs["W"]
    dl, ones = inputs["dL"], inputs["ones"]
    n = xraw_data.shape[0]
    leaves = {}

    def step():
        xraw = mg.tensor(xraw_data, copy=False)
        w = mg.tensor(w_data, copy=False)
        x = mg.concatenate([xraw, ones], axis=1)
        logits = mg.matmul(x, w)
        y = mg.maximum(logits, 0)
        loss = mg.sum(y * dl) / n
        loss.backward()
        leaves["Xraw"], leaves["W"] = xraw, w
        return loss

    def gradients():
        step()
        return {"W": leaves["W"].grad, "Xraw": leaves["Xraw"].grad}

    return Runner(step=step, gradients=gradients)


def relu_torch(inputs):
    torch = optional_module("torch")
    xraw = torch.from_numpy(inputs["Xraw"]).requires_grad_()
    w = torch.from_numpy(inputs["W"]).requires_grad_()
    dl, ones = torch.from_numpy(inputs["dL"]), torch.from_numpy(inputs["ones"])
    n = xraw.shape[0]

    def step():
        xraw.grad = None
        w.grad = None
        x = torch.hstack([xraw, ones])
        logits = x @ w
        y = torch.relu(logits)
        loss = torch.sum(y * dl) / n
        loss.backward()
        return loss

    def gradients():
        step()
        return {"W": w.grad.numpy(), "Xraw": xraw.grad.numpy()}

    return Runner(step=step, gradients=gradients)


# ---------------------------------------------------------------------------
# Chain of cheap elementwise ops on a (16, 16) array: the ops cycle through
# x * 0.999, x + 0.01 and tanh(x), then loss = sum(x). This measures the
# per-op overhead of recording and walking the graph.
# ---------------------------------------------------------------------------

CHAIN_CYCLE = ("multiply", "add", "tanh")


def chain_inputs(ops, seed=2):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((16, 16)), "ops": ops}


def _chain_kinds(ops):
    return [CHAIN_CYCLE[i % len(CHAIN_CYCLE)] for i in range(ops)]


def chain_numpy(inputs):
    x0 = inputs["x"]
    kinds = _chain_kinds(inputs["ops"])

    def gradients():
        x = x0
        tanh_outputs = []
        for kind in kinds:
            if kind == "multiply":
                x = x * 0.999
            elif kind == "add":
                x = x + 0.01
            else:
                x = np.tanh(x)
                tanh_outputs.append(x)

        # Backward: d(sum)/dx = 1, then each op's derivative in reverse order.
        g = np.ones_like(x)
        for kind in reversed(kinds):
            if kind == "multiply":
                g = g * 0.999
            elif kind == "tanh":
                out = tanh_outputs.pop()
                g = g * (1 - out * out)
        return {"x": g}

    return Runner(step=gradients, gradients=gradients)


def _chain_forward(x, kinds, tanh):
    for kind in kinds:
        if kind == "multiply":
            x = x * 0.999
        elif kind == "add":
            x = x + 0.01
        else:
            x = tanh(x)
    return x


def chain_microad(inputs):
    x = ma.Tensor(inputs["x"], requires_grad=True, name="x")
    kinds = _chain_kinds(inputs["ops"])

    def step():
        x.zero_grad()
        loss = np.sum(_chain_forward(x, kinds, np.tanh))
        loss.backward()
        return loss

    def gradients():
        step()
        return {"x": x.grad}

    return Runner(step=step, gradients=gradients)


def chain_autograd(inputs):
    autograd = optional_module("autograd")
    anp = autograd.numpy
    kinds = _chain_kinds(inputs["ops"])
    value_and_grad = autograd.value_and_grad(
        lambda x: anp.sum(_chain_forward(x, kinds, anp.tanh)))

    def gradients():
        return {"x": value_and_grad(inputs["x"])[1]}

    return Runner(step=lambda: value_and_grad(inputs["x"]), gradients=gradients)


def chain_mygrad(inputs):
    mg = optional_module("mygrad")
    kinds = _chain_kinds(inputs["ops"])
    leaf = {}

    def step():
        x = mg.tensor(inputs["x"], copy=False)
        loss = mg.sum(_chain_forward(x, kinds, mg.tanh))
        loss.backward()
        leaf["x"] = x
        return loss

    def gradients():
        step()
        return {"x": leaf["x"].grad}

    return Runner(step=step, gradients=gradients)


def chain_torch(inputs):
    torch = optional_module("torch")
    x = torch.from_numpy(inputs["x"]).requires_grad_()
    kinds = _chain_kinds(inputs["ops"])

    def step():
        x.grad = None
        loss = torch.sum(_chain_forward(x, kinds, torch.tanh))
        loss.backward()
        return loss

    def gradients():
        step()
        return {"x": x.grad.numpy()}

    return Runner(step=step, gradients=gradients)


# ---------------------------------------------------------------------------
# One SGD training step of a 64 -> 128 -> 10 MLP with ReLU and mean softmax
# cross-entropy, on a batch of 128: forward, backward, update.
# ---------------------------------------------------------------------------

MLP_PARAMETERS = ("W1", "b1", "W2", "b2")
LEARNING_RATE = 0.1


def _sgd_runner(params, gradients):
    """Return a Runner whose step applies one SGD update from ``gradients()`` to ``params``."""
    def step():
        grads = gradients()
        for name in MLP_PARAMETERS:
            params[name] -= LEARNING_RATE * grads[name]

    return Runner(step=step, gradients=gradients)


def mlp_inputs(batch=128, features=64, hidden=128, classes=10, seed=3):
    rng = np.random.default_rng(seed)
    return {
        "X": rng.standard_normal((batch, features)),
        "labels": rng.integers(0, classes, size=batch),
        "W1": rng.standard_normal((features, hidden)) * np.sqrt(2 / features),
        "b1": np.zeros(hidden),
        "W2": rng.standard_normal((hidden, classes)) * np.sqrt(2 / hidden),
        "b2": np.zeros(classes),
    }


def _copy_parameters(inputs):
    # Each engine trains its own copy, so that one engine's updates never
    # change the starting point of another.
    return {name: inputs[name].copy() for name in MLP_PARAMETERS}


def mlp_numpy(inputs):
    x, labels = inputs["X"], inputs["labels"]
    params = _copy_parameters(inputs)
    rows = np.arange(x.shape[0])

    def gradients():
        w1, b1, w2, b2 = (params[name] for name in MLP_PARAMETERS)
        z1 = x @ w1 + b1
        h = np.maximum(z1, 0)
        logits = h @ w2 + b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[rows, labels].mean()

        # dL/dlogits = (softmax - onehot) / batch.
        dlogits = np.exp(log_probs)
        dlogits[rows, labels] -= 1
        dlogits /= x.shape[0]
        dw2 = h.T @ dlogits
        db2 = dlogits.sum(axis=0)
        dh = dlogits @ w2.T
        dz1 = dh * (z1 > 0)
        dw1 = x.T @ dz1
        db1 = dz1.sum(axis=0)
        return loss, {"W1": dw1, "b1": db1, "W2": dw2, "b2": db2}

    def step():
        _, grads = gradients()
        for name in MLP_PARAMETERS:
            params[name] -= LEARNING_RATE * grads[name]

    return Runner(step=step, gradients=lambda: gradients()[1])


def mlp_microad(inputs):
    x, labels = inputs["X"], inputs["labels"]
    params = {name: ma.Tensor(value, requires_grad=True, name=name)
              for name, value in _copy_parameters(inputs).items()}
    w1, b1, w2, b2 = (params[name] for name in MLP_PARAMETERS)

    def forward_backward():
        for p in params.values():
            p.zero_grad()
        h = np.maximum(x @ w1 + b1, 0)
        logits = h @ w2 + b2
        loss = ma.cross_entropy(logits, labels)
        loss.backward(keep_intermediate_grads=False)

    def step():
        forward_backward()
        for p in params.values():
            p.data -= LEARNING_RATE * p.grad

    def gradients():
        forward_backward()
        return {name: p.grad for name, p in params.items()}

    return Runner(step=step, gradients=gradients)


def mlp_loss(x, w1, b1, w2, b2, labels):
    """Return the MLP's mean cross-entropy, written in NumPy style for microad.compile to trace."""
    h = np.maximum(x @ w1 + b1, 0)
    logits = h @ w2 + b2
    return ma.cross_entropy(logits, labels)


def mlp_microad_compiled(inputs):
    # The labels pick entries by integer indexing, which microad.compile
    # bakes in as a constant at trace time; they are fixed in this benchmark.
    names = ("w1", "b1", "w2", "b2")
    step_function = ma.compile(mlp_loss, wrt=list(names))
    x, labels = inputs["X"], inputs["labels"]
    params = _copy_parameters(inputs)

    def gradients():
        _, grads = step_function(x, *(params[name] for name in MLP_PARAMETERS), labels)
        return {name: grads[traced] for name, traced in zip(MLP_PARAMETERS, names)}

    return _sgd_runner(params, gradients)


def mlp_autograd(inputs):
    autograd = optional_module("autograd")
    anp = autograd.numpy
    x, labels = inputs["X"], inputs["labels"]
    params = _copy_parameters(inputs)
    rows = np.arange(x.shape[0])

    def loss_function(w1, b1, w2, b2):
        h = anp.maximum(x @ w1 + b1, 0)
        logits = h @ w2 + b2
        shifted = logits - anp.max(logits, axis=1, keepdims=True)
        log_probs = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.mean(log_probs[rows, labels])

    value_and_grad = autograd.value_and_grad(loss_function, argnum=(0, 1, 2, 3))

    def gradients():
        _, grads = value_and_grad(*(params[name] for name in MLP_PARAMETERS))
        return dict(zip(MLP_PARAMETERS, grads))

    return _sgd_runner(params, gradients)


def mlp_mygrad(inputs):
    mg = optional_module("mygrad")
    from mygrad.nnet.losses import softmax_crossentropy

    x, labels = inputs["X"], inputs["labels"]
    params = _copy_parameters(inputs)

    def gradients():
        tensors = {name: mg.tensor(params[name], copy=False) for name in MLP_PARAMETERS}
        h = mg.maximum(mg.matmul(x, tensors["W1"]) + tensors["b1"], 0)
        logits = mg.matmul(h, tensors["W2"]) + tensors["b2"]
        loss = softmax_crossentropy(logits, labels)
        loss.backward()
        return {name: t.grad for name, t in tensors.items()}

    return _sgd_runner(params, gradients)


def mlp_torch(inputs):
    torch = optional_module("torch")
    x = torch.from_numpy(inputs["X"])
    labels = torch.from_numpy(inputs["labels"])
    params = {name: torch.from_numpy(value).requires_grad_()
              for name, value in _copy_parameters(inputs).items()}
    w1, b1, w2, b2 = (params[name] for name in MLP_PARAMETERS)

    def forward_backward():
        for p in params.values():
            p.grad = None
        h = torch.relu(x @ w1 + b1)
        logits = h @ w2 + b2
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()

    def step():
        forward_backward()
        with torch.no_grad():
            for p in params.values():
                p -= LEARNING_RATE * p.grad

    def gradients():
        forward_backward()
        return {name: p.grad.numpy() for name, p in params.items()}

    return Runner(step=step, gradients=gradients)


# ---------------------------------------------------------------------------
# The case list
# ---------------------------------------------------------------------------

RELU_SIZES = {"tiny": (5, 4, 3), "medium": (256, 512, 256), "large": (4096, 1024, 1024)}
# Smoke mode keeps the case names but shrinks medium and large, so that CI
# exercises every code path in a few seconds.
SMOKE_RELU_SIZES = {"tiny": (5, 4, 3), "medium": (32, 48, 16), "large": (64, 96, 32)}
CHAIN_OPS = 1000

ENGINE_MODULES = {"autograd": "autograd", "mygrad": "mygrad", "torch": "torch"}


def _builders(numpy, microad, autograd, mygrad, torch):
    return {"numpy": numpy, "microad": microad, "autograd": autograd, "mygrad": mygrad,
            "torch": torch}


def make_workloads(smoke=False):
    """Return the benchmark cases, with smaller ReLU sizes in smoke mode."""
    sizes = SMOKE_RELU_SIZES if smoke else RELU_SIZES
    workloads = []
    for label, (n, d, c) in sizes.items():
        builders = _builders(relu_numpy, relu_microad, relu_autograd, relu_mygrad, relu_torch)
        if label == "tiny" and hasattr(ma, "compile"):
            builders["microad compiled"] = relu_microad_compiled
        if label in ("medium", "large"):
            builders["microad lean"] = relu_microad_lean
        workloads.append(Workload(
            name=f"relu-{label}",
            description=f"ReLU layer, N={n}, D={d}, C={c}",
            make_inputs=lambda n=n, d=d, c=c: relu_inputs(n, d, c),
            builders=builders,
        ))

    workloads.append(Workload(
        name="chain",
        description=f"{CHAIN_OPS} elementwise ops on (16, 16), per op",
        make_inputs=lambda: chain_inputs(CHAIN_OPS),
        builders=_builders(chain_numpy, chain_microad, chain_autograd, chain_mygrad, chain_torch),
        ops=CHAIN_OPS,
    ))
    mlp_builders = _builders(mlp_numpy, mlp_microad, mlp_autograd, mlp_mygrad, mlp_torch)
    if hasattr(ma, "compile"):
        mlp_builders["microad compiled"] = mlp_microad_compiled
    workloads.append(Workload(
        name="mlp",
        description="MLP 64->128->10 SGD step, batch 128",
        make_inputs=mlp_inputs,
        builders=mlp_builders,
    ))
    return workloads
