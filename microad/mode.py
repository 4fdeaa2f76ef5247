"""Whether new ops record the graph: a per-thread switch, so threads stay independent."""

from __future__ import annotations

import threading
from contextlib import ContextDecorator


class _GradMode(threading.local):
    enabled = True
    detect_anomaly = False


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


class detect_anomaly(ContextDecorator):
    """Context manager in which backward checks every step for NaN and inf.

    Ops created inside it remember where their forward was called. The first
    backward step that produces a NaN or inf gradient raises
    :class:`microad.AnomalyError` naming the op, that place and the
    statistics of its inputs. It slows ops down, so use it for debugging.

    >>> import numpy as np, microad as ma
    >>> x = ma.Tensor([0.0, 1.0], requires_grad=True)
    >>> with ma.detect_anomaly(), np.errstate(divide="ignore"):
    ...     y = np.sqrt(x).sum()
    ...     y.backward()
    Traceback (most recent call last):
    ...
    microad.errors.AnomalyError: backward of sqrt produced inf in the gradient of its input 0 ...
    """

    def __enter__(self):
        self._previous = grad_mode.detect_anomaly
        grad_mode.detect_anomaly = True
        return self

    def __exit__(self, *exc_info):
        grad_mode.detect_anomaly = self._previous
        return False


class ModificationClock:
    """A counter that stamps every in-place modification of a tensor's data.

    A node records ``latest`` when its op runs. Backward then checks the
    node's inputs only when some tensor was modified since, which keeps the
    check free in the usual forward-then-backward loop.
    """

    def __init__(self):
        self.latest = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        """Return a new stamp, larger than every earlier one."""
        with self._lock:
            self.latest += 1
            return self.latest


modification_clock = ModificationClock()
