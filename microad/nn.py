"""Neural-network building blocks made of microad ops: modules, layers and a loss.

A :class:`Module` finds its :class:`Parameter` objects and sub-modules among
its attributes, in the order they were assigned. Each parameter's ``name`` is
set to its dotted path, such as ``"layers.0.weight"``, so diagrams, error
messages and the referee (``microad.compare``) show where it lives.

Layers compute with the engine's existing ops (``@``, ``+``, ``maximum``,
``tanh``, ``log_softmax``), so their gradients come from the derivative table
and no layer adds a rule of its own.

>>> import numpy as np
>>> import microad as ma
>>> model = ma.nn.Sequential(ma.nn.Linear(4, 3, rng=0), ma.nn.ReLU(), ma.nn.Linear(3, 2, rng=1))
>>> [name for name, _ in model.named_parameters()]
['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias']
>>> loss = ma.nn.CrossEntropyLoss()(model(np.ones((5, 4))), np.array([0, 1, 0, 1, 1]))
>>> loss.backward()
>>> model.layers[0].weight.grad.shape
(4, 3)
"""

from __future__ import annotations

import warnings

import numpy as np

from . import functions
from .errors import MicroadError, ShapeError, describe
from .tensor import Tensor


class Parameter(Tensor):
    """A trainable leaf tensor: it always requires grad and owns a float copy of its data.

    The data is copied (integers become float64) so that an optimizer can
    update it in place without changing the array it was made from. A module
    sets ``name`` to the parameter's dotted path when the parameter is
    assigned to it, replacing any name given here.

    >>> import microad as ma
    >>> w = ma.nn.Parameter([1, 2], name="w")
    >>> w
    Tensor([1., 2.], requires_grad=True, name='w')
    """

    __slots__ = ()

    def __init__(self, data, name=None):
        if isinstance(data, Tensor):
            data = data.data
        array = np.array(data, copy=True)
        if array.dtype.kind in "biu":
            array = array.astype(np.float64)
        super().__init__(array, requires_grad=True, name=name)


def _is_module_sequence(value) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(isinstance(v, Module) for v in value)


