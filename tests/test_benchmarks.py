"""Tests of benchmarks/run.py: its gradient checks, not its timings.

The smoke run is started as a subprocess because run.py pins the BLAS thread
counts through environment variables before NumPy loads, which cannot be
undone inside the test process.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from notes_data import PRINTED_DL, PRINTED_DW

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import checks  # noqa: E402
import workloads  # noqa: E402

ENGINES_ALWAYS_RUN = ("numpy", "microad")


def run_script(*arguments, prelude=""):
    """Run benchmarks/run.py (after ``prelude``, if any) and return the finished process."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(BENCHMARKS)!r})
        import run
        {prelude}
        sys.exit(run.main({list(arguments)!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def smoke_run():
    return run_script("--smoke")


def test_smoke_exit_status(smoke_run):
    assert smoke_run.returncode == 0, smoke_run.stdout + smoke_run.stderr


def test_smoke_checks_all_pass(smoke_run):
    lines = smoke_run.stdout.splitlines()
    summary = [line for line in lines if line.startswith("gradient checks:")]
    assert len(summary) == 1, smoke_run.stdout
    assert summary[0].endswith(" 0 failed"), summary[0]
    passed = int(summary[0].split()[2])
    assert passed >= len(ENGINES_ALWAYS_RUN) * 5, summary[0]


def test_smoke_reports_every_case(smoke_run):
    rows = [line.split() for line in smoke_run.stdout.splitlines()]
    for case in ("relu-tiny", "relu-medium", "relu-large", "chain", "mlp"):
        for engine in ENGINES_ALWAYS_RUN:
            assert [case, engine] in [row[:2] for row in rows], f"no row for {case} / {engine}"


def test_smoke_reports_targets(smoke_run):
    assert "<= 3.0x" in smoke_run.stdout
    assert "memory <= 1.15x" in smoke_run.stdout


def test_smoke_records_openblas_settings(smoke_run):
    assert "OPENBLAS_CORETYPE=" in smoke_run.stdout
    assert "OPENBLAS_L2_SIZE=" in smoke_run.stdout


def test_wrong_gradient_fails_run():
    # Replace microad's ReLU runner with one whose dW is off by 1 %.
    prelude = textwrap.dedent("""
        import workloads
        original = workloads.relu_microad
        def skewed(inputs, **options):
            runner = original(inputs, **options)
            real = runner.gradients
            def gradients():
                grads = dict(real())
                grads["W"] = grads["W"] * 1.01
                return grads
            runner.gradients = gradients
            return runner
        workloads.relu_microad = skewed
    """).replace("\n", "\n        ")
    result = run_script("--smoke", "--only", "relu-tiny", prelude=prelude)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "relu-tiny / microad: dW differs" in result.stdout


def test_markdown_table():
    result = run_script("--smoke", "--only", "relu-tiny", "--markdown")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| case | engine | median |" in result.stdout
    assert "| relu-tiny | microad |" in result.stdout


def test_only_rejects_unknown_name():
    result = run_script("--smoke", "--only", "no-such-case")
    assert result.returncode != 0
    assert "neither a case nor an installed engine" in result.stderr


def test_relu_reference_matches_notes():
    inputs = workloads.relu_inputs(5, 4, 3)
    grads = workloads.relu_numpy(inputs).gradients()
    assert np.allclose(inputs["dL"], PRINTED_DL)
    assert np.allclose(grads["W"], PRINTED_DW)


def test_microad_relu_matches_reference():
    inputs = workloads.relu_inputs(5, 4, 3)
    reference = workloads.relu_numpy(inputs).gradients()
    assert checks.compare_gradients(workloads.relu_microad(inputs).gradients(), reference) == []


def test_compare_accepts_equal():
    expected = {"W": np.arange(6.0).reshape(2, 3)}
    assert checks.compare_gradients({"W": expected["W"].copy()}, expected) == []


def test_compare_flags_wrong_value():
    expected = {"W": np.arange(6.0).reshape(2, 3)}
    problems = checks.compare_gradients({"W": expected["W"] + 1e-3}, expected)
    assert len(problems) == 1
    assert problems[0].startswith("dW differs")


def test_compare_flags_wrong_shape():
    expected = {"W": np.zeros((2, 3))}
    problems = checks.compare_gradients({"W": np.zeros((3, 2))}, expected)
    assert problems == ["dW has shape (3, 2), expected (2, 3)"]


def test_compare_flags_missing():
    expected = {"W": np.zeros(2), "b": np.zeros(2)}
    problems = checks.compare_gradients({"W": np.zeros(2), "b": None}, expected)
    assert problems == ["db is missing"]
