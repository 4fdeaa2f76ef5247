"""The gradient check that every engine passes before it is timed."""

from __future__ import annotations

import numpy as np


def compare_gradients(got, expected):
    """Return one message per gradient in ``got`` that differs from ``expected``.

    Both are ``{input name: array}``. A gradient matches when it has the
    expected shape and ``np.allclose`` (rtol=1e-5, atol=1e-8) holds. An empty
    list means that every gradient matched.
    """
    problems = []
    for name, reference in expected.items():
        if name not in got or got[name] is None:
            problems.append(f"d{name} is missing")
            continue
        value = np.asarray(got[name])
        if value.shape != reference.shape:
            problems.append(f"d{name} has shape {value.shape}, expected {reference.shape}")
            continue
        if not np.allclose(value, reference):
            error = np.max(np.abs(value - reference))
            problems.append(f"d{name} differs from the hand-derived gradient: max absolute "
                            f"error {error:.3g}, largest reference entry "
                            f"{np.max(np.abs(reference)):.3g}")
    return problems
