"""Tests of the digits training demo: data, gradient check, accuracy, plot and missing extra."""

import io
import re
import sys

import numpy as np
import pytest

from microad import cli
from microad.compare import compare
from microad.demos import train

pytest.importorskip("sklearn", reason="the digits demo needs the extra 'train': "
                                      "pip install 'microad[train]'")
pytest.importorskip("matplotlib", reason="the training plot needs the extra 'train'")
pytest.importorskip("tqdm", reason="the progress bar needs the extra 'train'")


@pytest.fixture(scope="module")
def digits():
    return train.load_digits_split(train.SEED)


@pytest.fixture(scope="module")
def history(digits):
    model = train.build_model(train.HIDDEN, train.SEED)
    return train.train(model, digits, progress=False)


def test_split_sizes(digits):
    assert digits.X_train.shape == (1347, 64)
    assert digits.X_test.shape == (450, 64)
    assert digits.y_train.shape == (1347,)
    assert digits.y_test.shape == (450,)


def test_split_is_stratified(digits):
    train_counts = np.bincount(digits.y_train, minlength=10)
    test_counts = np.bincount(digits.y_test, minlength=10)
    assert np.all(np.abs(train_counts / 1347 - test_counts / 450) < 0.01)


def test_inputs_standardised(digits):
    scale = digits.X_train.std(axis=0)
    assert np.allclose(digits.X_train.mean(axis=0), 0)
    # Constant pixels stay at 0, and every other pixel has unit variance.
    assert np.allclose(scale[scale > 0], 1)
    assert np.isfinite(digits.X_test).all()


def test_manual_gradients_match_engine(digits):
    model = train.build_model(16, seed=3)
    X, y = digits.X_train[:32], digits.y_train[:32]
    manual = train.manual_gradients(model, X, y, reg=0.01)
    loss = train.regularized_loss(model, X, y, reg=0.01)

    report = compare(loss, manual)

    assert report.ok, str(report)
    for name, _ in model.named_parameters():
        assert report[name].ok, name
        assert report[name].max_abs_error < 1e-12, name


def test_check_gradients_reports_ok(digits):
    model = train.build_model(16, seed=3)
    before = [p.data.copy() for p in model.parameters()]
    report = train.check_gradients(model, digits.X_train[:32], digits.y_train[:32], reg=0.01)
    assert report.ok
    assert sorted(entry.key for entry in report.entries) == sorted(
        name for name, _ in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    for parameter, data in zip(model.parameters(), before):
        assert np.array_equal(parameter.data, data), parameter.name


def test_check_gradients_catches_wrong_formula(digits, monkeypatch):
    original = train.manual_gradients

    def missing_reg_term(model, X, y, reg):
        gradients = original(model, X, y, reg)
        gradients["layers.0.weight"] = gradients["layers.0.weight"] - 2 * reg * model.layers[0].weight.data
        return gradients

    monkeypatch.setattr(train, "manual_gradients", missing_reg_term)
    model = train.build_model(16, seed=3)
    report = train.check_gradients(model, digits.X_train[:32], digits.y_train[:32], reg=0.01)
    assert not report.ok
    assert not report["layers.0.weight"].ok
    assert report["layers.2.weight"].ok
    assert "MISMATCH" in str(report)


def test_training_lowers_loss(digits):
    model = train.build_model(32, seed=1)
    X, y = digits.X_train[:64], digits.y_train[:64]
    before, _ = train.evaluate(model, X, y)
    small = train.Digits(X, X, y, y)
    history = train.train(model, small, epochs=5, batch_size=16, progress=False)
    assert history.train_loss[-1] < 0.5 * before


def test_accuracy_reaches_target(history):
    assert history.test_accuracy[-1] >= train.TARGET_ACCURACY


def test_history_has_every_epoch(history):
    assert len(history.train_loss) == train.EPOCHS
    assert len(history.test_accuracy) == train.EPOCHS
    assert history.train_loss[-1] < history.train_loss[0]


def test_plot_written(history, tmp_path):
    path = train.plot_history(history, tmp_path / "training.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_writes_report(tmp_path, capsys):
    stream = io.StringIO()
    code = train.run(tmp_path / "out", stream=stream)
    report = stream.getvalue()
    assert code == 0
    assert (tmp_path / "out" / "training.png").is_file()
    assert "layers.0.weight" in report
    assert "MISMATCH" not in report
    assert "4 manual gradient(s) checked, all agree" in report
    assert "test accuracy after 30 epochs" in report
    assert "training:" in capsys.readouterr().err


def test_cli_demo_train(tmp_path, capsys):
    code = cli.main(["demo", "train", "--output", str(tmp_path / "cli")])
    output = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "cli" / "training.png").is_file()
    assert "Gradients of loss: 4 manual gradient(s) checked, all agree" in output
    accuracy = re.search(r"test accuracy after 30 epochs: ([0-9.]+)", output)
    assert accuracy is not None
    assert float(accuracy.group(1)) >= train.TARGET_ACCURACY


def test_output_folder_is_file(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(train.OutputDirectoryError, match="cannot create the output folder"):
        train.run(blocker / "out", stream=io.StringIO())


def test_missing_extra_raises(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(train.MissingExtraError, match="pip install 'microad\\[train\\]'") as info:
        train.run(tmp_path)
    assert "needs tqdm, which is not installed" in str(info.value)
    assert not (tmp_path / "training.png").exists()


def test_missing_extras_all_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(train.MissingExtraError, match="needs scikit-learn, matplotlib, which are not installed"):
        train.import_extra()


def test_cli_missing_extra_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    code = cli.main(["demo", "train", "--output", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2
    assert "needs scikit-learn" in error
    assert "pip install 'microad[train]'" in error
