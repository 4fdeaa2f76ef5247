"""Time microad against hand-written NumPy and other autodiff engines.

Usage:
    .venv/bin/python benchmarks/run.py              # full run, several minutes
    .venv/bin/python benchmarks/run.py --smoke      # small sizes, a few seconds
    .venv/bin/python benchmarks/run.py --only mlp   # one case (or one engine)
    .venv/bin/python benchmarks/run.py --markdown   # the table as Markdown

Every engine's gradients are checked against the hand-derived NumPy ones
(np.allclose) before it is timed. The script exits with status 1 when a check
fails, so a smoke run in CI catches a wrong gradient. Times are medians over
interleaved repeats: each repeat times every engine once, so that drift in
the machine's load affects all engines alike. Ratios divide by the NumPy
median of the same run.

Engine rows: "microad" records the graph and calls backward() with its
defaults, except in the MLP step, which passes keep_intermediate_grads=False;
"microad lean" is the ReLU layer with keep_intermediate_grads=False; "microad
compiled" replays the code that microad.compile generates. The other rows are
HIPS autograd, MyGrad and PyTorch on the CPU, when they are installed.
"""

from __future__ import annotations

import os

# Pin every BLAS and OpenMP pool to one thread before NumPy is imported.
# These variables are read once, when the libraries load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _variable in THREAD_VARIABLES:
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from importlib.metadata import PackageNotFoundError, version  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checks  # noqa: E402
import workloads  # noqa: E402

# Targets as the maximum ratio of microad's median to NumPy's in the same run.
TARGETS = {
    "relu-tiny": 3.0,
    "relu-medium": 1.05,
    "relu-large": 1.03,
    "chain": 3.0,
    "mlp": 1.6,
}
MEMORY_TARGET = 1.15
MEMORY_CASE = "relu-large"
# Engines whose arrays are NumPy arrays, so tracemalloc counts their allocations.
MEMORY_ENGINES = ("numpy", "microad", "microad lean", "autograd", "mygrad")

# (repeats, minimum seconds per repeat). A repeat loops the call enough times
# to last the minimum, as timeit does. The large case runs once per repeat.
FULL_SETTINGS = {"relu-large": (11, 0.0), "default": (15, 0.2)}
SMOKE_SETTINGS = {"default": (3, 0.005)}


def limit_thread_pools():
    """Limit the BLAS pools with threadpoolctl when it is installed; return its info."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    threadpoolctl.threadpool_limits(limits=1)
    return threadpoolctl.threadpool_info()


def engine_version(engine):
    package = "microad" if engine.startswith("microad") else engine
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def available_engines():
    """Return the engine names whose packages import, NumPy and microad first."""
    engines = ["numpy", "microad", "microad lean", "microad compiled"]
    for engine, module in workloads.ENGINE_MODULES.items():
        if workloads.optional_module(module) is not None:
            engines.append(engine)
    return engines


# ---------------------------------------------------------------------------
# Timing and memory
# ---------------------------------------------------------------------------

def calibrate(step, minimum_seconds):
    """Return how many calls of ``step`` last at least ``minimum_seconds``."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            step()
        elapsed = time.perf_counter() - start
        if elapsed >= minimum_seconds:
            return number
        number *= 2 if elapsed == 0 else max(2, min(10, int(minimum_seconds / elapsed) + 1))


