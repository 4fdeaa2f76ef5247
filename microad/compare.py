"""The referee: check hand-derived gradients against the engine and against central differences.

``compare(y, manual, names=locals())`` takes a dict of manual gradients keyed
by the tensors' labels, in the field's d-notation (``"dW"``, ``"dlogits"``) or
bare (``"W"``). For each one it reports the engine's gradient and the
numerical gradient from central differences, so a disagreement shows which
side is wrong. It also names the first divergence in backward order. For
each mismatch, :mod:`microad.diagnose` names the likely mistake, such as a
transposed or scaled gradient or a missing ReLU mask.

Tolerances: a manual value agrees when ``|manual - engine| <= atol + rtol *
|engine|`` element by element. The defaults depend on the dtype (the less
precise of the two arrays). float64 keeps about 16 significant digits and
float32 about 7, so a hand formula that adds the same terms in another order
differs from the engine by about 1e-16 relative in float64 and 1e-7 in float32.
The defaults leave a margin of several orders of magnitude above that rounding
and stay far below the size of any real mistake.
"""

from __future__ import annotations

import html
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import backprop
from .diagnose import POSITIONS_SHOWN, Diagnoser, close, variant_walk
from .errors import ManualGradientError, MicroadError
from .gradcheck import GRADCHECK_TOLERANCES, NumericalGradient
from .graph import is_tensor, label_tensors, topological_order

logger = logging.getLogger(__name__)

# Default (rtol, atol) for manual against engine, by dtype.
COMPARE_TOLERANCES = {
    np.dtype(np.float64): (1e-7, 1e-9),
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float16): (1e-2, 1e-3),
}

# Central differences cost two replays per element; above this many elements a
# tensor is checked on a random sample of elements.
NUMERIC_MAX_ELEMENTS = 1000



# ---------------------------------------------------------------------------
# Report types
# ---------------------------------------------------------------------------

@dataclass
class NumericCheck:
    """Central differences of the output with respect to one tensor, against both gradients."""

    checked: int
    total: int
    kinks: list
    max_abs_vs_engine: float
    max_abs_vs_manual: float | None
    agrees_with_engine: bool
    agrees_with_manual: bool | None
    rtol: float
    atol: float

    def summary(self) -> str:
        if self.checked == 0:
            return "not checked"
        engine = "agrees with engine" if self.agrees_with_engine else "DIFFERS from engine"
        if self.agrees_with_manual is None:
            manual = ""
        elif self.agrees_with_manual:
            manual = ", agrees with manual"
        else:
            manual = ", differs from manual"
        return engine + manual


@dataclass
class Entry:
    """The verdict on one manual gradient."""

    key: str
    label: str
    manual_shape: tuple
    engine_shape: tuple
    dtype: str
    rtol: float
    atol: float
    max_abs_error: float | None
    max_rel_error: float | None
    mismatch_count: int | None
    mismatch_positions: list
    size: int
    verdict: str
    numeric: NumericCheck | None = None
    diagnoses: list = field(default_factory=list)
    cause: str | None = None
    cause_note: str = ""
    notes: list = field(default_factory=list)
    manual: np.ndarray = field(default=None, repr=False)
    engine: np.ndarray = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def to_dict(self) -> dict:
        numeric = None
        if self.numeric is not None:
            n = self.numeric
            numeric = {"checked": n.checked, "total": n.total,
                       "kinks": [{"index": list(i), "kind": k} for i, k in n.kinks],
                       "max_abs_vs_engine": n.max_abs_vs_engine,
                       "max_abs_vs_manual": n.max_abs_vs_manual,
                       "agrees_with_engine": n.agrees_with_engine,
                       "agrees_with_manual": n.agrees_with_manual,
                       "rtol": n.rtol, "atol": n.atol}
        return {
            "name": self.key, "label": self.label,
            "manual_shape": list(self.manual_shape), "engine_shape": list(self.engine_shape),
            "dtype": self.dtype, "rtol": self.rtol, "atol": self.atol,
            "max_abs_error": self.max_abs_error, "max_rel_error": self.max_rel_error,
            "mismatch_count": self.mismatch_count,
            "mismatch_positions": [list(p) for p in self.mismatch_positions],
            "size": self.size, "verdict": self.verdict, "ok": self.ok,
            "numeric": numeric,
            "diagnoses": [{"kind": d.kind, "message": d.message} for d in self.diagnoses],
            "cause": self.cause, "cause_note": self.cause_note, "notes": list(self.notes),
        }


