"""Whether new ops record the graph: a per-thread switch, so threads stay independent."""

from __future__ import annotations

import threading
from contextlib import ContextDecorator


class _GradMode(threading.local):
    enabled = True


grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Return whether new ops in this thread record the graph."""
    return grad_mode.enabled


class no_grad(ContextDecorator):
    """Context manager (and decorator) in which ops record no graph.

    >>> import microad as ma
    >>> w = ma.Tensor([1.0, 2.0], requires_grad=True)
    >>> with ma.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self):
        self._previous = grad_mode.enabled
        grad_mode.enabled = False
        return self

    def __exit__(self, *exc_info):
        grad_mode.enabled = self._previous
        return False


class enable_grad(ContextDecorator):
    """Context manager that turns graph recording back on, for example inside ``no_grad()``."""

    def __enter__(self):
        self._previous = grad_mode.enabled
        grad_mode.enabled = True
        return self

    def __exit__(self, *exc_info):
        grad_mode.enabled = self._previous
        return False
