"""Optimizers that update parameters in place from the gradients in ``.grad``.

Each optimizer takes the tensors to train (``model.parameters()``), reads
``param.grad`` in :meth:`Optimizer.step` and writes the new values into
``param.data`` in place, so the arrays keep their identity. A parameter whose
``.grad`` is None (it took no part in the last backward pass) is skipped, and
its optimizer state is left as it was.

Weight decay in both optimizers is L2 regularisation added to the gradient,
``g = grad + weight_decay * p``, which is the gradient of
``(weight_decay / 2) * sum(p**2)``. For Adam that is the coupled form of the
original algorithm, not AdamW's decoupled decay.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import HyperparameterError
from .graph import is_tensor
from .tensor import Tensor


def _check_range(optimizer, name, value, low, high=None, *, high_inclusive=False):
    """Raise HyperparameterError unless low <= value (and value < high, or <= with high_inclusive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise HyperparameterError(f"{optimizer}: {name}={value!r} is invalid. It must be a "
                                  "real number")
    bad = not np.isfinite(value) or value < low
    if high is not None:
        bad = bad or value > high or (value == high and not high_inclusive)
    if bad:
        upper = "" if high is None else f" and {'<=' if high_inclusive else '<'} {high}"
        raise HyperparameterError(f"{optimizer}: {name}={value!r} is invalid. It must be "
                                  f">= {low}{upper}")


class Optimizer:
    """Base class: stores the parameter list and clears gradients.

    ``params`` is an iterable of Tensors that require grad, usually
    ``model.parameters()``. Their ``data`` must be writable float arrays,
    because :meth:`step` updates them in place.
    """

    def __init__(self, params):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise HyperparameterError(f"{name}: params must be an iterable of tensors, such as "
                                      "model.parameters() or [W, b], not a single tensor")
        self.params = list(params)
        if not self.params:
            raise HyperparameterError(f"{name}: the parameter list is empty. Pass "
                                      "model.parameters() after building the model")

        seen = set()
        for index, param in enumerate(self.params):
            label = f"parameter {index}" + (f" ({param.name})" if getattr(param, "name", None) else "")
            if not isinstance(param, Tensor):
                raise HyperparameterError(f"{name}: {label} is a {type(param).__name__}, not a "
                                          "microad Tensor. Wrap it with microad.nn.Parameter")
            if not param.requires_grad or not param.is_leaf:
                raise HyperparameterError(f"{name}: {label} {param.shape} must be a leaf that "
                                          "requires grad. Create it with requires_grad=True or "
                                          "as a microad.nn.Parameter")
            if param.dtype.kind != "f" or not param.data.flags.writeable:
                raise HyperparameterError(f"{name}: {label} {param.shape} must hold a writable "
                                          "float array, because step() updates it in place")
            if id(param) in seen:
                raise HyperparameterError(f"{name}: {label} appears twice in params. Pass each "
                                          "tensor once, because otherwise it would be updated twice per step")
            seen.add(id(param))

    def zero_grad(self):
        """Set ``.grad`` of every parameter to None, before the next backward pass."""
        for param in self.params:
            param.grad = None

    def step(self):
        raise NotImplementedError

    @staticmethod
    def _gradient(param, weight_decay):
        """Return ``grad + weight_decay * p`` as an ndarray, or None when there is no gradient."""
        grad = param.grad
        if grad is None:
            return None
        grad = np.asarray(grad.data if is_tensor(grad) else grad)
        if weight_decay:
            grad = grad + weight_decay * param.data
        return grad


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and weight decay.

    For each parameter ``p`` with gradient ``grad``, one step computes::

        g = grad + weight_decay * p
        v = momentum * v + g          (v starts at 0, so the first v is g)
        p = p - lr * v

    With ``momentum=0`` this is plain ``p = p - lr * g``.

    >>> import microad as ma
    >>> w = ma.Tensor([1.0, -2.0], requires_grad=True)
    >>> (w * w).sum().backward()
    >>> optimizer = ma.optim.SGD([w], lr=0.1)
    >>> optimizer.step()
    >>> w.data
    array([ 0.8, -1.6])
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        _check_range("SGD", "lr", lr, 0.0)
        _check_range("SGD", "momentum", momentum, 0.0, 1.0)
        _check_range("SGD", "weight_decay", weight_decay, 0.0)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocities = [None] * len(self.params)

    def step(self):
        """Apply one update to every parameter that has a gradient."""
        for index, param in enumerate(self.params):
            g = self._gradient(param, self.weight_decay)
            if g is None:
                continue

            if self.momentum:
                velocity = self.velocities[index]
                velocity = g.copy() if velocity is None else self.momentum * velocity + g
                self.velocities[index] = velocity
                g = velocity

            param.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), with bias correction and optional L2 weight decay.

    For each parameter ``p`` with gradient ``grad``, step number ``t``
    (1 for the first step) computes::

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g           (m and v start at 0)
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)                (bias correction)
        v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    Each parameter counts its own steps, so one that had no gradient for a
    while is not corrected as if it had.

    >>> import microad as ma
    >>> w = ma.Tensor([1.0, -2.0], requires_grad=True)
    >>> (w * w).sum().backward()
    >>> optimizer = ma.optim.Adam([w], lr=0.1)
    >>> optimizer.step()
    >>> w.data.round(6)
    array([ 0.9, -1.9])
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        _check_range("Adam", "lr", lr, 0.0)
        if len(betas) != 2:
            raise HyperparameterError(f"Adam: betas={betas!r} must be a pair (beta1, beta2)")
        _check_range("Adam", "beta1", betas[0], 0.0, 1.0)
        _check_range("Adam", "beta2", betas[1], 0.0, 1.0)
        _check_range("Adam", "eps", eps, 0.0)
        _check_range("Adam", "weight_decay", weight_decay, 0.0)
        self.lr = lr
        self.betas = (betas[0], betas[1])
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps = [0] * len(self.params)
        self.first_moments = [None] * len(self.params)
        self.second_moments = [None] * len(self.params)

    def step(self):
        """Apply one update to every parameter that has a gradient."""
        beta1, beta2 = self.betas
        for index, param in enumerate(self.params):
            g = self._gradient(param, self.weight_decay)
            if g is None:
                continue

            if self.first_moments[index] is None:
                self.first_moments[index] = np.zeros_like(param.data)
                self.second_moments[index] = np.zeros_like(param.data)
            m = beta1 * self.first_moments[index] + (1 - beta1) * g
            v = beta2 * self.second_moments[index] + (1 - beta2) * (g * g)
            self.first_moments[index] = m
            self.second_moments[index] = v
            self.steps[index] += 1
            t = self.steps[index]

            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            param.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