_COLOURS = {"ok": "32", "mismatch": "31", "shape mismatch": "31", "engine suspect": "33"}


def _use_colour(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _paint(text, code, colour) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def _number(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _positions(entry) -> str:
    if entry.mismatch_count is None:
        return "shape"
    if entry.mismatch_count == 0:
        return "0"
    shown = " ".join(str(list(p)) for p in entry.mismatch_positions)
    more = " ..." if entry.mismatch_count > len(entry.mismatch_positions) else ""
    return f"{entry.mismatch_count}/{entry.size} at {shown}{more}"


_HEADER = ("name", "manual", "engine", "max abs err", "max rel err", "differ",
           "rtol", "atol", "numeric", "verdict")


def _row(entry) -> tuple:
    numeric = entry.numeric.summary() if entry.numeric is not None else "off"
    return (entry.key, str(entry.manual_shape), str(entry.engine_shape),
            _number(entry.max_abs_error), _number(entry.max_rel_error), _positions(entry),
            f"{entry.rtol:g}", f"{entry.atol:g}", numeric, entry.verdict.upper())


def _details(entry) -> list:
    """Return the lines printed under an entry's row: cause, diagnoses and notes."""
    lines = []
    if entry.cause_note:
        lines.append(entry.cause_note)
    for diagnosis in entry.diagnoses:
        lines.append(f"likely {diagnosis.kind}: {diagnosis.message}")
    lines.extend(entry.notes)
    return lines


@dataclass
class Report:
    """The referee's verdict on every manual gradient, in backward order.

    ``str(report)`` is a plain table. ``report.to_text(colour=None)`` adds
    colour when standard output is a terminal and NO_COLOR is unset. Jupyter
    shows ``_repr_html_``, and ``to_dict()`` and ``to_json()`` return data.
    """

    output: str
    entries: list

    @property
    def ok(self) -> bool:
        return all(entry.ok for entry in self.entries)

    @property
    def root_cause(self) -> str | None:
        """The key of the first wrong manual gradient in backward order, or None."""
        for entry in self.entries:
            if entry.cause == "root cause":
                return entry.key
        return None

    def __getitem__(self, key) -> Entry:
        for entry in self.entries:
            if key in (entry.key, entry.label, "d" + entry.label):
                return entry
        raise KeyError(key)

    def _title(self) -> str:
        wrong = sum(not entry.ok for entry in self.entries)
        verdict = "all agree" if wrong == 0 else f"{wrong} differ"
        return (f"Gradients of {self.output}: {len(self.entries)} manual gradient(s) checked, "
                f"{verdict}")

    def to_text(self, colour=None) -> str:
        """Format the report as a table; ``colour=None`` decides from stdout and NO_COLOR."""
        if colour is None:
            colour = _use_colour(sys.stdout)
        rows = [_row(entry) for entry in self.entries]
        widths = [max(len(cell) for cell in column) for column in zip(_HEADER, *rows)]

        lines = [self._title(), ""]
        lines.append("  ".join(title.ljust(width) for title, width in zip(_HEADER, widths)).rstrip())
        for entry, row in zip(self.entries, rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths)]
            cells[-1] = _paint(cells[-1].rstrip(), _COLOURS[entry.verdict], colour)
            lines.append("  ".join(cells).rstrip())
            for detail in _details(entry):
                lines.append("    " + detail)
        lines.append("")
        lines.append("An element agrees when |manual - engine| <= atol + rtol * |engine|. The "
                     "default tolerances are looser for float32 (rtol 1e-4, atol 1e-5) than for "
                     "float64 (rtol 1e-7, atol 1e-9) because float32 keeps about 7 significant "
                     "digits against 16.")
        return "\n".join(lines)

    def __str__(self):
        return self.to_text(colour=False)

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(title)}</th>" for title in _HEADER)
        body = []
        for entry in self.entries:
            colour = {"ok": "#1a7f37"}.get(entry.verdict, "#cf222e")
            cells = [html.escape(cell) for cell in _row(entry)]
            cells[-1] = f'<span style="color:{colour};font-weight:bold">{cells[-1]}</span>'
            body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
            details = _details(entry)
            if details:
                items = "<br>".join(html.escape(line) for line in details)
                body.append(f'<tr><td></td><td colspan="{len(_HEADER) - 1}">{items}</td></tr>')
        return (f"<p>{html.escape(self._title())}</p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def to_dict(self) -> dict:
        return {"output": self.output, "ok": self.ok, "root_cause": self.root_cause,
                "entries": [entry.to_dict() for entry in self.entries]}

    def to_json(self, indent=2) -> str:
        """Return ``to_dict()`` as JSON; NaN and infinite errors become the strings "nan", "inf"."""
        return json.dumps(_json_safe(self.to_dict()), indent=indent, allow_nan=False)


def _json_safe(value):
    """Replace non-finite floats, which JSON cannot represent, with their text."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


# ---------------------------------------------------------------------------
# Matching manual keys to tensors
# ---------------------------------------------------------------------------

def _as_array(key, value) -> np.ndarray:
    array = np.asarray(value.data if is_tensor(value) else value)
    if array.dtype.kind not in "biuf":
        raise ManualGradientError(f"manual gradient {key!r} has dtype {array.dtype}; pass a "
                                  "real NumPy array such as np.asarray(value, dtype=float)")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    return array


def _resolve(key, by_label, available, repeated):
    """Return the tensor that the manual key ``key`` names ("dW" or "W")."""
    if not isinstance(key, str):
        raise ManualGradientError(f"manual gradient key {key!r} is not a string; use the "
                                  f"tensor's label, such as {', '.join(available[:3])}")
    bare = key[1:] if key.startswith("d") else None
    candidates = []
    if bare and bare in by_label:
        candidates.append(bare)
    if key in by_label:
        candidates.append(key)
    if len(candidates) == 2 and by_label[bare] is not by_label[key]:
        raise ManualGradientError(f"manual gradient {key!r} is ambiguous: it can mean the gradient "
                                  f"of {bare!r} or of {key!r}. Name the tensors differently")
    if not candidates:
        raise ManualGradientError(f"manual gradient {key!r} names no tensor of the graph; the "
                                  f"tensors with a gradient are: {', '.join(available) or 'none'}. "
                                  "Name a tensor with Tensor(..., name=...) or pass names=locals()")
    if candidates[0] in repeated:
        raise ManualGradientError(f"manual gradient {key!r} is ambiguous: several tensors of the "
                                  f"graph are labelled {candidates[0]!r}. Give them different names")
    return by_label[candidates[0]], candidates[0]


# ---------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------

def _tolerances(dtype, rtol, atol):
    default_rtol, default_atol = COMPARE_TOLERANCES.get(np.dtype(dtype),
                                                        COMPARE_TOLERANCES[np.dtype(np.float64)])
    return (default_rtol if rtol is None else rtol, default_atol if atol is None else atol)


def _less_precise(*dtypes):
    return max((np.dtype(d) for d in dtypes), key=lambda d: -np.finfo(d).eps)


def _seed(y, gradient):
    if gradient is None:
        if y.size != 1:
            raise MicroadError(f"compare: the output has shape {y.shape}, so it needs the "
                               "upstream gradient dL/d(output) of that shape: gradient= in "
                               "Python, or a variable named gradient in a graph file. Or use a "
                               "scalar loss such as (y * dL).sum()")
        return np.ones(y.shape, dtype=y.dtype)
    return backprop._seed(y, gradient, caller="compare()")


def _numeric_check(y, tensor, seed, manual, engine, rtol, atol, rng) -> NumericCheck:
    h, numeric_rtol, numeric_atol = GRADCHECK_TOLERANCES[np.dtype(np.float64)]
    numeric_rtol, numeric_atol = max(numeric_rtol, rtol), max(numeric_atol, atol)
    numerical = NumericalGradient(y, tensor, seed, h)

    size = engine.size
    if size > NUMERIC_MAX_ELEMENTS:
        flat = np.sort(rng.choice(size, NUMERIC_MAX_ELEMENTS, replace=False))
    else:
        flat = np.arange(size)
    values, kept, kinks = [], [], []
    for flat_index in flat:
        value, kink = numerical.element(int(flat_index))
        if kink is not None:
            index = np.unravel_index(flat_index, engine.shape) if engine.shape else ()
            kinks.append((tuple(int(i) for i in index), kink))
            continue
        values.append(value)
        kept.append(flat_index)
    kept = np.asarray(kept, dtype=int)
    numeric = np.asarray(values, dtype=np.float64)

    engine_part = engine.reshape(-1)[kept].astype(np.float64)
    vs_engine = np.abs(numeric - engine_part)
    agrees_engine = bool(np.all(vs_engine <= numeric_atol + numeric_rtol * np.abs(numeric)))
    vs_manual, agrees_manual = None, None
    if manual.shape == engine.shape:
        manual_part = manual.reshape(-1)[kept].astype(np.float64)
        difference = np.abs(numeric - manual_part)
        vs_manual = float(difference.max(initial=0.0))
        agrees_manual = bool(np.all(difference <= numeric_atol + numeric_rtol * np.abs(numeric)))
    return NumericCheck(len(kept), size, kinks, float(vs_engine.max(initial=0.0)), vs_manual,
                        agrees_engine, agrees_manual, numeric_rtol, numeric_atol)


def _judge(key, label, tensor, manual, engine, rtol, atol) -> Entry:
    dtype = _less_precise(manual.dtype, engine.dtype)
    rtol, atol = _tolerances(dtype, rtol, atol)
    entry = Entry(key=key, label=label, manual_shape=manual.shape, engine_shape=engine.shape,
                  dtype=str(dtype), rtol=rtol, atol=atol, max_abs_error=None,
                  max_rel_error=None, mismatch_count=None, mismatch_positions=[],
                  size=engine.size, verdict="shape mismatch", manual=manual, engine=engine)
    if manual.shape != engine.shape:
        return entry

    manual64, engine64 = manual.astype(np.float64), engine.astype(np.float64)
    difference = np.abs(manual64 - engine64)
    scale = np.maximum(np.abs(manual64), np.abs(engine64))
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(scale > 0, difference / np.where(scale > 0, scale, 1), 0.0)
    differ = ~(difference <= atol + rtol * np.abs(engine64))
    entry.max_abs_error = float(difference.max(initial=0.0))
    entry.max_rel_error = float(relative.max(initial=0.0))
    entry.mismatch_count = int(differ.sum())
    entry.mismatch_positions = [tuple(int(i) for i in p) for p in np.argwhere(differ)[:POSITIONS_SHOWN]]
    entry.verdict = "ok" if entry.mismatch_count == 0 else "mismatch"
    return entry


def _trace_divergence(entries, tensors, diagnoser, seed, manual_by_id, rtol_atol):
    """Mark the first wrong gradient in backward order and explain the later wrong ones."""
    wrong = [entry for entry in entries if not entry.ok]
    if not wrong:
        return
    wrong[0].cause = "root cause"
    wrong[0].cause_note = "first divergence in backward order: the likely root cause"
    if len(wrong) == 1:
        return

    substitute = {key: value for key, value in manual_by_id.items()}
    local = variant_walk(diagnoser.root, seed, substitute=substitute)
    for position, entry in enumerate(wrong[1:], start=1):
        tensor = tensors[entry.key]
        upstream = [earlier for earlier in wrong[:position]
                    if id(tensor) in diagnoser.ancestors(tensors[earlier.key])]
        if not upstream:
            entry.cause = "independent"
            entry.cause_note = "an independent mistake: it reads no wrong manual gradient"
            continue
        source = upstream[-1].key
        recomputed = local.get(id(tensor))
        rtol, atol = rtol_atol[entry.key]
        if recomputed is not None and close(entry.manual, np.asarray(recomputed), rtol, atol):
            entry.cause = "inherited"
            entry.cause_note = (f"inherits the error of {source}: its own step is right "
                                f"(recomputing it from your {source} gives your value)")
        else:
            entry.cause = "downstream"
            entry.cause_note = (f"downstream of {source}; recomputing its own step from your "
                                f"{source} does not give your value either, so this step has a "
                                "mistake of its own")
            generic = all(diagnosis.kind == "wrong shape" for diagnosis in entry.diagnoses)
            if recomputed is not None and generic:
                # Its own mistake shows against the value that its rule gives from the
                # user's upstream gradients, not against the engine's.
                found = diagnoser.diagnose(tensor, entry.manual, np.asarray(recomputed), rtol, atol)
                specific = [d for d in found if d.kind != "wrong shape"]
                if specific:
                    entry.diagnoses = []
                for diagnosis in specific:
                    diagnosis.message += f" (compared with the value recomputed from your {source})"
                    entry.diagnoses.append(diagnosis)


def compare(y, manual, names=None, *, gradient=None, rtol=None, atol=None, numeric=True) -> Report:
    """Check hand-derived gradients of ``y`` against the engine and central differences.

    ``manual`` maps labels to gradients: ``"dW"`` or ``"W"`` for the gradient
    of the tensor labelled W, leaves and intermediate tensors alike. Labels
    come from tensor names and from ``names``, such as ``locals()``. An output
    with more than one element needs ``gradient``, dL/dy. ``rtol`` and
    ``atol`` override the dtype's defaults (``COMPARE_TOLERANCES``). With
    ``numeric`` every gradient is also compared with central differences, on
    a random sample of ``NUMERIC_MAX_ELEMENTS`` elements for larger tensors.

    >>> import numpy as np
    >>> import microad as ma
    >>> X = ma.Tensor([[1.0, -2.0]], name="X")
    >>> W = ma.Tensor([[0.5], [0.25]], requires_grad=True, name="W")
    >>> loss = (X @ W).sum()
    >>> report = compare(loss, {"dW": np.array([[1.0, -2.0]])})
    >>> report.ok, report["dW"].diagnoses[0].kind
    (False, 'transposed')
    """
    if not getattr(y, "requires_grad", False):
        raise MicroadError("compare: the output does not require grad, so the engine computes no "
                           "gradient; create the inputs with requires_grad=True")
    if not isinstance(manual, dict) or not manual:
        raise ManualGradientError("compare: manual must be a non-empty dict from labels to "
                                  "gradients, such as {'dW': dW}")
    seed = _seed(y, gradient)

    # Every tensor's gradient, in the order of the backward walk.
    engine, visit_order = {}, []

    def collect(tensor, value):
        engine[id(tensor)] = np.array(value, copy=True)
        visit_order.append(tensor)

    backprop.walk(y, seed, visit=collect)
    order = topological_order(y, grad_only=False)
    labels = label_tensors(order, names)
    by_label, repeated = {}, set()
    for tensor in order:
        label = labels[id(tensor)]
        if label in by_label:
            repeated.add(label)
        by_label.setdefault(label, tensor)
    available = ["d" + labels[id(t)] for t in visit_order]

    # Match the keys, then judge them in backward order.
    resolved = []
    for key, value in manual.items():
        tensor, label = _resolve(key, by_label, available, repeated)
        if id(tensor) not in engine:
            raise ManualGradientError(f"manual gradient {key!r}: {label} does not require grad, so "
                                      "the engine computes no gradient for it. Create it with "
                                      f"requires_grad=True; tensors with a gradient: {', '.join(available)}")
        resolved.append((key, label, tensor, _as_array(key, value)))
    position = {id(t): i for i, t in enumerate(visit_order)}
    resolved.sort(key=lambda item: position[id(item[2])])

    entries, tensors, manual_by_id, rtol_atol = [], {}, {}, {}
    diagnoser = Diagnoser(y, seed, order, labels, engine, manual_by_id)
    rng = np.random.default_rng(0)
    for key, label, tensor, value in resolved:
        expected = engine[id(tensor)]
        entry = _judge(key, label, tensor, value, expected, rtol, atol)
        tensors[key] = tensor
        rtol_atol[key] = (entry.rtol, entry.atol)
        if value.shape == tensor.shape:
            manual_by_id[id(tensor)] = value.astype(tensor.dtype)
        if numeric:
            entry.numeric = _numeric_check(y, tensor, seed, value, expected, entry.rtol, entry.atol, rng)
            _add_numeric_verdict(entry)
        if not entry.ok:
            entry.diagnoses = diagnoser.diagnose(tensor, value, expected, entry.rtol, entry.atol)
        entries.append(entry)

    _trace_divergence(entries, tensors, diagnoser, seed, manual_by_id, rtol_atol)
    _warn_kinks(entries)
    report = Report(labels[id(y)], entries)
    logger.debug("compare: %s", report.to_dict())
    return report


def _add_numeric_verdict(entry):
    check = entry.numeric
    if check.checked < check.total:
        skipped = check.total - check.checked
        entry.notes.append(f"central differences on {check.checked} of {check.total} elements "
                           f"({skipped} left out: sampled or at kinks)")
    if check.checked == 0:
        return
    if entry.verdict == "mismatch" and check.agrees_with_manual and not check.agrees_with_engine:
        entry.verdict = "engine suspect"
        entry.notes.append("central differences agree with your value and not with the engine: "
                           "the engine's derivative rule for an op on this path may be wrong")
    elif entry.ok and not check.agrees_with_engine:
        entry.notes.append("central differences disagree with both your value and the engine's: "
                           "your derivation and a derivative rule may share a mistake")


def _warn_kinks(entries):
    kinked = [(entry.key, index, kind) for entry in entries if entry.numeric
              for index, kind in entry.numeric.kinks]
    if kinked:
        shown = ", ".join(f"{key}{list(index)} ({kind})" for key, index, kind in kinked[:POSITIONS_SHOWN])
        warnings.warn(f"compare: {len(kinked)} element(s) left out of the central-difference check "
                      f"because the output is not differentiable there: {shown}", stacklevel=3)


# ---------------------------------------------------------------------------
# The `microad check` command
# ---------------------------------------------------------------------------

def load_manual_file(path) -> dict:
    """Read manual gradients from a ``.npy`` file (named by its stem) or a ``.npz`` file.

    Files are read with ``allow_pickle=False``, so a file that contains pickled
    objects raises :class:`ManualGradientError` instead of running code.
    """
    path = Path(path)
    if not path.is_file():
        raise ManualGradientError(f"manual gradient file {path} not found")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ManualGradientError(f"manual gradient file {path}: use a .npy file (the file name, "
                                  "such as dW.npy, is the gradient's name) or a .npz file")
    try:
        if suffix == ".npy":
            return {path.stem: np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        raise ManualGradientError(f"manual gradient file {path} cannot be read without unpickling "
                                  f"({exc}); save plain numeric arrays with np.save or np.savez") from exc
    except (OSError, EOFError) as exc:
        raise ManualGradientError(f"manual gradient file {path} is not a valid {suffix} file: "
                                  f"{exc}") from exc


def run_check(args) -> int:
    """Run ``microad check``: print the report and return 0 when every manual gradient agrees."""
    from .script import load_graph_file

    graph = load_graph_file(args.file, args.output_name)
    manual = dict(graph.manual or {})
    for path in args.manual:
        manual.update(load_manual_file(path))
    if not manual:
        raise ManualGradientError(f"{args.file}: no manual gradients to check; define manual = "
                                  "{'dW': dW, ...} in the file or pass --manual FILE.npz")
    report = compare(graph.output, manual, names=graph.namespace, gradient=graph.gradient)
    if args.json:
        print(report.to_json())
    else:
        print(report.to_text())
    return 0 if report.ok else 1
