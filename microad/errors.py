"""Exceptions that microad raises for mistakes in user code.

Every user-facing error derives from :class:`MicroadError`, so a caller can
catch them all at once. Each message names the op, the operands with their
shapes, and what to try next. Internal invariants use ``assert`` instead.
"""

from __future__ import annotations


class MicroadError(Exception):
    """Base class of every error that microad raises for bad input."""


class ShapeError(MicroadError, ValueError):
    """Operand shapes that an op cannot combine, or a gradient of the wrong shape."""


class DTypeError(MicroadError, TypeError):
    """An array dtype that microad cannot differentiate: object, string or complex."""


class UnsupportedError(MicroadError, TypeError):
    """A NumPy function, ufunc method or argument that microad does not implement."""


class BackwardError(MicroadError, RuntimeError):
    """``backward()`` called on something it cannot start from."""


class MutationError(MicroadError, RuntimeError):
    """A tensor saved for backward was modified in place after the op that saved it."""


class AnomalyError(MicroadError, FloatingPointError):
    """A backward step produced NaN or inf while anomaly detection was on."""

class ManualGradientError(MicroadError, ValueError):
    """A manual gradient that cannot be matched to a tensor or read as an array."""


class GradcheckError(MicroadError, AssertionError):
    """The engine's gradient disagrees with central differences."""


class GraphvizNotFoundError(MicroadError, RuntimeError):
    """Graphviz's ``dot`` program is missing, so a diagram cannot be rendered."""


class DrawError(MicroadError, ValueError):
    """An invalid argument to :func:`microad.draw` or :func:`microad.draw.save`."""


class HyperparameterError(MicroadError, ValueError):
    """An optimizer setting out of its valid range, or an invalid list of parameters."""


class MissingExtraError(MicroadError, ImportError):
    """An optional package that a command needs is not installed."""


class OutputDirectoryError(MicroadError, OSError):
    """The folder for a demo's output cannot be created."""


class GraphFileError(MicroadError, RuntimeError):
    """A graph file given to the command line could not be run."""


def describe(operands) -> str:
    """Format operands as ``X (5, 4), W (5, 3)`` for error messages."""
    parts = []
    for index, operand in enumerate(operands):
        label = getattr(operand, "name", None) or f"operand {index}"
        shape = getattr(operand, "shape", ())
        parts.append(f"{label} {tuple(shape)}")
    return ", ".join(parts)
