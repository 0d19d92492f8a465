"""Optimizers, updating parameters in place from the gradients their layers last computed.

Both follow PyTorch's formulas and defaults, so one step can be compared with torch.optim.
"""
import numpy as np

from nn.kernels import optim as kernels


def memory_order(array):
    """"C" if ``array`` is contiguous row-major (every 1-D array is), else "F" if it is
    contiguous column-major, else None."""
    if array.flags.c_contiguous:
        return "C"
    return "F" if array.flags.f_contiguous else None


class Optimizer:
    def __init__(self, parameters, lr):
        # (key, layer, name) triples; gradients are read from layer.grads at each step because
        # backward assigns new arrays.
        self.parameters = list(parameters)
        self.lr = lr
        self.steps = 0

    def step(self):
        self.steps += 1
        for key, layer, name in self.parameters:
            self.update(key, layer.params[name], layer.grads[name])

    def update(self, key, param, grad):
        raise NotImplementedError

    def state(self) -> dict:
        """Arrays and counters needed to resume exactly where training stopped."""
        return {"steps": np.array(self.steps)}

    def load_state(self, state):
        self.steps = int(state["steps"])


class SGD(Optimizer):
    """SGD with (optionally Nesterov) momentum.

    v = momentum v + g;   p = p - lr v          (Nesterov: p = p - lr (g + momentum v))
    """

    def __init__(self, parameters, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__(parameters, lr)
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = {key: np.zeros_like(layer.params[name]) for key, layer, name in self.parameters}

    def update(self, key, param, grad):
        if self.momentum == 0.0:
            param -= self.lr * grad
            return
        v = self.velocity[key]
        v *= self.momentum
        v += grad
        param -= self.lr * (grad + self.momentum * v if self.nesterov else v)

    def state(self):
        return {**super().state(), **{f"velocity/{k}": v for k, v in self.velocity.items()}}

    def load_state(self, state):
        super().load_state(state)
        for key in self.velocity:
            self.velocity[key][...] = state[f"velocity/{key}"]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.

    m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
    p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    (Keras puts its eps, 1e-7, beside the uncorrected sqrt(v): that is eps / sqrt(1 - b2^t) here,
    larger in the first steps; at these learning rates the two are indistinguishable.)
    """

    def __init__(self, parameters, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(parameters, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = {key: np.zeros_like(layer.params[name]) for key, layer, name in self.parameters}
        self.v = {key: np.zeros_like(layer.params[name]) for key, layer, name in self.parameters}

    def update(self, key, param, grad):
        bias_correction1 = 1 - self.beta1 ** self.steps
        bias_correction2 = 1 - self.beta2 ** self.steps
        # The kernels run over flat views in memory order: row-major, or column-major (a Dense
        # weight, see nn.layers.Dense); anything else would flatten to a copy and lose the update.
        order = memory_order(param)
        if order is None:
            raise ValueError(f"parameter {key} must be contiguous to be updated in place")
        for moments in (self.m, self.v):
            if memory_order(moments[key]) != order:      # the parameter was replaced since
                moments[key] = np.asarray(moments[key], order=order)
        update = (kernels.adam_update_parallel if param.size >= kernels.PARALLEL_MIN_SIZE
                  else kernels.adam_update)
        update(param.reshape(-1, order=order),
               np.asarray(grad, dtype=param.dtype, order=order).reshape(-1, order=order),
               self.m[key].reshape(-1, order=order), self.v[key].reshape(-1, order=order),
               self.beta1, self.beta2, self.lr / bias_correction1, np.sqrt(bias_correction2),
               self.eps)

    def state(self):
        return {**super().state(), **{f"m/{k}": a for k, a in self.m.items()},
                **{f"v/{k}": a for k, a in self.v.items()}}

    def load_state(self, state):
        super().load_state(state)
        for key in self.m:
            self.m[key][...] = state[f"m/{key}"]
            self.v[key][...] = state[f"v/{key}"]


def warm_up(dtype):
    """Compile or load the optimizers' Numba kernels (see :mod:`nn.warmup`)."""
    ones = np.ones(2, dtype)
    for update in (kernels.adam_update, kernels.adam_update_parallel):
        update(ones.copy(), ones, ones.copy(), ones.copy(), 0.9, 0.999, 1e-3, 1.0, 1e-8)
