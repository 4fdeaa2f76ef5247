"""Diagnoses for the referee: the likely mistake behind a wrong manual gradient.

:class:`Diagnoser` compares a manual gradient with the engine's and tests one
hypothesis per check. The hypotheses are: ReLU mask missing or on the wrong
tensor, rows and columns swapped, a missing sum over a broadcast axis, extra
axes of size 1, transposed, product operands in the wrong order, sign
flipped, scaled by a constant, another variable's gradient, or a wrong shape. Each check rebuilds
the faulty gradient that its mistake would give and reports it only when that
matches the manual value. :mod:`microad.compare` runs the checks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import backprop
from .graph import is_tensor, topological_order

# How many differing positions a report lists.
POSITIONS_SHOWN = 5


@dataclass
class Diagnosis:
    """A likely mistake behind a mismatch, with the evidence that points to it."""

    kind: str
    message: str


# ---------------------------------------------------------------------------
# Backward walks
# ---------------------------------------------------------------------------


def _relu_operand(tensor):
    """Return the argnum of the gradient-carrying operand when ``tensor`` is a ReLU-like node.

    A ReLU-like node is maximum or minimum of one tensor that requires grad
    and one constant, such as ``np.maximum(logits, 0)``.
    """
    node = tensor._node
    if node is None or node.primitive.name not in ("maximum", "minimum"):
        return None
    flags = [getattr(x, "requires_grad", False) for x in node.inputs]
    if flags.count(True) != 1:
        return None
    return flags.index(True)


def variant_walk(root, seed, *, unmasked=None, substitute=None):
    """Run the backward walk with a change and return ``{id(tensor): gradient}``.

    ``unmasked`` is a ReLU-like tensor whose rule passes the upstream gradient
    through with no mask, which is what a derivation that forgot the mask
    computes. ``substitute`` maps ids to gradients that replace the computed
    ones before they flow further. The returned value of a substituted tensor
    is the one computed before the substitution: what its own rule gives from
    the substituted upstream gradients.
    """
    order = topological_order(root)
    grads = {id(root): seed}
    reached = {}

    for tensor in reversed(order):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        reached[id(tensor)] = g
        if substitute is not None and id(tensor) in substitute:
            g = substitute[id(tensor)]
        node = tensor._node
        if node is None:
            continue

        primitive = node.primitive
        args = [x.data if is_tensor(x) else x for x in node.inputs]
        for argnum, operand in enumerate(node.inputs):
            if not getattr(operand, "requires_grad", False):
                continue
            if tensor is unmasked:
                grad = g
            elif primitive.variadic:
                grad = primitive.vjps[0](g, tensor.data, *args, argnum=argnum, **node.params)
            else:
                rule = primitive.vjps[argnum]
                if rule is None:
                    continue
                grad = rule(g, tensor.data, *args, **node.params)
            grad = backprop._fit(np.asarray(grad), operand, primitive, argnum)
            key = id(operand)
            grads[key] = grad if key not in grads else grads[key] + grad
    return reached


# ---------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------

def close(a, b, rtol, atol) -> bool:
    if a is None or b is None or np.shape(a) != np.shape(b):
        return False
    return bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _is_zero(a, atol) -> bool:
    return bool(np.all(np.abs(a) <= atol))


def _matching_line(matrix, vector, rtol, atol):
    """Return the index of the last row of ``matrix`` close to ``vector``, or None."""
    if matrix.shape[1:] != vector.shape:
        return None
    matches = np.flatnonzero(np.isclose(vector, matrix, rtol=rtol, atol=atol).all(axis=1))
    return int(matches[-1]) if matches.size else None


def _index_text(index, size) -> str:
    return "-1" if index == size - 1 and size > 1 else str(index)


def _list_positions(mask) -> str:
    positions = [list(int(i) for i in p) for p in np.argwhere(mask)[:POSITIONS_SHOWN]]
    more = " ..." if int(mask.sum()) > POSITIONS_SHOWN else ""
    return ", ".join(str(p) for p in positions) + more


class Diagnoser:
    """The graph facts that the diagnoses need, computed once per compare() call."""

    def __init__(self, root, seed, order, labels, engine, manual):
        self.root = root
        self.seed = seed
        self.order = order
        self.labels = labels
        self.engine = engine
        self.manual = manual
        self._unmasked = {}
        self._ancestors = {}

    def label(self, tensor) -> str:
        return self.labels[id(tensor)]

    def unmasked(self, relu):
        if id(relu) not in self._unmasked:
            self._unmasked[id(relu)] = variant_walk(self.root, self.seed, unmasked=relu)
        return self._unmasked[id(relu)]

    def ancestors(self, tensor) -> set:
        if id(tensor) not in self._ancestors:
            self._ancestors[id(tensor)] = {id(t) for t in topological_order(tensor)}
        return self._ancestors[id(tensor)]

    def diagnose(self, tensor, manual, expected, rtol, atol) -> list:
        checks = [self._relu_mask, self._rows_and_columns, self._missing_sum, self._transposed,
                  self._product_order, self._sign, self._scale, self._other_variable]
        found = []
        for check in checks:
            found.extend(check(tensor, manual, expected, rtol, atol))
        if not found and manual.shape != expected.shape:
            message = (f"your value has shape {manual.shape}, but {self.label(tensor)} has shape "
                       f"{expected.shape}, and the gradient of a tensor always has the tensor's "
                       "shape. Check which axes your formula sums over and the order of the "
                       "operands of each product")
            found.append(Diagnosis("wrong shape", message))
        return found

    # Each check returns a list of Diagnosis, empty when it does not apply.

    def _relu_mask(self, tensor, manual, expected, rtol, atol):
        found = []
        for relu in self.order:
            argnum = _relu_operand(relu)
            if argnum is None or id(tensor) not in self.ancestors(relu):
                continue
            unmasked = self.unmasked(relu).get(id(tensor))
            if unmasked is None or close(unmasked, expected, rtol, atol):
                continue
            z = relu._node.inputs[argnum]
            op = relu._node.primitive.name
            keep = (z.data > 0) if op == "maximum" else (z.data < 0)
            mask_text = f"({self.label(z)} {'>' if op == 'maximum' else '<'} 0)"
            relu_text = f"{self.label(relu)} = {op}({self.label(z)}, ...)"

            if close(manual, unmasked, rtol, atol):
                differ = ~np.isclose(manual, expected, rtol=rtol, atol=atol)
                message = (f"your value equals the gradient with the mask {mask_text} of "
                           f"{relu_text} left out. The mask is 0 at {_list_positions(~keep)} "
                           f"of {self.label(z)}, and your value differs at "
                           f"{_list_positions(differ)}")
                if manual.shape == z.shape:
                    inside = bool(np.all(~keep[differ]))
                    message += (" (only where the mask is 0)" if inside else "")
                found.append(Diagnosis("ReLU mask missing", message))
                continue

            if manual.shape != unmasked.shape:
                continue
            kept = ~np.isclose(manual, 0, atol=atol)
            dropped = ~kept & ~np.isclose(unmasked, 0, atol=atol)
            if not dropped.any() or not close(manual[kept], unmasked[kept], rtol, atol):
                continue
            message = (f"your value is the gradient without the mask of {relu_text}, times a "
                       f"0/1 mask that is not {mask_text}: it is 0 at {_list_positions(dropped)}")
            source = self._mask_source(manual.shape, kept, ~np.isclose(unmasked, 0, atol=atol), z)
            if source:
                message += f"; that mask matches ({source} > 0)"
            found.append(Diagnosis("ReLU mask applied to the wrong tensor", message))
        return found

    def _mask_source(self, shape, kept, informative, right):
        """Name a tensor whose (data > 0) pattern is the mask the user applied."""
        for candidate in self.order:
            if candidate is right or candidate.shape != shape or candidate.data.dtype.kind != "f":
                continue
            pattern = candidate.data > 0
            if np.array_equal(pattern[informative], kept[informative]):
                return self.label(candidate)
        return None

    def _rows_and_columns(self, tensor, manual, expected, rtol, atol):
        if manual.ndim != 1 or expected.ndim != 1:
            return []
        # The row may come from the engine's gradient or from the user's own one.
        matrices = [(source, self.engine.get(id(source)), "") for source in self.order]
        matrices += [(source, self.manual.get(id(source)), "your ") for source in self.order]
        for source, matrix, owner in matrices:
            if matrix is None or matrix.ndim != 2:
                continue
            rows, columns = matrix.shape
            name = owner + "d" + self.label(source)
            right_row = _matching_line(matrix, expected, rtol, atol)
            manual_column = _matching_line(matrix.T, manual, rtol, atol)
            if right_row is not None and manual_column is not None:
                i, j = _index_text(right_row, rows), _index_text(manual_column, columns)
                message = (f"your value is column {j} of {name} ({name}[:, {j}]), but the "
                           f"gradient of {self.label(tensor)} is its row {i} ({name}[{i}, :])")
                return [Diagnosis("rows and columns swapped", message)]
            right_column = _matching_line(matrix.T, expected, rtol, atol)
            manual_row = _matching_line(matrix, manual, rtol, atol)
            if right_column is not None and manual_row is not None:
                i, j = _index_text(manual_row, rows), _index_text(right_column, columns)
                message = (f"your value is row {i} of {name} ({name}[{i}, :]), but the "
                           f"gradient of {self.label(tensor)} is its column {j} ({name}[:, {j}])")
                return [Diagnosis("rows and columns swapped", message)]
        return []

    def _missing_sum(self, tensor, manual, expected, rtol, atol):
        if manual.shape == expected.shape or manual.ndim == 0:
            return []
        for count in range(1, manual.ndim + 1):
            for axes in itertools.combinations(range(manual.ndim), count):
                for keepdims in (False, True):
                    summed = manual.sum(axis=axes, keepdims=keepdims)
                    if summed.shape == expected.shape and close(summed, expected, rtol, atol):
                        axis_text = axes[0] if count == 1 else axes
                        label = self.label(tensor)
                        if all(manual.shape[axis] == 1 for axis in axes):
                            message = (f"your value has the expected numbers but extra axes of "
                                       f"size 1 ({manual.shape} -> {expected.shape}); "
                                       f"np.squeeze(..., axis={axis_text}) or "
                                       f".reshape({expected.shape}) gives the gradient of {label}")
                            return [Diagnosis("extra axes of size 1", message)]
                        message = (f"summing your value over axis {axis_text} gives the expected "
                                   f"gradient ({manual.shape} -> {expected.shape}): {label} was "
                                   f"broadcast along that axis in the forward pass, so d{label} "
                                   f"adds up the contributions, as in d{label}.sum(axis={axis_text}"
                                   f"{', keepdims=True' if keepdims else ''})")
                        return [Diagnosis("missing sum over a broadcast axis", message)]
        return []

    def _transposed(self, tensor, manual, expected, rtol, atol):
        if manual.ndim < 2:
            return []
        flipped = np.swapaxes(manual, -1, -2)
        if close(flipped, expected, rtol, atol):
            message = (f"the transpose of your value equals the expected gradient (manual "
                       f"{manual.shape}, engine {expected.shape})")
            return [Diagnosis("transposed", message)]
        return []

    def _product_order(self, tensor, manual, expected, rtol, atol):
        for product in self.order:
            node = product._node
            if node is None or node.primitive.name != "matmul" or product.ndim != 2:
                continue
            a, b = node.inputs
            if tensor is not a and tensor is not b:
                continue
            if not (is_tensor(a) and is_tensor(b)) or a.ndim != 2 or b.ndim != 2:
                continue
            upstream = self.engine.get(id(product))
            if upstream is None:
                continue
            other = b if tensor is a else a
            g_name = "d" + self.label(product)
            o_name = self.label(other)
            if tensor is a:
                right = f"{g_name} @ {o_name}.T"
            else:
                right = f"{o_name}.T @ {g_name}"

            factors = {g_name: upstream, f"{g_name}.T": upstream.T,
                       o_name: other.data, f"{o_name}.T": other.data.T}
            for (left_name, left), (right_name, right_value) in itertools.permutations(factors.items(), 2):
                if left_name.startswith(g_name) == right_name.startswith(g_name):
                    continue
                if left.shape[1] != right_value.shape[0]:
                    continue
                value = left @ right_value
                for text, candidate in ((f"{left_name} @ {right_name}", value),
                                        (f"({left_name} @ {right_name}).T", value.T)):
                    if close(candidate, expected, rtol, atol):
                        continue
                    if close(candidate.T, expected, rtol, atol):
                        continue
                    if close(manual, candidate, rtol, atol):
                        message = (f"your value equals {text}; for {self.label(product)} = "
                                   f"{self.label(a)} @ {self.label(b)} the gradient of "
                                   f"{self.label(tensor)} is {right}")
                        return [Diagnosis("operands of a product in the wrong order", message)]
        return []

    def _sign(self, tensor, manual, expected, rtol, atol):
        if _is_zero(expected, atol) or not close(-manual, expected, rtol, atol):
            return []
        return [Diagnosis("sign flipped", "your value is the negative of the expected gradient")]

    def _scale(self, tensor, manual, expected, rtol, atol):
        if manual.shape != expected.shape or _is_zero(expected, atol) or _is_zero(manual, atol):
            return []
        factor = float(np.sum(manual * expected) / np.sum(expected * expected))
        if abs(abs(factor) - 1) < 1e-6 or not close(manual, factor * expected, rtol, atol):
            return []
        message = f"your value is the expected gradient times {factor:.6g}"
        size = abs(factor)
        if size > 1 and abs(size - round(size)) < 1e-6 * size:
            k = int(round(size))
            message += f": a division by {k} is missing{self._dimension_text(k)}"
        elif size < 1 and abs(1 / size - round(1 / size)) < 1e-6 / size:
            k = int(round(1 / size))
            message += f" = 1/{k}: an extra division by {k}{self._dimension_text(k)}"
        if factor < 0:
            message += ", and the sign is flipped"
        return [Diagnosis("scaled by a constant", message)]

    def _dimension_text(self, k) -> str:
        for tensor in self.order:
            for axis, size in enumerate(tensor.shape):
                if size == k:
                    return (f" ({k} is the size of axis {axis} of {self.label(tensor)}, "
                            f"such as a 1/N for a batch of N)")
        return ""

    def _other_variable(self, tensor, manual, expected, rtol, atol):
        names = []
        for other in self.order:
            if other is tensor:
                continue
            value = self.engine.get(id(other))
            if value is None or close(value, expected, rtol, atol):
                continue
            # Only a full array of the same shape is evidence: a scalar such as 1.0
            # would match every scalar seed.
            if value.shape != manual.shape or manual.size < 2:
                continue
            if close(manual, value, rtol, atol):
                names.append("d" + self.label(other))
        if not names:
            return []
        message = f"your value equals the engine's gradient of another tensor: {', '.join(names)}"
        return [Diagnosis("gradient of another variable", message)]