class Module:
    """Base class of layers and models: registers parameters and sub-modules.

    Assigning a :class:`Parameter`, a Module, or a tuple of Modules to an
    attribute registers it. The tuple's items get the names ``attr.0``,
    ``attr.1``, ... (a tuple rather than a list, because appending to a list
    later would bypass registration). Subclasses define ``forward``, and calling
    the module calls ``forward``.

    When a sub-module is assigned, its parameters are renamed to their path
    from the parent, so a model built bottom-up ends with names relative to
    the outermost module. A list of modules is not registered, and assigning
    one emits a warning.

    NOTE: a Parameter assigned to a sub-module after that sub-module was
    itself assigned to a parent gets only its local name (``weight``, not
    ``layers.0.weight``), because a module does not know its parents.

    >>> import microad as ma
    >>> class Affine(ma.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = ma.nn.Parameter([2.0])
    ...         self.shift = ma.nn.Parameter([0.5])
    ...     def forward(self, x):
    ...         return x * self.scale + self.shift
    >>> affine = Affine()
    >>> [name for name, _ in affine.named_parameters()]
    ['scale', 'shift']
    >>> affine(ma.Tensor([1.0, 3.0])).data
    array([2.5, 6.5])
    """

    def __init__(self):
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "training" not in self.__dict__:
            raise MicroadError(f"{type(self).__name__}: assign {name!r} after calling "
                               "super().__init__() in __init__, so that the module can "
                               "register its parameters")
        object.__setattr__(self, name, value)

        if isinstance(value, Parameter):
            value.name = name
        elif isinstance(value, Module) or _is_module_sequence(value):
            for path, parameter in self.named_parameters():
                if path.startswith(name + "."):
                    parameter.name = path
        elif isinstance(value, list) and any(isinstance(item, Module) for item in value):
            warnings.warn(f"{type(self).__name__}.{name} is a list of modules, which is not "
                          "registered, so parameters() and optimizers will not see them. "
                          "Assign a tuple instead", stacklevel=2)

    def _children(self):
        """Yield ``(name, value)`` for each registered Parameter and sub-module, in order."""
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif _is_module_sequence(value):
                for index, module in enumerate(value):
                    yield f"{name}.{index}", module

    def _walk(self):
        """Yield ``(dotted path, value)`` for this module, its sub-modules and parameters.

        The walk is iterative and depth-first, in assignment order, and yields
        each module and parameter once, under the first path that reaches it.
        """
        seen = set()
        stack = [("", self)]
        while stack:
            path, value = stack.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            yield path, value

            if isinstance(value, Module):
                children = [(f"{path}.{name}" if path else name, child)
                            for name, child in value._children()]
                stack.extend(reversed(children))

    def named_modules(self):
        """Return ``[(dotted path, module)]`` for this module (path ``""``) and every sub-module."""
        return [(path, value) for path, value in self._walk() if isinstance(value, Module)]

    def named_parameters(self):
        """Return ``[(dotted path, parameter)]`` in assignment order, listing a shared parameter once.

        >>> import microad as ma
        >>> [name for name, _ in ma.nn.Linear(2, 3, rng=0).named_parameters()]
        ['weight', 'bias']
        """
        return [(path, value) for path, value in self._walk() if isinstance(value, Parameter)]

    def parameters(self):
        """Return the list of parameters, in the order of :meth:`named_parameters`."""
        return [parameter for _, parameter in self.named_parameters()]

    def zero_grad(self):
        """Set ``.grad`` of every parameter to None, before the next backward pass."""
        for parameter in self.parameters():
            parameter.grad = None

    def train(self, mode=True):
        """Set ``training`` on this module and every sub-module, and return this module."""
        for _, module in self.named_modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Set ``training`` to False on this module and every sub-module, and return this module."""
        return self.train(False)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} defines no forward(). "
                                  "Subclasses of microad.nn.Module must implement it")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """Return the arguments shown inside the module's repr, such as ``in_features=4``."""
        return ""

    def __repr__(self):
        children = [(name, value) for name, value in self._children() if isinstance(value, Module)]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, module in children:
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Linear(Module):
    """Affine layer ``y = x @ weight + bias`` with weight of shape (in_features, out_features).

    The weight is laid out (in, out), as in the hand derivation ``logits = X @ W + b``,
    so ``weight.grad`` is ``X.T @ dlogits`` and ``bias.grad`` is ``dlogits.sum(0)``.

    Initialisation is He (Kaiming) uniform: each weight is drawn from
    U(-limit, limit) with ``limit = sqrt(6 / in_features)``, which gives the
    variance 2 / in_features. Behind a ReLU, which zeroes about half of its
    inputs, that variance keeps the scale of activations roughly constant from
    layer to layer (He et al., 2015, "Delving Deep into Rectifiers"). The bias
    starts at zero. ``rng`` is a ``numpy.random.Generator`` or a seed for
    ``numpy.random.default_rng``. Pass one for reproducible weights.

    >>> import microad as ma
    >>> layer = ma.nn.Linear(3, 2, rng=0)
    >>> layer.weight.shape, layer.bias.shape
    ((3, 2), (2,))
    >>> bool(abs(layer.weight.data).max() <= (6 / 3) ** 0.5)
    True
    >>> layer(ma.Tensor([[1.0, 0.0, 0.0]])).shape
    (1, 2)
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None):
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ShapeError(f"Linear: {label} must be a positive integer, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)

        generator = np.random.default_rng(rng)
        limit = np.sqrt(6.0 / self.in_features)
        self.weight = Parameter(generator.uniform(-limit, limit, (self.in_features, self.out_features)))
        self.bias = Parameter(np.zeros(self.out_features)) if bias else None

    def forward(self, x):
        x = functions.as_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(f"Linear({self.in_features} -> {self.out_features}): input "
                             f"{describe([x])} must have {self.in_features} features on its last "
                             f"axis. Pass an array of shape (N, {self.in_features})")
        y = x @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    """Elementwise ``maximum(x, 0)``, whose gradient is ``g * (x > 0)``, so 0 at x == 0.

    >>> import microad as ma
    >>> ma.nn.ReLU()(ma.Tensor([-1.0, 0.0, 2.0])).data
    array([0., 0., 2.])
    """

    def forward(self, x):
        return functions.relu(functions.as_tensor(x))


class Tanh(Module):
    """Elementwise ``tanh(x)``, whose gradient is ``g * (1 - tanh(x)**2)``.

    >>> import microad as ma
    >>> ma.nn.Tanh()(ma.Tensor([0.0])).data
    array([0.])
    """

    def forward(self, x):
        return functions.tanh(x)


class Sequential(Module):
    """Apply modules one after another, registered as ``layers.0``, ``layers.1``, ...

    >>> import microad as ma
    >>> model = ma.nn.Sequential(ma.nn.Linear(2, 2, rng=0), ma.nn.Tanh())
    >>> len(model), type(model[1]).__name__
    (2, 'Tanh')
    """

    def __init__(self, *modules):
        super().__init__()
        if not modules:
            raise MicroadError("Sequential needs at least one module, for example "
                               "Sequential(Linear(64, 32), ReLU(), Linear(32, 10))")
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise MicroadError(f"Sequential: item {index} is a {type(module).__name__}, not a "
                                   "microad.nn.Module. Wrap plain functions in a Module subclass")
        self.layers = tuple(modules)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for module in self.layers:
            x = module(x)
        return x


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of logits (N, C) against integer labels (N,).

    It calls :func:`microad.cross_entropy`, which computes
    ``-mean(log_softmax(logits)[range(N), labels])``, so the gradient with
    respect to the logits is ``(softmax(logits) - onehot(labels)) / N``.

    >>> import microad as ma
    >>> round(float(ma.nn.CrossEntropyLoss()(ma.Tensor([[0.0, 0.0]]), [1])), 4)
    0.6931
    """

    def forward(self, logits, labels):
        return functions.cross_entropy(logits, labels)
