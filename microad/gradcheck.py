"""Numerical gradient checking: the engine's gradients against central differences.

A central difference estimates dL/dx_i as (L(x + h e_i) - L(x - h e_i)) / 2h.
Its error has two parts: truncation, about h^2 |L'''| / 6, and rounding, about
eps_machine |L| / h. With h = 1e-6 in float64 they are about 2e-13 |L'''|
and 2e-10 |L|, so every numerical derivative here is computed in float64,
whatever the dtype of the graph. In float32 (eps_machine 1.2e-7) the rounding part would be 1e-1 |L|
at that step, and h = 1e-3 would still leave 1e-4 |L|. That is one reason why
gradients computed in float32 are judged with looser tolerances, and the
other is that the engine's own float32 result carries rounding of about
1e-7 per operation.

The numbers come from :class:`Replay`, which re-evaluates the recorded graph
downstream of chosen tensors by running each node's ``primitive.forward`` on
new input values. Replaying also shows where a perturbation crosses a kink of
maximum, minimum, relu, abs, clip, max or min. There the function has no
derivative, so those elements are listed and left out of the verdict.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import rules
from .backprop import grad as _engine_grad
from .errors import GradcheckError, MicroadError
from .graph import is_tensor, topological_order

logger = logging.getLogger(__name__)

# Primitives with kinks or ties, where a one-sided change of an input changes
# which branch of the forward is taken.
KINK_PRIMITIVES = frozenset({"maximum", "minimum", "absolute", "clip", "max", "min"})

# Default step and tolerances of gradcheck, keyed by the dtype of the checked
# inputs: (h, rtol, atol). The numerical side is always float64 with step h,
# so the tolerance mostly covers the engine's own rounding in that dtype.
GRADCHECK_TOLERANCES = {
    np.dtype(np.float64): (1e-6, 1e-5, 1e-7),
    np.dtype(np.float32): (1e-6, 1e-3, 1e-4),
    np.dtype(np.float16): (1e-6, 1e-1, 1e-2),
}

# How many of the worst elements an error message and a report show.
WORST_SHOWN = 5


# ---------------------------------------------------------------------------
# Replaying a recorded graph
# ---------------------------------------------------------------------------


def _as_dtype(array, dtype):
    array = np.asarray(array)
    if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
        return array.astype(dtype)
    return array


def _compare_signs(a, b):
    """Return +1, 0 or -1 per element for a > b, a == b, a < b (broadcast)."""
    return (np.greater(a, b).astype(np.int8) - np.less(a, b).astype(np.int8))


def _branches(primitive, args, params, out):
    """Return ``[(signature, ties)]``: which branch the forward took, and where it sits at a tie.

    Two runs took the same branches when their signatures are equal. ``ties``
    marks the elements where the input sits exactly at a kink.
    """
    name = primitive.name
    if name in ("maximum", "minimum"):
        sign = _compare_signs(args[0], args[1])
        return [(sign, sign == 0)]
    if name == "absolute":
        sign = _compare_signs(args[0], 0)
        return [(sign, sign == 0)]
    if name == "clip":
        low = _compare_signs(args[0], args[1])
        high = _compare_signs(args[0], args[2])
        return [(low, low == 0), (high, high == 0)]

    # max and min reductions: the argmax pattern, tied where two elements share the extremum.
    x = np.asarray(args[0])
    axis, keepdims = params.get("axis"), params.get("keepdims", False)
    extremum = np.asarray(out)
    if not keepdims and axis is not None:
        extremum = np.expand_dims(extremum, axis)
    hit = x == extremum
    count = hit.sum(axis=axis, keepdims=True)
    return [(hit.astype(np.int8), hit & (count > 1))]


@dataclass
class ReplayRun:
    """The output of one replay and the branches that its kink primitives took."""

    output: np.ndarray
    branches: dict


class Replay:
    """Re-evaluate the graph of ``output`` downstream of ``targets`` with new values for them.

    Only nodes that depend on a target run again, in topological order, by
    calling ``primitive.forward(*input_values, **node.params)``. Every other
    tensor keeps its recorded data. Float data is cast to ``dtype`` (float64
    by default, None keeps each tensor's dtype), and ``astype`` nodes cast to
    ``dtype`` too, so that a small perturbation is not rounded away.

    >>> import numpy as np
    >>> import microad as ma
    >>> x = ma.Tensor([1.0, -2.0], requires_grad=True)
    >>> y = (np.maximum(x, 0) * 3).sum()
    >>> Replay(y, [x]).run({id(x): np.array([2.0, 5.0])}).output
    array(21.)
    """

    def __init__(self, output, targets, dtype=np.float64):
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.output_id = id(output)
        self.targets = {id(t) for t in targets}
        self.base = {}
        self.steps = []

        downstream = set(self.targets)
        for tensor in topological_order(output, grad_only=False):
            key = id(tensor)
            self.base[key] = _as_dtype(tensor.data, self.dtype)
            node = tensor._node
            if key in self.targets or node is None:
                continue
            if any(is_tensor(x) and id(x) in downstream for x in node.inputs):
                downstream.add(key)
                self.steps.append(tensor)

    def run(self, replacements) -> ReplayRun:
        """Evaluate with ``replacements`` (``{id(target): array}``) and return the output."""
        values = dict(self.base)
        for key, value in replacements.items():
            values[key] = _as_dtype(value, self.dtype)
        branches = {}

        for tensor in self.steps:
            node = tensor._node
            primitive = node.primitive
            args = [values[id(x)] if is_tensor(x) else x for x in node.inputs]
            params = node.params
            if primitive is rules.astype and self.dtype is not None:
                params = {**params, "dtype": self.dtype}
            with np.errstate(all="ignore"):
                out = np.asarray(primitive.forward(*args, **params))
            values[id(tensor)] = out
            if primitive.name in KINK_PRIMITIVES:
                branches[id(tensor)] = _branches(primitive, args, params, out)

        return ReplayRun(values[self.output_id], branches)


def _kink_kind(base, plus, minus):
    """Classify one central difference: None, "at a kink" or "within h of a kink".

    ``base``, ``plus`` and ``minus`` are the branches at x, x + h and x - h.
    When a branch differs between x + h and x - h at an element that was tied
    at x, the point sits exactly at a kink. A difference elsewhere means that
    the step of size h crossed a kink near the point.
    """
    kind = None
    for key, base_parts in base.items():
        for (signature_base, ties), (signature_plus, _), (signature_minus, _) in zip(
                base_parts, plus.branches[key], minus.branches[key]):
            flipped = signature_plus != signature_minus
            if not flipped.any():
                continue
            if (flipped & np.broadcast_to(ties, flipped.shape)).any():
                return "at a kink"
            kind = "within h of a kink"
    return kind


class NumericalGradient:
    """Central differences of a scalar ``L = sum(projection * output)`` with respect to a tensor.

    ``target`` may be any tensor of the graph, an input or an intermediate
    one: perturbing an intermediate tensor replays only the part of the graph
    downstream of it, so the result is the total derivative of L with respect
    to that tensor's value.
    """

    def __init__(self, output, target, projection, h):
        self.replay = Replay(output, [target])
        self.key = id(target)
        self.x = self.replay.base.get(self.key, _as_dtype(target.data, np.float64))
        self.projection = np.asarray(projection, dtype=np.float64)
        self.h = h
        self.in_graph = self.key in self.replay.base
        base_run = self.replay.run({self.key: self.x})
        self.base_branches = {key: parts for key, parts in base_run.branches.items()}

    def _loss(self, x):
        run = self.replay.run({self.key: x})
        return float(np.sum(self.projection * run.output)), run

    def along(self, direction):
        """Return ``(dL/dx . direction, kink)`` with ``kink`` as in :func:`_kink_kind`."""
        if not self.in_graph:
            return 0.0, None
        step = self.h * np.asarray(direction, dtype=np.float64).reshape(self.x.shape)
        loss_plus, plus = self._loss(self.x + step)
        loss_minus, minus = self._loss(self.x - step)
        return (loss_plus - loss_minus) / (2 * self.h), _kink_kind(self.base_branches, plus, minus)

    def element(self, flat_index):
        """Return ``(dL/dx[i], kink)`` for the element at ``flat_index``."""
        direction = np.zeros(self.x.size)
        direction[flat_index] = 1.0
        return self.along(direction)


# ---------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------

@dataclass
class ElementError:
    """One checked element (or direction) where the engine and central differences are compared."""

    index: tuple
    engine: float
    numeric: float
    abs_error: float
    rel_error: float


@dataclass
class InputCheck:
    """The check of one input: errors, mismatches and the elements left out at kinks."""

    name: str
    shape: tuple
    checked: int
    max_abs_error: float
    max_rel_error: float
    mismatches: list = field(default_factory=list)
    worst: list = field(default_factory=list)
    kinks: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def _rel_error(engine, numeric):
    scale = max(abs(engine), abs(numeric))
    return 0.0 if scale == 0 else abs(engine - numeric) / scale


def _where(name, index, mode) -> str:
    if mode == "full":
        return f"{name}{list(index)}"
    return f"{name} direction {index[0]}"


def _describe_element(name, item, mode) -> str:
    return (f"{_where(name, item.index, mode)}: engine {item.engine:.10g}, numeric "
            f"{item.numeric:.10g}, abs error {item.abs_error:.3g}, rel error {item.rel_error:.3g}")


def _tolerance_note(dtype, h, rtol, atol) -> str:
    return (f"tolerances: rtol {rtol:g}, atol {atol:g} for {dtype}, central differences in "
            f"float64 with h = {h:g}. float32 needs looser tolerances than float64: its machine "
            "epsilon is 1.2e-7 against 2.2e-16, the engine's float32 gradient carries that "
            "rounding, and central differences in float32 would be worse still, because their "
            "rounding error grows like eps_machine / h (1.2e-7 / 1e-3 = 1.2e-4 relative to |L|)")


@dataclass
class GradcheckResult:
    """The outcome of :func:`gradcheck`: ``.ok``, one :class:`InputCheck` per input, and a report."""

    inputs: list
    mode: str
    dtype: np.dtype
    h: float
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.inputs)

    @property
    def report(self) -> str:
        return str(self)

    def __str__(self):
        unit = "elements" if self.mode == "full" else "directions"
        lines = [f"gradcheck ({self.mode} mode, {self.dtype}): "
                 f"{'passed' if self.ok else 'FAILED'}",
                 f"{'input':<12} {'shape':<12} {unit:>10} {'max abs err':>12} "
                 f"{'max rel err':>12} {'differ':>7} {'kinks':>6}"]
        for check in self.inputs:
            lines.append(f"{check.name:<12} {str(check.shape):<12} {check.checked:>10} "
                         f"{check.max_abs_error:>12.3g} {check.max_rel_error:>12.3g} "
                         f"{len(check.mismatches):>7} {len(check.kinks):>6}")
        for check in self.inputs:
            if check.mismatches:
                lines.append(f"{check.name}: worst {unit}:")
                for item in check.worst:
                    lines.append("  " + _describe_element(check.name, item, self.mode))
            if check.kinks:
                shown = ", ".join(f"{_where(check.name, index, self.mode)} ({kind})"
                                  for index, kind in check.kinks[:WORST_SHOWN])
                more = f" and {len(check.kinks) - WORST_SHOWN} more" if len(check.kinks) > WORST_SHOWN else ""
                lines.append(f"{check.name}: left out at non-differentiable points: {shown}{more}")
        lines.append(f"tolerances: rtol {self.rtol:g}, atol {self.atol:g} for {self.dtype}; "
                     f"central differences in float64 with h = {self.h:g}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def element(item):
            return {"index": list(item.index), "engine": item.engine, "numeric": item.numeric,
                    "abs_error": item.abs_error, "rel_error": item.rel_error}

        return {
            "ok": self.ok, "mode": self.mode, "dtype": str(self.dtype),
            "h": self.h, "rtol": self.rtol, "atol": self.atol,
            "inputs": [{"name": c.name, "shape": list(c.shape), "checked": c.checked,
                        "max_abs_error": c.max_abs_error, "max_rel_error": c.max_rel_error,
                        "mismatches": len(c.mismatches), "worst": [element(w) for w in c.worst],
                        "kinks": [{"index": list(i), "kind": k} for i, k in c.kinks]}
                       for c in self.inputs],
        }


def _prepare_inputs(inputs):
    """Return ``(names, arrays, as_keywords)`` from a sequence, a dict or a single array."""
    if isinstance(inputs, dict):
        names, values, as_keywords = list(inputs), list(inputs.values()), True
    elif isinstance(inputs, (list, tuple)):
        names, values, as_keywords = None, list(inputs), False
    else:
        names, values, as_keywords = None, [inputs], False

    arrays = []
    labels = []
    for position, value in enumerate(values):
        array = np.asarray(value.data if is_tensor(value) else value)
        if array.dtype.kind not in "biuf":
            label = names[position] if names else f"inputs[{position}]"
            raise MicroadError(f"gradcheck: input {label} has dtype {array.dtype}; pass real "
                               "arrays or Tensors, for example np.asarray(x, dtype=float)")
        if array.dtype.kind != "f":
            array = array.astype(np.float64)
        arrays.append(array)
        label = names[position] if names else (getattr(value, "name", None) or f"inputs[{position}]")
        labels.append(label)
    return labels, arrays, as_keywords


def _call(f, tensors, labels, as_keywords):
    from .tensor import Tensor

    if as_keywords:
        result = f(**dict(zip(labels, tensors)))
    else:
        result = f(*tensors)
    if not isinstance(result, Tensor):
        raise MicroadError(f"gradcheck: f returned a {type(result).__name__}, not a microad "
                           "Tensor; build the result from the Tensors that f receives")
    return result


def _resolve_tolerances(dtype, eps, rtol, atol):
    default_h, default_rtol, default_atol = GRADCHECK_TOLERANCES.get(
        np.dtype(dtype), GRADCHECK_TOLERANCES[np.dtype(np.float64)])
    return (default_h if eps is None else eps,
            default_rtol if rtol is None else rtol,
            default_atol if atol is None else atol)


def _random_unit(rng, shape):
    direction = rng.standard_normal(shape)
    norm = np.linalg.norm(direction)
    return direction / norm if norm > 0 else direction


def _check_input(name, engine_grad, numerical, mode, directions, rng, rtol, atol):
    """Compare one input's engine gradient with central differences."""
    engine_grad = np.asarray(engine_grad, dtype=np.float64)
    shape = engine_grad.shape
    compared = []
    kinks = []

    if mode == "full":
        for flat_index in range(engine_grad.size):
            index = np.unravel_index(flat_index, shape) if shape else ()
            numeric, kink = numerical.element(flat_index)
            if kink is not None:
                kinks.append((tuple(int(i) for i in index), kink))
                continue
            compared.append((tuple(int(i) for i in index), float(engine_grad.flat[flat_index]), numeric))
    else:
        for number in range(directions):
            direction = _random_unit(rng, shape)
            numeric, kink = numerical.along(direction)
            if kink is not None:
                kinks.append(((number,), kink))
                continue
            compared.append(((number,), float(np.sum(engine_grad * direction)), numeric))

    errors = [ElementError(index, engine, numeric, abs(engine - numeric), _rel_error(engine, numeric))
              for index, engine, numeric in compared]
    mismatches = [e for e in errors if not e.abs_error <= atol + rtol * abs(e.numeric)]
    worst = sorted(mismatches, key=lambda e: e.abs_error - atol - rtol * abs(e.numeric), reverse=True)
    return InputCheck(
        name=name, shape=shape, checked=len(errors),
        max_abs_error=max((e.abs_error for e in errors), default=0.0),
        max_rel_error=max((e.rel_error for e in errors), default=0.0),
        mismatches=mismatches, worst=worst[:WORST_SHOWN], kinks=kinks)


def _failure_message(result) -> str:
    lines = ["gradcheck failed: the engine's gradient differs from central differences"]
    for check in result.inputs:
        if check.ok:
            continue
        unit = "elements" if result.mode == "full" else "random directions"
        lines.append(f"input {check.name} {check.shape}: {len(check.mismatches)} of "
                     f"{check.checked} {unit} differ; worst:")
        for item in check.worst:
            lines.append("  " + _describe_element(check.name, item, result.mode))
    lines.append(_tolerance_note(result.dtype, result.h, result.rtol, result.atol))
    lines.append("If the function itself is right, check the derivative rule of each op it uses; "
                 "if the errors are small, pass looser rtol or atol")
    return "\n".join(lines)


def gradcheck(f, inputs, eps=None, atol=None, rtol=None, *, mode="full", directions=3, seed=0,
              raise_on_failure=False) -> GradcheckResult:
    """Compare the engine's gradients of ``f`` with central differences in float64.

    ``f`` takes Tensors (positionally, or as keywords when ``inputs`` is a
    dict) and returns a Tensor. An output with more than one element is
    reduced to ``L = sum(P * f(...))`` with a fixed random projection ``P``
    drawn from ``seed``. ``mode="full"`` checks every element of every input;
    ``mode="random"`` compares directional derivatives ``v . grad`` along
    ``directions`` random unit vectors per input, for large inputs.
    ``eps`` is the step h. Defaults of ``eps``, ``rtol`` and ``atol`` depend
    on the inputs' dtype (``GRADCHECK_TOLERANCES``). An element is a mismatch
    when ``|engine - numeric| > atol + rtol * |numeric|``.

    Elements (or directions) whose perturbation crosses a kink of maximum,
    minimum, relu, abs, clip, max or min are left out of the verdict, listed
    in the result and reported with ``warnings.warn``. With
    ``raise_on_failure=True`` a failure raises :class:`GradcheckError`.

    NOTE: the numerical side replays the graph that ``f`` recorded at the
    given inputs, so Python control flow in ``f`` that depends on input
    values is taken as fixed.

    >>> import numpy as np
    >>> result = gradcheck(lambda x: (np.tanh(x) * x).sum(), [np.array([0.5, -1.0])])
    >>> result.ok
    True
    """
    from .tensor import Tensor

    if mode not in ("full", "random"):
        raise MicroadError(f"gradcheck: mode {mode!r} is invalid; use 'full' (every element) "
                           "or 'random' (directional derivatives)")
    if mode == "random" and (not isinstance(directions, (int, np.integer)) or directions < 1):
        raise MicroadError(f"gradcheck: directions={directions!r}; pass a positive number of "
                           "random directions per input")
    labels, arrays, as_keywords = _prepare_inputs(inputs)
    if not arrays:
        raise MicroadError("gradcheck: no inputs given; pass a list of arrays or Tensors")
    dtype = np.result_type(*arrays)
    h, rtol, atol = _resolve_tolerances(dtype, eps, rtol, atol)

    # The engine's gradients, in the inputs' own dtype.
    tensors = [Tensor(array.copy(), requires_grad=True, name=label) for array, label in zip(arrays, labels)]
    output = _call(f, tensors, labels, as_keywords)
    rng = np.random.default_rng(seed)
    projection = np.ones(output.shape) if output.size == 1 else rng.standard_normal(output.shape)
    if output.requires_grad:
        engine = _engine_grad(output, tensors, None if output.size == 1 else projection.astype(output.dtype))
    else:
        engine = [np.zeros(t.shape) for t in tensors]

    # The same function recorded in float64 for the central differences.
    tensors64 = [Tensor(array.astype(np.float64), requires_grad=True, name=label)
                 for array, label in zip(arrays, labels)]
    output64 = _call(f, tensors64, labels, as_keywords)

    checks = []
    for label, tensor64, engine_grad in zip(labels, tensors64, engine):
        numerical = NumericalGradient(output64, tensor64, projection, h)
        checks.append(_check_input(label, engine_grad, numerical, mode, directions, rng, rtol, atol))
    result = GradcheckResult(checks, mode, np.dtype(dtype), h, rtol, atol)

    kinked = [(check.name, index, kind) for check in checks for index, kind in check.kinks]
    if kinked:
        unit = "element" if mode == "full" else "direction"
        shown = ", ".join(f"{_where(name, index, mode)} ({kind})"
                          for name, index, kind in kinked[:WORST_SHOWN])
        warnings.warn(f"gradcheck: {len(kinked)} {unit}(s) left out of the verdict because the "
                      f"function is not differentiable there: {shown}. Move the inputs away "
                      "from ties and kinks to check these too", stacklevel=2)
    logger.debug("gradcheck: %s", result.to_dict())
    if raise_on_failure and not result.ok:
        raise GradcheckError(_failure_message(result))
    return result
