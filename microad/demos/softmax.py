"""``microad demo softmax``: the softmax and cross-entropy layer, the notes' companion.

Same toy data recipe as the ReLU notes (seed 1, X of shape (5, 4) with a
column of ones, W of shape (4, 3) with a zero bias row), with class labels
``y``. The engine derives the gradients of the mean cross-entropy, and the
demo checks them against the hand formulas
``dlogits = (softmax(logits) - onehot(y)) / N`` and ``dW = X.T @ dlogits``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import microad as ma
from microad.draw import save as save_diagram

from .relu import _heading, _show

D, C, N = 4, 3, 5
LABELS = np.array([0, 1, 2, 2, 1])


def build():
    """Return the tensors of the softmax layer, keyed by their names."""
    np.random.seed(1)
    Xraw = ma.Tensor(10 * np.random.randn(N, D), name="Xraw")
    Wraw = ma.Tensor(1e-1 * np.random.randn(D, C), requires_grad=True, name="Wraw")
    b = ma.Tensor(np.zeros(C), requires_grad=True, name="b")
    X = np.hstack([Xraw, np.ones((N, 1))])
    W = np.vstack([Wraw, b])
    logits = X @ W
    loss = ma.cross_entropy(logits, LABELS)
    return {"Xraw": Xraw, "Wraw": Wraw, "b": b, "X": X, "W": W, "logits": logits, "loss": loss}


def hand_gradients(X, logits):
    """Compute the hand-derived gradients of the mean cross-entropy with NumPy."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    onehot = np.eye(C)[LABELS]
    dlogits = (probabilities - onehot) / N
    return {"dlogits": dlogits, "dW": X.T @ dlogits, "db": dlogits.sum(axis=0)}


def run(output_dir="out") -> int:
    """Run the walk-through and write DIR/softmax-layer.svg; return the exit code."""
    _heading("Softmax and cross-entropy layer, N = 5 inputs, C = 3 classes")
    tensors = build()
    print(f"labels y = {LABELS}")
    _show("logits = X @ W", tensors["logits"])
    print(f"loss = cross_entropy(logits, y) = {tensors['loss'].item():.6f}")

    tensors["loss"].backward()
    print("\nGradients derived by the engine:")
    _show("dlogits", tensors["logits"].grad)
    _show("dW", tensors["W"].grad)

    hand = hand_gradients(tensors["X"].data, tensors["logits"].data)
    print("\nHand formulas dlogits = (softmax(logits) - onehot(y)) / N, dW = X.T @ dlogits, "
          "db = dlogits.sum(axis=0):")
    report = ma.compare(tensors["loss"], hand, names=tensors)
    print(report)
    worst = max(float(np.max(np.abs(tensors[name[1:]].grad - value))) for name, value in hand.items())
    print(f"Largest difference from the hand formulas: {worst:.1e}")

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = save_diagram(ma.draw(tensors["loss"], names=tensors), output_dir / "softmax-layer.svg")
    print(f"\nDiagram of the graph, with values and gradients: {path}")
    return 0 if report.ok and worst <= 1e-12 else 1
