"""Train a two-layer network on scikit-learn's handwritten digits: ``microad demo train``.

The model is ``Linear(64, 64) -> ReLU -> Linear(64, 10)``, trained with Adam on
mini-batches to minimise the mean cross-entropy plus an L2 penalty on the two
weight matrices. Before training, the engine's gradients for one batch are
compared with the classic hand-derived backward pass of that network.

The data is ``sklearn.datasets.load_digits`` (1,797 images of 8 x 8 pixels,
shipped inside scikit-learn, so nothing is downloaded), split 75/25 with a
fixed seed and standardised with the training set's statistics.

scikit-learn, matplotlib and tqdm are the optional extra ``train``
(``pip install 'microad[train]'``). They are imported when the demo runs, and
a missing one raises :class:`MissingExtraError`, which names the extra.
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import microad as ma
from microad import nn, optim
from microad.compare import compare
from microad.errors import MissingExtraError, OutputDirectoryError

SEED = 0
HIDDEN = 64
EPOCHS = 30
BATCH_SIZE = 64
LEARNING_RATE = 1e-2
REG = 1e-4
TARGET_ACCURACY = 0.97

_EXTRA = (("sklearn", "scikit-learn"), ("matplotlib", "matplotlib"), ("tqdm", "tqdm"))


def import_extra() -> dict:
    """Import scikit-learn, matplotlib and tqdm, or raise MissingExtraError naming what to install.

    Returns the imported top-level modules by import name.

    >>> import pytest; _ = pytest.importorskip("sklearn", reason="needs the extra 'train'")
    >>> sorted(import_extra())
    ['matplotlib', 'sklearn', 'tqdm']
    """
    modules = {}
    missing = []
    for module_name, package in _EXTRA:
        try:
            modules[module_name] = importlib.import_module(module_name)
        except ImportError:
            missing.append(package)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(f"microad demo train needs {', '.join(missing)}, which {verb} "
                                "not installed. Install the extra 'train' with: "
                                "pip install 'microad[train]'")
    return modules


@dataclass
class Digits:
    """The digits split into standardised training and test sets."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_digits_split(seed=SEED) -> Digits:
    """Load the digits, split them 75/25 stratified by class, and standardise the inputs.

    Each pixel is centred and scaled with the training set's mean and
    standard deviation. Pixels that are constant in the training set (always
    0, such as the top-left corner) keep a scale of 1 instead of a division by zero.

    >>> import pytest; _ = pytest.importorskip("sklearn", reason="needs the extra 'train'")
    >>> data = load_digits_split()
    >>> data.X_train.shape, data.X_test.shape
    ((1347, 64), (450, 64))
    """
    import_extra()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y)

    mean = X_train.mean(axis=0)
    scale = X_train.std(axis=0)
    scale[scale == 0] = 1.0
    return Digits((X_train - mean) / scale, (X_test - mean) / scale,
                  y_train.astype(np.int64), y_test.astype(np.int64))


def build_model(hidden=HIDDEN, seed=SEED) -> nn.Sequential:
    """Return ``Linear(64, hidden) -> ReLU -> Linear(hidden, 10)`` with He-uniform weights.

    >>> [name for name, _ in build_model(8).named_parameters()]
    ['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias']
    """
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(64, hidden, rng=rng), nn.ReLU(), nn.Linear(hidden, 10, rng=rng))


def regularized_loss(model, X, y, reg=REG, *, logits=None):
    """Return mean cross-entropy + reg * (sum(W1**2) + sum(W2**2)), leaving biases unpenalised.

    ``logits`` is ``model(X)`` when the caller has already computed it.
    """
    if logits is None:
        logits = model(X)
    penalty = 0.0
    for name, parameter in model.named_parameters():
        if name.endswith("weight"):
            penalty = penalty + (parameter * parameter).sum()
    return ma.cross_entropy(logits, y) + reg * penalty


def manual_gradients(model, X, y, reg=REG) -> dict:
    """Return the hand-derived gradients of :func:`regularized_loss`, keyed by parameter name.

    This is the classic backward pass of a two-layer ReLU network, in NumPy:
    ``dscores = (softmax(scores) - onehot(y)) / N``, then ``dW2 = h.T @ dscores + 2 reg W2``,
    ``db2 = dscores.sum(0)``, ``dh = dscores @ W2.T`` zeroed where ``h <= 0``,
    ``dW1 = X.T @ dh + 2 reg W1`` and ``db1 = dh.sum(0)``.
    """
    first, second = model.layers[0], model.layers[2]
    W1, b1 = first.weight.data, first.bias.data
    W2, b2 = second.weight.data, second.bias.data
    N = X.shape[0]

    h = np.maximum(X @ W1 + b1, 0)
    scores = h @ W2 + b2
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)

    dscores = probabilities.copy()
    dscores[np.arange(N), y] -= 1
    dscores /= N
    dW2 = h.T @ dscores + 2 * reg * W2
    db2 = dscores.sum(axis=0)
    dh = dscores @ W2.T
    dh[h <= 0] = 0
    dW1 = X.T @ dh + 2 * reg * W1
    db1 = dh.sum(axis=0)
    return {first.weight.name: dW1, first.bias.name: db1,
            second.weight.name: dW2, second.bias.name: db2}


