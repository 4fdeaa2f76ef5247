"""The backward walk: apply the derivative table's rules in reverse topological order.

This is the only place that un-broadcasts a rule's result, checks its shape
and dtype against the input, and accumulates gradients of a tensor used
more than once. Rules stay free of that bookkeeping.

Repeated calls: each ``backward()`` computes every gradient afresh, so no
gradient from an earlier call flows into a later one. Leaf gradients then
add up across calls, which is how gradients of several losses or mini-batches
accumulate; clear them with ``zero_grad()``. An intermediate tensor's
``.grad`` contains the gradient of the latest call only. A second call from the
same output while its leaves still hold gradients emits a warning, because
that usually doubles them by mistake.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from . import rules
from .errors import (AnomalyError, BackwardError, DTypeError, MicroadError, MutationError,
                     ShapeError)
from .graph import is_tensor, topological_order
from .mode import enable_grad, grad_mode, modification_clock

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))



def _label(tensor) -> str:
    return tensor.name or "the output"


def _seed(root, gradient, caller="backward()"):
    """Return the starting gradient dL/d(root), checked against the root's shape."""
    if gradient is None:
        if root.size != 1:
            raise BackwardError(
                f"backward() on {_label(root)} of shape {root.shape} needs a gradient: only an "
                "output with one element is seeded with 1. Pass the upstream gradient, "
                f"y.backward(dY) with dY of shape {root.shape}, or reduce first: y.sum().backward()")
        if root.shape == ():
            return np.array(1, dtype=root.dtype)  # a scalar loss: 6x faster than np.ones
        return np.ones(root.shape, dtype=root.dtype)

    seed = gradient.data if is_tensor(gradient) else gradient
    seed = np.asarray(seed)
    if seed.dtype.kind not in "biuf":
        raise DTypeError(f"{caller}: the gradient for {_label(root)} has dtype {seed.dtype}; "
                         f"pass a real array of dtype {root.dtype}")
    if seed.shape != root.shape:
        raise ShapeError(f"{caller}: the gradient for {_label(root)} has shape {seed.shape}, "
                         f"but {_label(root)} has shape {root.shape}; pass a gradient of "
                         "exactly the output's shape")
    return seed.astype(root.dtype, copy=True)


def _check_root(root):
    if not getattr(root, "requires_grad", False):
        raise BackwardError(
            f"backward() on {_label(root)} of shape {root.shape}: it does not require grad, so no "
            "gradient can flow from it. Create the inputs with requires_grad=True, for example "
            "Tensor(W, requires_grad=True), and build the output outside no_grad()")


def _fit(grad, operand, primitive, argnum):
    """Un-broadcast a rule's result to the operand's shape and dtype."""
    if type(grad) is not np.ndarray and not is_tensor(grad):
        grad = np.asarray(grad)  # NumPy returns scalars, not 0-d arrays, from 0-d math
    shape = operand.shape
    if grad.shape != shape:
        grad = rules.unbroadcast_to(grad, shape=shape)
        if grad.shape != shape:
            raise MicroadError(f"the rule of {primitive.name} for input {argnum} returned shape "
                               f"{grad.shape}, which does not reduce to the input shape {shape}. "
                               "This is a bug in that rule")
    if grad.dtype != operand.dtype:
        grad = grad.astype(operand.dtype)
    return grad


def _check_versions(tensor, node):
    """Raise if an input or the result of ``node`` was modified after the op ran."""
    for argnum, operand in enumerate(node.inputs):
        if is_tensor(operand) and operand._version > node.epoch:
            raise MutationError(
                f"{operand.name or f'input {argnum}'} {operand.shape} of "
                f"{node.primitive.name} was modified in place after {node.primitive.name} "
                "saved it for backward, so its gradient would be wrong. Run the forward "
                "pass again after changing it, or change a copy")
    if tensor._version > node.epoch:
        raise MutationError(
            f"the result {tensor.name or ''} {tensor.shape} of {node.primitive.name} was "
            "modified in place after it was computed, so the gradients through it would be "
            "wrong. Run the forward pass again, or change a copy")


