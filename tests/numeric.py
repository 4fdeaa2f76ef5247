"""An independent oracle for the tests: central differences in float64.

It is deliberately separate from microad.gradcheck, so that the library's
checker and the rules are both tested against code that shares nothing with
them.
"""

import numpy as np


def central_difference_vjp(function, arrays, upstream, eps=1e-6):
    """Return d(sum(function(*arrays) * upstream))/d(array) for each array.

    ``function`` maps float64 ndarrays to an ndarray of ``upstream``'s shape.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for position, array in enumerate(arrays):
        grad = np.zeros_like(array)
        flat = array.reshape(-1)
        for index in range(flat.size):
            saved = flat[index]
            flat[index] = saved + eps
            plus = np.sum(np.asarray(function(*arrays)) * upstream)
            flat[index] = saved - eps
            minus = np.sum(np.asarray(function(*arrays)) * upstream)
            flat[index] = saved
            grad.reshape(-1)[index] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads
