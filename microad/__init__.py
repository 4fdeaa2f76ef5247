"""microad: reverse-mode automatic differentiation on NumPy, for learning and checking backprop.

>>> import numpy as np
>>> import microad as ma
>>> X = ma.Tensor([[1.0, 2.0]], name="X")
>>> W = ma.Tensor([[0.5], [-1.0]], requires_grad=True, name="W")
>>> loss = np.maximum(X @ W, 0).sum()
>>> loss.backward()
>>> W.grad.ravel()
array([0., 0.])
"""

from . import nn, optim, rules
from .backprop import backward, grad
from .codegen import compile
from .compare import Entry, NumericCheck, Report, compare
from .diagnose import Diagnosis
from .draw import draw
from .errors import (AnomalyError, BackwardError, DrawError, DTypeError, GradcheckError,
                     GraphFileError, GraphvizNotFoundError, HyperparameterError, ManualGradientError,
                     MicroadError, MissingExtraError, MutationError, OutputDirectoryError,
                     ShapeError, UnsupportedError)
from .explain import derive, explain
from .functions import (abs, absolute, add, as_tensor, broadcast_to, clip, concatenate, cos,
                        cross_entropy, divide, dot, einsum, exp, expand_dims, flatten, hstack,
                        log, log1p, log_softmax, logsumexp, matmul, max, maximum, mean, min,
                        minimum, multiply, negative, outer, power, ravel, relu, reshape,
                        sigmoid, sin, softmax, split, sqrt, square, squeeze, stack, std,
                        subtract, sum, supported_functions, swapaxes, tanh, transpose, var,
                        vstack, where)
from .gradcheck import GradcheckResult, InputCheck, gradcheck
from .mode import detect_anomaly, enable_grad, is_grad_enabled, no_grad
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    # the graph and the backward pass
    "Tensor", "backward", "grad", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly",
    # ops
    "abs", "absolute", "add", "as_tensor", "broadcast_to", "clip", "concatenate", "cos",
    "cross_entropy", "divide", "dot", "einsum", "exp", "expand_dims", "flatten", "hstack", "log",
    "log1p", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum",
    "multiply", "negative", "outer", "power", "ravel", "relu", "reshape", "sigmoid", "sin",
    "softmax", "split", "sqrt", "square", "squeeze", "stack", "std", "subtract", "sum",
    "supported_functions", "swapaxes", "tanh", "transpose", "var", "vstack", "where",
    # what users do with a graph
    "draw", "compare", "Report", "Entry", "Diagnosis", "NumericCheck", "gradcheck",
    "GradcheckResult", "InputCheck", "explain", "derive", "compile",
    # submodules
    "nn", "optim", "rules",
    # errors
    "MicroadError", "ShapeError", "DTypeError", "UnsupportedError", "BackwardError",
    "MutationError", "AnomalyError", "ManualGradientError", "GradcheckError",
    "GraphvizNotFoundError", "GraphFileError", "DrawError", "HyperparameterError", "MissingExtraError",
    "OutputDirectoryError",
]
