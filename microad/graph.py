"""Graph walks shared by backward, the diagrams, the referee and the explainer.

Every walk is iterative, so a chain of 100,000 ops needs no recursion. The
functions read tensors through their attributes (``_node``, ``requires_grad``)
and never import the Tensor class.
"""

from __future__ import annotations

from .errors import BackwardError


def is_tensor(value) -> bool:
    """Tell whether ``value`` is a microad Tensor, without importing the Tensor class."""
    return getattr(type(value), "_is_microad_tensor", False)


def topological_order(root, *, grad_only=True):
    """Return the tensors that ``root`` depends on, each after all of its inputs.

    With ``grad_only`` the walk keeps to tensors that require grad, which is
    what backward needs; without it, constants and masks are included too.
    ``root`` is last.
    """
    order = []
    visited = set()
    stack = [(root, False)]
    push = stack.append
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        key = id(tensor)
        if key in visited:
            continue
        # Mark on expansion, not on push: a tensor pushed twice is expanded
        # once, and only after everything below it, so inputs come first.
        visited.add(key)
        push((tensor, True))
        node = tensor._node
        if node is None:
            continue
        if node.inputs is None:
            raise BackwardError(
                f"the graph behind {tensor.name or 'this tensor'} {tensor.shape} (made by "
                f"{node.primitive.name}) was released by backward(retain_graph=False). Run the "
                "forward pass again, or call backward() without retain_graph=False to keep "
                "the graph for drawing, checking or a second backward")
        if grad_only:
            for _, operand in reversed(node.parents):
                if id(operand) not in visited:
                    push((operand, False))
            continue
        for operand in reversed(node.inputs):
            if is_tensor(operand) and id(operand) not in visited:
                push((operand, False))
    return order


def label_tensors(order, names=None, prefix="t"):
    """Return ``{id(tensor): label}`` for every tensor in ``order``.

    A label is, by priority, the tensor's own ``name``, a key of ``names`` (a
    mapping such as ``locals()``) whose value is that tensor or its data
    array, or a generated ``t0``, ``t1``, ... numbered in ``order``, so the same
    graph always gets the same labels.
    """
    by_identity = {}
    if names:
        for key, value in names.items():
            if not isinstance(key, str) or key.startswith("_"):
                continue
            by_identity.setdefault(id(value), key)
            if is_tensor(value):
                by_identity.setdefault(id(value.data), key)

    labels = {}
    used_labels = set()
    for tensor in order:
        label = tensor.name or by_identity.get(id(tensor)) or by_identity.get(id(tensor.data))
        if label is not None:
            labels[id(tensor)] = label
            used_labels.add(label)

    counter = 0
    for tensor in order:
        if id(tensor) in labels:
            continue
        while f"{prefix}{counter}" in used_labels:
            counter += 1
        labels[id(tensor)] = f"{prefix}{counter}"
        counter += 1
    return labels
