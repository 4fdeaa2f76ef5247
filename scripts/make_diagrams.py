"""Generate the diagrams shown in docs/diagrams.md into docs/images/.

Run from the repository root: ``.venv/bin/python scripts/make_diagrams.py``.
It needs Graphviz's ``dot`` program. The graph is a ReLU layer: X (5, 4)
from np.random.seed(1) stacked with a column of ones, W (5, 3) with a zero
bias row, logits = X @ W, Y = max(logits, 0) and loss = sum(Y * dL) / N,
with dL a fixed upstream gradient (the same as in tests/test_draw.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import microad as ma
from microad.draw import save

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"

DL = np.array([
    [0.00129298, -0.07980928, -0.00114819],
    [-0.05755717, 0.06316294, 0.10198168],
    [0.16855754, -0.18964963, -0.19441138],
    [-0.10044659, -0.03399629, 0.03761689],
    [-0.01843651, -0.25222012, -0.0806204],
])


def relu_layer():
    """Build the ReLU layer, run backward, and return its variables by name."""
    np.random.seed(1)
    n, d, c = 5, 4, 3
    X = ma.Tensor(np.hstack([10 * np.random.randn(n, d), np.ones((n, 1))]))
    W = ma.Tensor(np.vstack([0.1 * np.random.randn(d, c), np.zeros(c)]), requires_grad=True)
    logits = X @ W
    Y = np.maximum(logits, 0)
    dL = DL
    loss = (Y * dL).sum() / n
    loss.backward()
    return {"X": X, "W": W, "logits": logits, "Y": Y, "dL": dL, "loss": loss}


def long_chain(length):
    """Build y = x * 1.0001 ** (length - 1) one multiply at a time."""
    x = ma.Tensor(1.0, requires_grad=True, name="x")
    y = x
    for _ in range(length - 1):
        y = y * 1.0001
    y.name = "y"
    y.backward()
    return y


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    names = relu_layer()
    loss = names["loss"]

    # 25 elements, so that X (5, 5) shows every value as in the derivation.
    written = [save(ma.draw(loss, names, max_elements=25), IMAGES / "relu_forward.svg")]
    try:
        written.append(save(ma.draw(loss, names, view="backward", max_elements=25),
                            IMAGES / "relu_backward.svg"))
        written.append(save(ma.draw(loss, names, view="both", values=False, max_elements=25),
                            IMAGES / "relu_both.svg"))
    except ma.MicroadError as exc:
        print(f"make_diagrams: skipped the backward diagrams: {exc}", file=sys.stderr)
    written.append(save(ma.draw(long_chain(10_000), max_nodes=6), IMAGES / "chain_collapsed.svg"))

    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
