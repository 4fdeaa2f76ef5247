"""The forward and backward passes as plain NumPy source, and :func:`compile`, which runs it.

:func:`numpy_source` turns a :class:`~microad.explain.Derivation` into a
function ``forward_backward`` that a student could have written by hand. It
keeps only the steps that the output and the leaves' gradients need.
:func:`compile` traces a Python function once per input signature, generates
that source, and calls it on later inputs without building a graph.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np

from .errors import MicroadError, ShapeError
from .explain import Derivation, derive
from .tensor import Tensor

logger = logging.getLogger(__name__)

# Source of the helper primitives that have no plain NumPy expression.
HELPER_SOURCES = {
    "scatter_add": '''\
def scatter_add(g, shape, index):
    """Return zeros of `shape` with `g` added at `index`, where repeated indices add up."""
    result = np.zeros(shape, dtype=g.dtype)
    np.add.at(result, index, g)
    return result
''',
}


def _live_steps(derivation: Derivation, requested) -> list:
    """Return the forward and backward steps that the names in ``requested`` depend on, in order."""
    needed = set(requested)
    live = []
    for step in reversed(derivation.forward + derivation.steps):
        if step.target in needed:
            live.append(step)
            needed.update(step.reads)
    live.reverse()
    return live


def function_source(derivation: Derivation, *, name, parameters, gradients, returns) -> str:
    """Return the source of one function that computes the output and ``gradients``.

    ``parameters`` are the function's argument names, ``gradients`` the names
    of the gradients to compute, and ``returns`` the text after ``return``.
    """
    d = derivation
    defined = {step.target for step in d.forward + d.steps}
    requested = [d.output_name] + list(gradients)
    steps = _live_steps(d, requested)
    forward_targets = {step.target for step in d.forward}

    lines = []
    for helper in sorted(d.helpers):
        lines += [HELPER_SOURCES[helper], ""]
    lines.append(f"def {name}({', '.join(parameters)}):")
    section = None
    for step in steps:
        step_section = "Forward pass" if step.target in forward_targets else "Backward pass"
        if step_section != section:
            lines.append(f"    # {step_section}")
            section = step_section
        lines.append(f"    {step.target} = {step.expression}")
    for gradient, tensor in d.gradients:
        if gradient in gradients and gradient not in defined:
            # No path from this leaf to the output: its gradient is zero.
            lines.append(f"    {gradient} = np.zeros({tuple(tensor.shape)!r}, "
                         f"dtype=np.{tensor.dtype.name})")
    lines.append(f"    return {returns}")
    return "\n".join(lines) + "\n"


def numpy_source(derivation: Derivation) -> str:
    """Return a runnable module whose ``forward_backward`` computes the output and gradients.

    Its arguments are the graph's leaves and constant arrays, in graph order,
    and the upstream gradient for an output of more than one element. It
    returns a dict from the output's label and the gradient names (``dW``) to
    arrays.

    >>> import numpy as np
    >>> import microad as ma
    >>> X = ma.Tensor(np.ones((5, 5)), name="X")
    >>> W = ma.Tensor(np.ones((5, 3)), requires_grad=True, name="W")
    >>> logits = X @ W
    >>> Y = np.maximum(logits, 0)
    >>> print(numpy_source(derive(Y, locals())))
    import numpy as np
    <BLANKLINE>
    <BLANKLINE>
    def forward_backward(X, W, dY):
        # Forward pass
        logits = X @ W
        Y = np.maximum(logits, 0)
        # Backward pass
        dlogits = dY * (logits > 0)
        dW = X.T @ dlogits
        return {"Y": Y, "dW": dW}
    <BLANKLINE>
    """
    d = derivation
    parameters = [name for name, _ in d.inputs] + [name for name, _ in d.constants]
    if d.seed_is_input:
        parameters.append(d.seed)
    gradients = [name for name, _ in d.gradients]
    returns = "{" + ", ".join(f'"{name}": {name}' for name in [d.output_name] + gradients) + "}"
    body = function_source(d, name="forward_backward", parameters=parameters,
                           gradients=gradients, returns=returns)
    return "import numpy as np\n\n\n" + body


# ---------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------

def _parameter_names(function, count):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return [f"arg{i}" for i in range(count)]
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            names.append(parameter.name)
        elif parameter.kind == parameter.VAR_POSITIONAL:
            names += [f"{parameter.name}{i}" for i in range(count - len(names))]
            break
    return names[:count] + [f"arg{i}" for i in range(len(names), count)]


class CompiledFunction:
    """A function traced once per input signature and replayed as generated NumPy code.

    Calling it with arrays returns ``(value, grads)``. ``value`` is the output
    as the generated code computes it: a NumPy scalar or 0-d array of the
    output's dtype. ``grads`` is a dict from each differentiated argument's
    parameter name to its gradient, an ndarray of that argument's shape.
    A call with new shapes or dtypes traces ``f`` again. ``source(*args)``
    returns the generated code for such arguments.
    """

    def __init__(self, function, wrt=None):
        self.function = function
        self.wrt = None if wrt is None else tuple(wrt)
        self._cache = {}
        self._sources = {}

    def __repr__(self):
        return f"<microad.compile of {getattr(self.function, '__qualname__', self.function)}: " \
               f"{len(self._cache)} traced signature(s)>"

    def __call__(self, *args):
        arrays = [a.data if type(a) is Tensor else np.asarray(a) for a in args]
        key = tuple([(a.shape, a.dtype) for a in arrays])
        replay = self._cache.get(key)
        if replay is None:
            replay = self._trace(arrays, key)
        return replay(*arrays)

    def source(self, *args) -> str:
        """Return the generated NumPy source for arguments like ``args``, tracing if needed."""
        arrays = [a.data if type(a) is Tensor else np.asarray(a) for a in args]
        key = tuple([(a.shape, a.dtype) for a in arrays])
        if key not in self._sources:
            self._trace(arrays, key)
        return self._sources[key]

    def _trace(self, arrays, key):
        names = _parameter_names(self.function, len(arrays))
        if self.wrt is None:
            requested = [name for name, a in zip(names, arrays) if a.dtype.kind == "f"]
        else:
            requested = list(self.wrt)
        unknown = [name for name in requested if name not in names]
        if unknown:
            raise MicroadError(f"compile(): wrt names {unknown} are not parameters of "
                               f"{getattr(self.function, '__name__', 'the function')}, whose "
                               f"parameters are {names}")
        # Every floating-point argument requires grad while tracing, so that
        # every op on it is recorded and no value computed from it is baked
        # into the code. Gradients are returned only for `requested`.
        tensors = [Tensor(a, requires_grad=a.dtype.kind == "f", name=name)
                   for a, name in zip(arrays, names)]
        root = self.function(*tensors)

        if not isinstance(root, Tensor):
            raise MicroadError(f"compile(): {getattr(self.function, '__name__', 'the function')} "
                               f"returned a {type(root).__name__}, not a microad Tensor. Return "
                               "the scalar loss built from the arguments")
        if root.size != 1:
            raise ShapeError(f"compile(): the function returned shape {root.shape}, but compile "
                             "needs a scalar loss. Reduce it first, for example with .sum()")

        derivation = derive(root, dict(zip(names, tensors)))
        source, constants = _compiled_source(derivation, tensors, names, requested)
        logger.debug("traced %s for %s:\n%s", getattr(self.function, "__name__", "function"),
                     key, source)
        namespace = {"np": np, **constants}
        exec(_compile_source(source), namespace)  # noqa: S102 - source generated above
        replay = namespace["forward_backward"]
        self._cache[key] = replay
        self._sources[key] = source
        return replay


def _compile_source(source: str):
    """Compile generated source with a file name that tracebacks show."""
    import builtins
    return builtins.compile(source, "<microad.compile>", "exec")


def _compiled_source(derivation, tensors, names, requested):
    """Return the source of the replay function and the constants that it reads."""
    d = derivation
    label_of = {id(tensor): label for label, tensor in d.inputs}
    constant_of = {id(array): name for name, array in d.constants}
    parameters = []
    for tensor, name in zip(tensors, names):
        # An argument outside the graph may still be read as an index array.
        parameter = label_of.get(id(tensor)) or constant_of.get(id(tensor.data))
        parameters.append(parameter or "_" + name)

    constants = {}
    for name, array in d.constants:
        if name not in parameters:
            constants[name] = array
    for label, tensor in d.inputs:
        if label not in parameters:
            # A leaf made inside the function (np.ones, a mask): a constant.
            constants[label] = tensor.data

    gradient_of = {id(tensor): gradient for gradient, tensor in d.gradients}
    returned = []
    gradients = []
    for name, tensor in zip(names, tensors):
        if name not in requested:
            continue
        gradient = gradient_of.get(id(tensor))
        if gradient is None:
            gradient = f"np.zeros({tuple(tensor.shape)!r}, dtype=np.{tensor.dtype.name})"
        else:
            gradients.append(gradient)
        returned.append(f'"{name}": {gradient}')
    returns = f"{d.output_name}, {{{', '.join(returned)}}}"
    source = function_source(d, name="forward_backward", parameters=parameters,
                             gradients=gradients, returns=returns)
    if constants:
        listed = ", ".join(f"{name} {tuple(np.shape(value))}" for name, value in constants.items())
        source = f"# Constants computed when the function was traced: {listed}\n" + source
    return source, constants


def compile(f, *, wrt=None) -> CompiledFunction:
    """Trace ``f`` into plain NumPy code for its value and gradients, and return a callable.

    ``f`` takes Tensors and returns a scalar Tensor. ``step = compile(f)``;
    ``loss, grads = step(*arrays)`` returns the value and a dict from
    parameter names to gradients, for every floating-point argument or only
    those named in ``wrt``. ``f`` runs again (a retrace) whenever the
    arguments' shapes or dtypes change.

    NOTE: a value that ``f`` derives from an argument outside the graph (a
    comparison mask, ``.data``, an integer cast) is computed once, at trace
    time, and baked into the code as a constant.

    >>> import numpy as np
    >>> import microad as ma
    >>> def loss_of(X, W):
    ...     return np.maximum(X @ W, 0).sum()
    >>> step = compile(loss_of, wrt=["W"])
    >>> loss, grads = step(np.ones((2, 3)), np.ones((3, 1)))
    >>> float(loss), grads["W"].ravel().tolist()
    (6.0, [2.0, 2.0, 2.0])
    """
    if not callable(f):
        raise MicroadError(f"compile() needs a function, got {type(f).__name__}")
    return CompiledFunction(f, wrt)