def _statistics(value) -> str:
    data = np.asarray(value.data if is_tensor(value) else value, dtype=np.float64)
    if data.size == 0:
        return "empty"
    finite = data[np.isfinite(data)]
    parts = [f"shape {data.shape}"]
    if finite.size:
        parts.append(f"min {finite.min():.4g}, max {finite.max():.4g}, mean {finite.mean():.4g}")
    parts.append(f"{int(np.isnan(data).sum())} NaN, {int(np.isinf(data).sum())} inf")
    return ", ".join(parts)


def _check_finite(grad, node, argnum, args):
    """Under detect_anomaly(): raise if a backward step produced NaN or inf."""
    values = np.asarray(grad.data if is_tensor(grad) else grad)
    if np.isfinite(values).all():
        return
    kind = "NaN" if np.isnan(values).any() else "inf"
    where = "an op created outside detect_anomaly()"
    if node.trace:
        # The innermost frame outside microad is the user's line.
        user_frames = [f for f in node.trace if not f.filename.startswith(_PACKAGE_DIR)]
        frame = (user_frames or node.trace)[-1]
        where = f"{frame.filename}:{frame.lineno} ({frame.line})"
    operands = "; ".join(f"input {i}: {_statistics(x)}" for i, x in enumerate(args))
    raise AnomalyError(f"backward of {node.primitive.name} produced {kind} in the gradient of "
                       f"its input {argnum} ({_statistics(values)}). The forward was called at "
                       f"{where}. Operands: {operands}")


def walk(root, seed, *, create_graph=False, visit=None):
    """Propagate ``seed`` from ``root`` back through the graph.

    Calls ``visit(tensor, grad)`` once per tensor, in backward order, with its
    total gradient. With ``create_graph`` the rules run on Tensors, so the
    gradients are Tensors that can be differentiated again.
    """
    order = topological_order(root)
    anomaly = grad_mode.detect_anomaly
    clock = modification_clock
    grads = {id(root): seed}
    pop_grad = grads.pop
    owned = set()  # ids whose gradient buffer this walk allocated, safe to add into

    for tensor in reversed(order):
        g = pop_grad(id(tensor), None)
        if g is None:
            continue
        if visit is not None:
            visit(tensor, g)
        node = tensor._node
        if node is None:
            continue

        primitive = node.primitive
        inputs = node.inputs
        params = node.params
        if node.epoch != clock.latest:
            _check_versions(tensor, node)  # some tensor changed since: was it one of these?
        if create_graph:
            out, args = tensor, inputs
        else:
            out, args = tensor._data, node.datas

        vjps = primitive.vjps
        variadic = primitive.variadic
        for argnum, operand in node.parents:
            if variadic:
                grad = vjps[0](g, out, *args, argnum=argnum, **params)
            else:
                rule = vjps[argnum]
                if rule is None:
                    continue  # a mask or an index: piecewise constant, no gradient flows
                grad = rule(g, out, *args, **params) if params else rule(g, out, *args)
            # An ndarray of the operand's shape and dtype, the usual result, needs no fitting.
            data = operand._data
            if type(grad) is not np.ndarray or grad.shape != data.shape or grad.dtype != data.dtype:
                grad = _fit(grad, operand, primitive, argnum)
            if anomaly:
                _check_finite(grad, node, argnum, args)

            key = id(operand)
            previous = grads.get(key)
            if previous is None:
                grads[key] = grad
            elif key in owned and not create_graph:
                previous += grad
            else:
                total = previous + grad
                if not create_graph and type(total) is not np.ndarray:
                    total = np.asarray(total)  # 0-d sums come back as NumPy scalars
                grads[key] = total
                owned.add(key)