def time_once(step, number):
    """Return the seconds per call of ``number`` calls, with the garbage collector off."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            step()
        return (time.perf_counter() - start) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def time_interleaved(runners, repeats, minimum_seconds):
    """Return ``{engine: [seconds per call, ...]}``, one entry per repeat and engine."""
    numbers = {}
    for engine, runner in runners.items():
        numbers[engine] = calibrate(runner.step, minimum_seconds)
    samples = {engine: [] for engine in runners}
    for _ in range(repeats):
        for engine, runner in runners.items():
            samples[engine].append(time_once(runner.step, numbers[engine]))
        gc.collect()
    return samples


def peak_memory(builder, inputs):
    """Return the peak bytes that tracemalloc counts during one step, above the start.

    The runner is built afresh, so that no gradient from an earlier step is
    held at the start and freed during the step, which would hide its size.
    """
    runner = builder(inputs)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = runner.step()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return peak - baseline


# ---------------------------------------------------------------------------
# Running the cases
# ---------------------------------------------------------------------------

def select(workload_list, engines, only):
    """Apply ``--only``: a case name keeps that case, an engine name keeps that engine."""
    if only is None:
        return workload_list, engines
    case_names = {w.name for w in workload_list}
    if only in case_names or only == "memory":
        case = MEMORY_CASE if only == "memory" else only
        return [w for w in workload_list if w.name == case], engines
    if only in engines:
        return workload_list, [e for e in engines if e in ("numpy", only)]
    choices = ", ".join(sorted(case_names | set(engines) | {"memory"}))
    raise SystemExit(f"run.py: --only {only!r} is neither a case nor an installed engine; "
                     f"choose one of: {choices}")


def run_workload(workload, engines, settings, results, failures, measure_memory):
    inputs = workload.make_inputs()
    reference = workload.builders["numpy"](inputs).gradients()

    runners = {}
    for engine in engines:
        builder = workload.builders.get(engine)
        if builder is None:
            continue
        runner = builder(inputs)
        problems = checks.compare_gradients(runner.gradients(), reference)
        if problems:
            failures.append((workload.name, engine, problems))
            results.append({"case": workload.name, "engine": engine, "status": "gradient mismatch"})
            continue
        runners[engine] = runner

    repeats, minimum_seconds = settings.get(workload.name, settings["default"])
    samples = time_interleaved(runners, repeats, minimum_seconds)
    numpy_median = statistics.median(samples["numpy"]) if "numpy" in samples else None

    for engine, times in samples.items():
        median = statistics.median(times) / workload.ops
        row = {"case": workload.name, "engine": engine, "status": "ok", "median": median,
               "repeats": len(times), "description": workload.description}
        if numpy_median is not None:
            row["ratio"] = statistics.median(times) / numpy_median
        results.append(row)

    if measure_memory and workload.name == MEMORY_CASE:
        runners.clear()  # free the timed runners' arrays before measuring
        peaks = {engine: peak_memory(workload.builders[engine], inputs)
                 for engine in MEMORY_ENGINES if engine in samples}
        for row in results:
            if row["case"] == workload.name and row["engine"] in peaks:
                row["peak_bytes"] = peaks[row["engine"]]
                if "numpy" in peaks:
                    row["memory_ratio"] = peaks[row["engine"]] / peaks["numpy"]


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def format_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def target_status(row):
    """Return 'met' or 'missed' for the rows of microad (all variants) that have a target."""
    if not row["engine"].startswith("microad") or row.get("status") != "ok":
        return ""
    limit = TARGETS.get(row["case"])
    if limit is None or "ratio" not in row:
        return ""
    # The exact ratio is shown because the ratio column rounds: 1.031x shows
    # there as 1.03x, which misses a target of 1.03x.
    ratio = row["ratio"]
    parts = [f"<= {limit}x: {'met' if ratio <= limit else 'missed'} ({ratio:.3f}x)"]
    if "memory_ratio" in row:
        memory_ratio = row["memory_ratio"]
        met = memory_ratio <= MEMORY_TARGET
        parts.append(f"memory <= {MEMORY_TARGET}x: {'met' if met else 'missed'} "
                     f"({memory_ratio:.3f}x)")
    return "; ".join(parts)


def table_rows(results):
    header = ["case", "engine", "median", "ratio to NumPy", "peak memory (ratio)", "target"]
    rows = []
    for row in results:
        if row["status"] != "ok":
            rows.append([row["case"], row["engine"], row["status"], "", "", ""])
            continue
        median = format_time(row["median"])
        if row["case"] == "chain":
            median += " per op"
        memory = ""
        if "peak_bytes" in row:
            memory = f"{row['peak_bytes'] / 2**20:.1f} MiB"
            if "memory_ratio" in row:
                memory += f" ({row['memory_ratio']:.2f}x)"
        ratio = f"{row['ratio']:.2f}x" if "ratio" in row else ""
        rows.append([row["case"], row["engine"], median, ratio, memory, target_status(row)])
    return header, rows


def render_text(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def render_markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def describe_environment(engines, pool_info):
    lines = [f"Python {platform.python_version()} ({platform.machine()}), "
             f"{os.cpu_count()} logical CPUs"]
    lines.append("engines: " + ", ".join(f"{e} {engine_version(e)}" for e in engines
                                         if e not in ("microad lean", "microad compiled")))
    lines.append("threads: " + ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARIABLES)
                 + ("; threadpoolctl limits=1" if pool_info is not None else
                    "; threadpoolctl not installed"))
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        lines.append(f"{variable}={os.environ.get(variable, '(not set)')}")
    for pool in pool_info or []:
        lines.append(f"BLAS pool: {pool.get('internal_api')} {pool.get('version')} "
                     f"{pool.get('architecture', '')} threads={pool.get('num_threads')} "
                     f"({Path(pool.get('filepath', '')).name})")
    return "\n".join(lines)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Time microad's forward and backward passes against hand-written NumPy, "
                    "after checking every engine's gradients against the hand-derived ones.")
    parser.add_argument("--smoke", action="store_true",
                        help="use small sizes and 3 short repeats, which finish in seconds")
    parser.add_argument("--only", metavar="NAME",
                        help="run one case (relu-tiny, relu-medium, relu-large, chain, mlp, "
                             "memory) or one engine (always timed beside numpy)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the results table as Markdown")
    return parser.parse_args(argv)


def time_diagram_text(length):
    """Time building the DOT text of a chain of ``length`` tensors, in full and collapsed."""
    import microad as ma

    x = ma.Tensor([1.0, 2.0, 3.0], requires_grad=True, name="x")
    y = x
    for _ in range(length - 1):
        y = y + 1.0
    y.sum().backward()
    timings = {}
    for label, options in (("full", {}), ("collapsed to 50 nodes", {"max_nodes": 50})):
        started = time.perf_counter()
        source = ma.draw(y, **options).source
        timings[label] = (time.perf_counter() - started, len(source))
    return timings


def main(argv=None):
    arguments = parse_arguments(argv)
    pool_info = limit_thread_pools()
    torch = workloads.optional_module("torch")
    if torch is not None:
        torch.set_num_threads(1)

    engines = available_engines()
    workload_list = workloads.make_workloads(smoke=arguments.smoke)
    workload_list, engines = select(workload_list, engines, arguments.only)
    settings = SMOKE_SETTINGS if arguments.smoke else FULL_SETTINGS

    print(describe_environment(engines, pool_info))
    print(f"mode: {'smoke' if arguments.smoke else 'full'}; gradient checks: np.allclose "
          "against the hand-derived NumPy gradients")
    print()

    results, failures = [], []
    for workload in workload_list:
        started = time.perf_counter()
        run_workload(workload, engines, settings, results, failures, measure_memory=True)
        print(f"{workload.name}: {workload.description} "
              f"({time.perf_counter() - started:.1f} s)", flush=True)

    header, rows = table_rows(results)
    print()
    print(render_markdown(header, rows) if arguments.markdown else render_text(header, rows))

    length = 1_000 if arguments.smoke else 10_000
    print()
    for label, (seconds, size) in time_diagram_text(length).items():
        print(f"diagram: DOT text of a {length:,}-tensor chain, {label}: {seconds:.2f} s "
              f"({size:,} characters)")

    checked = sum(1 for row in results if row["status"] == "ok")
    print()
    print(f"gradient checks: {checked} passed, {len(failures)} failed")
    for case, engine, problems in failures:
        for problem in problems:
            print(f"  {case} / {engine}: {problem}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
