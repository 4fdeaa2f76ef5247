"""Load a user's graph file for ``microad check``, ``microad explain`` and ``microad draw``.

The contract: a graph file is a Python script that builds a forward graph with
microad Tensors and leaves the output in a module-level variable, ``loss`` by
default (choose another with ``--tensor NAME``). When the output has more than
one element, the file also defines ``gradient``, the upstream gradient dL/d(output)
of the output's shape. For ``microad check`` it may define ``manual``, a dict
from names to hand-derived gradients, such as ``{"dW": dW, "dlogits": dlogits}``.
Every Tensor bound to a module-level name is labelled with that name.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass
from pathlib import Path

from .errors import GraphFileError, MicroadError


@dataclass
class GraphFile:
    """The result of running a graph file: its namespace, its output and the optional extras."""

    path: Path
    namespace: dict
    output: object
    output_name: str
    gradient: object = None
    manual: dict | None = None


def load_graph_file(path, output="loss") -> GraphFile:
    """Run the graph file at ``path`` and return what it defined."""
    from .tensor import Tensor

    path = Path(path)
    if not path.is_file():
        raise MicroadError(f"graph file {path} not found; pass the path of a Python script "
                           "that builds a graph (the format is in docs/referee.md)")
    try:
        namespace = runpy.run_path(str(path), run_name="__microad__")
    except MicroadError:
        raise
    except Exception as exc:  # the user's script failed: report it as an error, not a mismatch
        raise GraphFileError(f"running {path} failed with {type(exc).__name__}: {exc}. Fix the "
                             "script so that `python FILE` runs, then try again") from exc
    if output not in namespace:
        tensors = sorted(k for k, v in namespace.items() if isinstance(v, Tensor) and not k.startswith("_"))
        raise MicroadError(f"{path} defines no variable {output!r} to use as the output; "
                           f"its Tensors are: {', '.join(tensors) or 'none'}. Pass --tensor NAME")
    result = namespace[output]
    if not isinstance(result, Tensor):
        raise MicroadError(f"{path}: {output!r} is a {type(result).__name__}, not a microad "
                           "Tensor; build it from Tensors so that microad records the graph")
    manual = namespace.get("manual")
    if manual is not None and not isinstance(manual, dict):
        raise MicroadError(f"{path}: 'manual' must be a dict from names to arrays, "
                           f"not a {type(manual).__name__}")
    return GraphFile(path, namespace, result, output, namespace.get("gradient"), manual)
