"""Time microad.compile against hand-written NumPy on a tiny ReLU layer.

The layer: X = hstack([Xraw, ones]) (N=5, D=4), logits = X @ W (C=3),
Y = maximum(logits, 0), loss = sum(Y * dL) / N, and the gradient dW. Both
versions are checked to give the same loss and dW before they are timed.

Usage:
    .venv/bin/python benchmarks/compile_relu.py             # about 10 seconds
    .venv/bin/python benchmarks/compile_relu.py --number 2000 --repeat 3

It prints the median time per call of each version and their ratio. The
goal is a ratio of at most 1.5. Nothing is asserted on the times.
"""

from __future__ import annotations

import argparse
import os

# One BLAS thread, set before NumPy loads, so that both versions run alike.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import statistics  # noqa: E402
import sys  # noqa: E402
import timeit  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import microad as ma  # noqa: E402

N, D, C = 5, 4, 3


def relu_loss(Xraw, W, dL):
    """Compute the layer's loss on Tensors, for compile to trace."""
    X = ma.hstack([Xraw, np.ones((Xraw.shape[0], 1))])
    logits = X @ W
    Y = np.maximum(logits, 0)
    return (Y * dL).sum() / Xraw.shape[0]


def by_hand(Xraw, W, dL):
    """Compute the same loss and dW by hand with NumPy."""
    X = np.hstack([Xraw, np.ones((Xraw.shape[0], 1))])
    logits = X @ W
    Y = np.maximum(logits, 0)
    loss = np.sum(Y * dL) / N
    dlogits = dL / N * (logits > 0)
    dW = X.T @ dlogits
    return loss, dW


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000,
                        help="calls per timing (default: 20000)")
    parser.add_argument("--repeat", type=int, default=7, help="timings per version (default: 7)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(1)
    Xraw = 10 * rng.standard_normal((N, D))
    W = 0.1 * rng.standard_normal((D + 1, C))
    dL = 0.1 * (rng.standard_normal((N, C)) - 0.5)

    step = ma.compile(relu_loss, wrt=["W"])
    loss, grads = step(Xraw, W, dL)
    hand_loss, hand_dW = by_hand(Xraw, W, dL)
    np.testing.assert_allclose(loss, hand_loss, rtol=1e-12)
    np.testing.assert_allclose(grads["W"], hand_dW, rtol=1e-12, atol=1e-15)

    times = {}
    for name, function in (("hand-written NumPy", by_hand), ("microad.compile", step)):
        runs = timeit.repeat(lambda: function(Xraw, W, dL), number=args.number, repeat=args.repeat)
        times[name] = statistics.median(runs) / args.number
        print(f"{name:<20} {times[name] * 1e6:8.2f} us per call (median of {args.repeat})")
    ratio = times["microad.compile"] / times["hand-written NumPy"]
    print(f"ratio                {ratio:8.2f}  (goal: at most 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