def check_gradients(model, X, y, reg=REG):
    """Compare the engine's gradients of :func:`regularized_loss` with :func:`manual_gradients`.

    The referee :func:`microad.compare.compare` judges each parameter's
    hand-derived gradient against the engine and against central differences.
    Returns its report, whose ``ok`` is True when every gradient agrees.
    Leaves the parameters' ``.grad`` untouched.
    """
    manual = manual_gradients(model, X, y, reg)
    loss = regularized_loss(model, X, y, reg)
    return compare(loss, manual, names={"loss": loss})


@dataclass
class History:
    """Per-epoch metrics of a training run, and its wall-clock time in seconds."""

    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    seconds: float = 0.0


def evaluate(model, X, y, reg=REG) -> tuple[float, float]:
    """Return (regularised loss, accuracy) of the model on X, y, without recording a graph."""
    with ma.no_grad():
        logits = model(X)
        loss = regularized_loss(model, X, y, reg, logits=logits)
    accuracy = float((logits.data.argmax(axis=1) == y).mean())
    return float(loss.data), accuracy


def train(model, data, *, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE, reg=REG,
          seed=SEED, progress=True) -> History:
    """Train the model with Adam on shuffled mini-batches and return the per-epoch history.

    ``progress`` shows a tqdm bar with the epoch, training loss and test
    accuracy (on stderr).

    Training runs with one BLAS thread. The matrices are at most 1347 x 64,
    too small for threads to pay off, and when other processes kept both cores
    of the test machine busy, OpenBLAS's threads made training 3 to 10 times
    slower. threadpoolctl, which sets the limit, is a dependency of scikit-learn.
    """
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    with threadpool_limits(limits=1, user_api="blas"):
        return _train_epochs(model, data, tqdm, epochs=epochs, batch_size=batch_size, lr=lr,
                             reg=reg, seed=seed, progress=progress)


def _train_epochs(model, data, tqdm, *, epochs, batch_size, lr, reg, seed, progress) -> History:
    rng = np.random.default_rng(seed)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    history = History()
    started = time.perf_counter()

    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress)
    for _ in bar:
        model.train()
        order = rng.permutation(len(data.y_train))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = regularized_loss(model, data.X_train[batch], data.y_train[batch], reg)
            loss.backward(keep_intermediate_grads=False)
            optimizer.step()

        model.eval()
        train_loss, train_accuracy = evaluate(model, data.X_train, data.y_train, reg)
        test_loss, test_accuracy = evaluate(model, data.X_test, data.y_test, reg)
        history.train_loss.append(train_loss)
        history.train_accuracy.append(train_accuracy)
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_accuracy)
        bar.set_postfix(loss=f"{train_loss:.4f}", test_acc=f"{test_accuracy:.4f}")

    history.seconds = time.perf_counter() - started
    return history


def plot_history(history, path) -> Path:
    """Save the loss and accuracy per epoch as a PNG at ``path``, drawn with matplotlib's Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = np.arange(1, len(history.train_loss) + 1)
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)

    loss_axes.plot(epochs, history.train_loss, label="train")
    loss_axes.plot(epochs, history.test_loss, label="test")
    loss_axes.set(xlabel="epoch", ylabel="loss (cross-entropy + L2)", yscale="log",
                  title="Loss")
    loss_axes.legend()

    accuracy_axes.plot(epochs, history.train_accuracy, label="train")
    accuracy_axes.plot(epochs, history.test_accuracy, label="test")
    accuracy_axes.axhline(TARGET_ACCURACY, color="grey", linestyle=":", label="target")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    accuracy_axes.legend()

    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def run(output_dir, stream=None) -> int:
    """Run the demo (gradient check, training, plot in DIR/training.png) and return the exit code.

    Writes its report to ``stream`` (standard output by default). Returns 0
    when the gradients match and the test accuracy reaches the target, else 1.
    Raises MissingExtraError when the extra ``train`` is not installed.
    """
    import_extra()
    stream = sys.stdout if stream is None else stream
    output = Path(output_dir)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirectoryError(f"microad demo train: cannot create the output folder "
                                   f"{str(output)!r}: {exc.strerror}. Pass another folder with "
                                   "--output DIR") from exc

    data = load_digits_split(SEED)
    model = build_model(HIDDEN, SEED)
    stream.write(f"digits: {len(data.y_train)} training and {len(data.y_test)} test images "
                 f"of 8x8 pixels, 10 classes\n{model}\n\n")

    first_batch = slice(0, BATCH_SIZE)
    report = check_gradients(model, data.X_train[first_batch], data.y_train[first_batch], REG)
    colour = None if stream is sys.stdout else False
    stream.write(f"gradient check on one batch of {BATCH_SIZE}: the hand-derived backward "
                 f"pass against the engine (reg={REG})\n{report.to_text(colour=colour)}\n\n")
    stream.flush()

    history = train(model, data)
    plot = plot_history(history, output / "training.png")
    accuracy = history.test_accuracy[-1]
    stream.write(f"test accuracy after {len(history.test_accuracy)} epochs: {accuracy:.4f} "
                 f"(target {TARGET_ACCURACY}), training time {history.seconds:.1f} s\n"
                 f"plot: {plot}\n")

    if not report.ok:
        stream.write("the engine's gradients differ from the hand derivation\n")
        return 1
    if accuracy < TARGET_ACCURACY:
        stream.write(f"the test accuracy is below the target {TARGET_ACCURACY}\n")
        return 1
    return 0
