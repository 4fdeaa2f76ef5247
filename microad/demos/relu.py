"""``microad demo relu``: the ReLU layer of the French notes, derived by the engine.

The notes fold the bias into W by stacking (X gets a column of ones, W gets
the bias as its last row), compute ``logits = X @ W`` and
``Y = np.maximum(logits, 0)``, and derive by hand ``dlogits = dL * (logits > 0)``
and ``dW = X.T @ dlogits``. This demo rebuilds their data from their seed,
runs the same NumPy code on Tensors, lets the engine derive every gradient,
and checks the hand formulas and the notes' own results with the referee.
Like the rest of the command line, it prints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import microad as ma
from microad.draw import save as save_diagram

D, C, N = 4, 3, 5
STD = 1e-1


def _show(label, value):
    array = np.around(getattr(value, "data", value), 3)
    text = np.array2string(array, separator=" ", suppress_small=True)
    if "\n" in text:
        print(f"{label} =")
        print("    " + text.replace("\n", "\n    "))
    else:
        print(f"{label} = {text}")


def _heading(text):
    print()
    print(text)
    print("=" * len(text))


def notes_data():
    """Rebuild the notes' inputs: the single vector, and the N = 5 batch with its dL.

    The notes seed NumPy's legacy generator with 1. The printed dL of the
    vectorised section is the third draw of its shape: the notebook cell that
    draws it ran three times before the notes were saved.
    """
    np.random.seed(1)
    x1 = 10 * np.random.randn(D)
    w1 = STD * np.random.randn(D, C)
    dl1 = np.array([0.031, -0.415, 0.926])  # typed into the notes by hand

    np.random.seed(1)
    x = 10 * np.random.randn(N, D)
    w = STD * np.random.randn(D, C)
    np.random.randn(2 * N * C)
    dl = STD * (np.random.randn(N, C) - 0.5)
    return {"x1": x1, "w1": w1, "dl1": dl1, "x": x, "w": w, "dl": dl}


def single_vector(data):
    """Section 1 of the notes: one input vector."""
    _heading("1. One input vector (D = 4 inputs, C = 3 classes)")
    Xraw = ma.Tensor(data["x1"], name="Xraw")
    Wraw = ma.Tensor(data["w1"], requires_grad=True, name="Wraw")
    b = ma.Tensor(np.zeros(C), requires_grad=True, name="b")
    X = np.hstack([Xraw, np.array([1.0])])
    W = np.vstack([Wraw, b])
    logits = np.matmul(X, W)
    Y = np.maximum(logits, 0)
    dL = data["dl1"]

    _show("X", X)
    _show("W", W)
    _show("logits = X @ W", logits)
    _show("Y = np.maximum(logits, 0)", Y)
    _show("dL (given upstream gradient dL/dY)", dL)

    Y.backward(dL)
    print("\nGradients derived by the engine:")
    _show("dlogits", logits.grad)
    _show("dW", W.grad)

    x = X.data
    hand = {"dlogits": dL * (logits.data > 0), "dW": np.outer(x, dL * (logits.data > 0))}
    print("\nHand formulas dlogits = dL * (logits > 0) and dW = outer(X, dlogits):")
    report = ma.compare(Y, hand, names=locals(), gradient=dL)
    print(report)

    print("\nThe notes compute dW = np.outer(X, dL), from dL instead of dlogits:")
    notes_dw = np.outer(x, dL)
    report = ma.compare(Y, {"dW": notes_dw}, names=locals(), gradient=dL)
    print(report)
    differs = np.argwhere(~np.isclose(notes_dw, W.grad))
    columns = sorted({int(j) for _, j in differs})
    print(f"Their dW differs in column(s) {columns}: logits[{columns[0]}] = "
          f"{logits.data[columns[0]]:.3f} < 0, so the ReLU blocks that column's gradient.")
    return report


def vectorised(data, output_dir):
    """Section 2 of the notes: N = 5 inputs at once, loss = sum(Y * dL) / N."""
    _heading("2. Vectorised, N = 5 inputs")
    Xraw = ma.Tensor(data["x"], name="Xraw")
    Wraw = ma.Tensor(data["w"], requires_grad=True, name="Wraw")
    b = ma.Tensor(np.zeros(C), requires_grad=True, name="b")
    X = np.hstack([Xraw, np.ones((N, 1))])
    W = np.vstack([Wraw, b])
    logits = np.matmul(X, W)
    Y = np.maximum(logits, 0)
    dL = data["dl"]
    loss = np.sum(Y * dL) / N

    _show("X", X)
    _show("logits = X @ W", logits)
    _show("Y = np.maximum(logits, 0)", Y)
    _show("dL", dL)
    print("loss = sum(Y * dL) / N, so that dloss/dY = dL / N, as in the notes' dW /= N")

    loss.backward()
    print("\nGradients derived by the engine:")
    _show("dlogits", logits.grad)
    _show("dW", W.grad)
    _show("db (last row of dW)", b.grad)

    x = X.data
    dlogits = dL * (logits.data > 0)
    hand = {"dlogits": dlogits / N, "dW": x.T @ dlogits / N, "db": dlogits.sum(axis=0) / N}
    print("\nHand formulas dlogits = dL * (logits > 0) / N, dW = X.T @ dlogits, "
          "db = dlogits.sum(axis=0):")
    correct = ma.compare(loss, hand, names=locals())
    print(correct)

    notes_dw = x.T @ dlogits / N
    print("\nThe notes read the bias gradient as the last column of dW, dW[:, -1]:")
    _show("dW[:, -1]", notes_dw[:, -1])
    report = ma.compare(loss, {"db": notes_dw[:, -1]}, names=locals())
    print(report)
    print("The bias is the last row of W (W = np.vstack([W, b])), so db = dW[-1, :].")

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    graph = ma.draw(loss, names=locals(), view="forward", max_elements=25)
    path = save_diagram(graph, output_dir / "relu-layer.svg")
    print(f"\nDiagram of the graph, with values and gradients: {path}")
    return correct


def run(output_dir="out") -> int:
    """Run the walk-through and write DIR/relu-layer.svg; return the exit code."""
    data = notes_data()
    single_vector(data)
    correct = vectorised(data, output_dir)
    return 0 if correct.ok else 1
