"""The data of the French ReLU-layer notes, rebuilt from their random seed.

The notes seed NumPy's legacy generator with 1 and draw, in order, the
inputs, the weights and (in the vectorised section) the upstream gradient.
Their printed tables are kept here to check that the rebuild is exact.
"""

import numpy as np

D, C, N = 4, 3, 5
STD = 1e-1

# Single-vector section, as printed (3 decimals).
PRINTED_X1 = np.array([16.243, -6.118, -5.282, -10.73, 1.0])
PRINTED_LOGITS1 = np.array([1.511, -4.062, 4.337])
PRINTED_Y1 = np.array([1.511, 0.0, 4.337])
DL1 = np.array([0.031, -0.415, 0.926])
# The notes' dW for one vector: np.outer(X, dL), from dL rather than dlogits.
NOTES_DW1 = np.array([
    [0.50354706, -6.74103326, 15.04143807],
    [-0.18964449, 2.53878912, -5.66486439],
    [-0.16373324, 2.19191277, -4.89087043],
    [-0.33262027, 4.45281978, -9.93568944],
    [0.031, -0.415, 0.926],
])

# Vectorised section (N = 5), as printed.
PRINTED_LOGITS = np.array([
    [-2.599, 2.545, 2.45],
    [-2.727, -2.189, 2.188],
    [-1.749, 0.197, 0.884],
    [-0.561, -1.015, 0.105],
    [0.053, -1.431, 0.202],
])
PRINTED_DL = np.array([
    [0.00129298, -0.07980928, -0.00114819],
    [-0.05755717, 0.06316294, 0.10198168],
    [0.16855754, -0.18964963, -0.19441138],
    [-0.10044659, -0.03399629, 0.03761689],
    [-0.01843651, -0.25222012, -0.0806204],
])
# dW = X.T @ dlogits / N, with dlogits = dL * (logits > 0).
PRINTED_DW = np.array([
    [0.00635795, -0.38028697, 0.05227749],
    [0.03236928, 0.19223368, -0.25841114],
    [-0.00155655, -0.47027045, -0.1329191],
    [-0.02149015, 0.95267558, 0.47151264],
    [-0.0036873, -0.05389178, -0.02731628],
])


def single_vector():
    """Return X (5,) with the bias 1 appended and W (5, 3) with a zero bias row."""
    np.random.seed(1)
    x = 10 * np.random.randn(D)
    w = STD * np.random.randn(D, C)
    return np.hstack([x, [1.0]]), np.vstack([w, np.zeros(C)])


def vectorised():
    """Return Xraw (5, 4), W (5, 3) with a zero bias row, and dL (5, 3)."""
    np.random.seed(1)
    x = 10 * np.random.randn(N, D)
    w = STD * np.random.randn(D, C)
    # The printed dL is the generator's third draw of that shape: the notebook
    # cell that draws dL ran three times before the notes were saved.
    np.random.randn(2 * N * C)
    dl = STD * (np.random.randn(N, C) - 0.5)
    return x, np.vstack([w, np.zeros(C)]), dl