def backward(root, gradient=None, *, create_graph=False, keep_intermediate_grads=True,
             retain_graph=True):
    """Store in ``.grad`` the gradient of ``root`` with respect to every tensor it depends on.

    A one-element ``root`` is seeded with 1; any other needs ``gradient``, an
    array of its shape (dL/d(root)). Leaves that require grad add the result
    to their ``.grad``. Intermediate tensors keep this call's gradient in
    ``.grad``, unless ``keep_intermediate_grads`` is False, which saves memory
    in training loops.

    The graph stays whole by default, so that it can be drawn, checked,
    explained or differentiated again. ``retain_graph=False`` releases what
    each node saved for backward as soon as the walk is done: intermediate
    tensors that nothing else references are freed, and any later use of the
    graph raises :class:`BackwardError`.

    >>> import microad as ma
    >>> x = ma.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([ 2., -4.,  6.])
    """
    _check_root(root)
    seed = _seed(root, gradient)
    node = root._node
    if node is not None:
        if node.inputs is None:
            topological_order(root)  # raises: released by backward(retain_graph=False)
        # Node.backward_done starts unset, so recording an op pays nothing for it.
        if getattr(node, "backward_done", False):
            warnings.warn(
                f"backward() was already called from {_label(root)}: leaf gradients now add "
                "up across both calls. Call zero_grad() on the leaves first if that is not "
                "intended", stacklevel=3)
        node.backward_done = True

    stored = set()
    walked = []  # nodes to release when retain_graph is False

    def store(tensor, grad):
        if tensor._node is not None:
            if not retain_graph:
                walked.append(tensor._node)
            if not keep_intermediate_grads:
                return
            if not create_graph:
                if type(grad) is not np.ndarray:
                    grad = np.asarray(grad)
                # An intermediate's gradient may share memory with its neighbours'
                # (add passes g through unchanged), so it is read-only, not copied.
                # A leaf that later receives the same array copies it, because of the flag.
                grad.setflags(write=False)
            tensor.grad = grad
            return

        if not create_graph:
            if type(grad) is not np.ndarray:
                grad = np.asarray(grad)
            # A leaf's gradient is its own writable array, so that updating it in
            # place (as optimizers may) never changes another gradient.
            if grad.base is not None or id(grad) in stored or not grad.flags.writeable:
                grad = grad.copy()
            stored.add(id(grad))
        if tensor.grad is not None:
            tensor.grad = tensor.grad + grad
        else:
            tensor.grad = grad

    if create_graph:
        with enable_grad():
            walk(root, type(root)(seed), create_graph=True, visit=store)
    else:
        walk(root, seed, visit=store)

    for walked_node in walked:
        # The primitive stays, so diagrams and errors can still name the op.
        walked_node.inputs = walked_node.datas = walked_node.parents = None


def grad(output, inputs, gradient=None, *, create_graph=False):
    """Return the gradients of ``output`` with respect to ``inputs``, without touching ``.grad``.

    With ``create_graph=True`` the gradients are Tensors in a new graph, so
    they can be differentiated again (higher-order derivatives).

    >>> import microad as ma
    >>> x = ma.Tensor(3.0, requires_grad=True)
    >>> (dx,) = ma.grad(x ** 3, [x], create_graph=True)
    >>> float(dx), float(ma.grad(dx, [x])[0])
    (27.0, 18.0)
    """
    _check_root(output)
    seed = _seed(output, gradient)
    requested = {id(x): i for i, x in enumerate(inputs)}
    results = [None] * len(inputs)

    def collect(tensor, value):
        index = requested.get(id(tensor))
        if index is not None:
            results[index] = value if create_graph else np.asarray(value)

    if create_graph:
        with enable_grad():
            walk(output, type(output)(seed), create_graph=True, visit=collect)
    else:
        walk(output, seed, visit=collect)

    for index, x in enumerate(inputs):
        if results[index] is None:
            zeros = np.zeros(x.shape, dtype=x.dtype)
            results[index] = type(x)(zeros) if create_graph else zeros
    return results
