"""One training step - forward, loss, backward, update - written once for the whole kit.

    step = TrainingStep(network, Adam(network.parameters(), lr=1e-3))
    result = step(x, labels)                 # x: what the network reads, e.g. (N, 1, 28, 28)
    result.loss, result.correct              # the batch's mean loss and how many it got right

The trainer, teaching, the comparison's timing and the benchmark all call this object, so what
they time or train is the same computation.  The trainer judges each loss before the update
(a NaN loss must not reach the weights): ``accept(loss) -> bool``; when it says no, neither
backward nor the update runs and ``result.updated`` is False.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from nn.losses import SoftmaxCrossEntropy


@dataclass
class StepResult:
    loss: float          # mean softmax cross-entropy of the batch
    logits: np.ndarray   # (N, C), training mode (dropout on)
    correct: int         # how many of the N argmax(logits) equal the labels (or, for a criterion
                         # with count_correct(logits, labels), what it counts: numbers read right)
    updated: bool        # False when ``accept`` refused the loss: no backward, no update


class TrainingStep:
    """forward (training mode) -> loss -> backward -> optimizer update, on one batch.

    ``network``: a :class:`~nn.layers.Sequential` (or anything with its ``forward(x, training)``
    and ``backward(dout, need_input_grad)``).
    """

    def __init__(self, network, optimizer, criterion=None):
        self.network = network
        self.optimizer = optimizer
        self.criterion = SoftmaxCrossEntropy() if criterion is None else criterion

    def __call__(self, x, labels, lr: Optional[float] = None,
                 accept: Optional[Callable[[float], bool]] = None) -> StepResult:
        """One step on the batch ``x`` (N, ...) with integer ``labels`` (N,) - or whatever the
        criterion's ``forward(logits, labels)`` takes (the reader's: targets, widths, lengths).

        ``lr`` sets the optimizer's learning rate for this update (a schedule); ``None`` keeps it.
        """
        logits = self.network.forward(x, training=True)
        loss = float(self.criterion.forward(logits, labels))
        count_correct = getattr(self.criterion, "count_correct", None)   # a sequence loss's own
        correct = (int(np.count_nonzero(logits.argmax(axis=1) == labels)) if count_correct is None
                   else int(count_correct(logits, labels)))
        if accept is not None and not accept(loss):
            return StepResult(loss, logits, correct, updated=False)
        # dL/dlogits = (softmax - onehot) / N.  Nobody reads dL/dx of the input here, so the
        # first layer may skip it (Sequential.backward's need_input_grad=False).
        self.network.backward(self.criterion.backward(), need_input_grad=False)
        if lr is not None:
            self.optimizer.lr = lr
        self.optimizer.step()
        return StepResult(loss, logits, correct, updated=True)


def finite(loss: float) -> bool:
    """An ``accept`` for :meth:`TrainingStep.__call__`: refuse NaN and infinite losses."""
    return math.isfinite(loss)
