"""What a worker times: one training step and one prediction, ours and PyTorch's, in timed loops.

Ours is the kit's own training step (:class:`nn.step.TrainingStep`: forward in training mode,
softmax cross-entropy, backward, Adam), the one the trainer runs; prediction is
``Model.predict_proba``.  PyTorch's is the model's twin generated from our network's configs and
initial weights (tests/support/torch_twins.py), trained with ``torch.optim.Adam`` and
``CrossEntropyLoss``; prediction is eval mode, no_grad, softmax, NumPy in and out.

Both sides cycle through the same POOL random images (seeded), so neither times data loading.
"""
import time

SEED = 0
POOL = 2048     # distinct random images cycled through (a multiple of every batch size)


def random_data():
    import numpy as np
    rng = np.random.default_rng(SEED)
    images = rng.random((POOL, 28, 28), dtype=np.float32)   # (POOL, 28, 28) in [0, 1)
    labels = rng.integers(0, 10, POOL).astype(np.int64)     # (POOL,)
    return images, labels


def matmul_rates(product, size, repeats):
    """GFLOP/s of ``repeats`` calls of a size x size matrix product (after one untimed)."""
    product()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        product()
        times.append(time.perf_counter() - started)
    flops = 2.0 * size ** 3
    return {"gflops": [flops / t / 1e9 for t in times], "size": size}


class Runner:
    """Timed loops shared by both sides; subclasses provide one training step and predictions."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.next_index = 0
        self.warmed = set()

    def batch_start(self, batch):
        """Where the next ``batch`` images start: a whole batch always (after one-image calls
        or another batch size the next one may not fit before the pool's end: back to 0)."""
        start = self.next_index if self.next_index + batch <= POOL else 0
        self.next_index = (start + batch) % POOL
        return start

    def _warm(self, kind, batch, function):
        # Kernels are compiled already (at startup); this settles buffers and torch's per-shape
        # caches for a new batch size.
        if (kind, batch) not in self.warmed:
            function(self.batch_start(batch), batch)
            self.warmed.add((kind, batch))

    def _timed(self, kind, function, batch, seconds, min_steps=1):
        self._warm(kind, batch, function)
        steps = 0
        started = time.perf_counter()
        while True:
            function(self.batch_start(batch), batch)
            steps += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds and steps >= min_steps:
                return {"images": steps * batch, "seconds": elapsed, "steps": steps}

    def train(self, batch, seconds):
        return self._timed("train", self.train_step, batch, seconds)

    def infer(self, batch, seconds):
        return self._timed("infer", self.predict, batch, seconds)

    def latency(self, calls, seconds):
        """Seconds of each of ``calls`` one-image predictions (fewer if ``seconds`` run out)."""
        if ("one", 1) not in self.warmed:
            for _ in range(5):
                self.predict(self.batch_start(1), 1)
            self.warmed.add(("one", 1))
        times = []
        deadline = time.perf_counter() + seconds
        for _ in range(calls):
            if len(times) >= 5 and time.perf_counter() > deadline:
                break
            start = self.batch_start(1)
            started = time.perf_counter()
            self.predict(start, 1)
            times.append(time.perf_counter() - started)
        return {"seconds": times}


class OursRunner(Runner):
    def __init__(self, name, images, labels):
        super().__init__(images, labels)
        import numpy as np
        import models
        from nn.optim import Adam
        from nn.step import TrainingStep
        self.model = models.build_model(name, rng=np.random.default_rng(SEED))
        self.x = np.ascontiguousarray(self.model.to_network_input(images))   # network input
        network = self.model.network
        self.step = TrainingStep(network, Adam(network.parameters(), lr=1e-3))
        self.flops = self.model.flops()

    def train_step(self, start, batch):
        self.step(self.x[start:start + batch], self.labels[start:start + batch])

    def predict(self, start, batch):
        return self.model.predict_proba(self.images[start:start + batch])

    def matmul(self, size, repeats):
        import numpy as np
        rng = np.random.default_rng(SEED)
        a = rng.random((size, size), dtype=np.float32)
        b = rng.random((size, size), dtype=np.float32)
        return matmul_rates(lambda: a @ b, size, repeats)


def load_twins():
    """tests/support/torch_twins.py, which needs only torch and NumPy (not our library)."""
    import sys
    from pathlib import Path
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.append(root)
    from tests.support import torch_twins
    return torch_twins


class TorchRunner(Runner):
    """The PyTorch twin of our model, from the file our side exported (same initial weights)."""

    def __init__(self, weights_path, images, labels, threads):
        super().__init__(images, labels)
        import torch
        from bench.worker import read_export
        torch.set_num_threads(threads)
        torch.manual_seed(SEED)                          # torch's dropout masks
        self.torch = torch
        header, state = read_export(weights_path)
        self.net = load_twins().twin_from_config(header["layers"], state)
        self.shape = tuple(header["input_shape"])        # one image, network layout
        self.x = torch.from_numpy(images).reshape((POOL,) + self.shape).contiguous()
        self.y = torch.from_numpy(labels)
        self.criterion = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.mode = None

    def _set_mode(self, training):
        if self.mode != training:
            self.net.train(training)
            self.mode = training

    def train_step(self, start, batch):
        self._set_mode(True)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.net(self.x[start:start + batch]), self.y[start:start + batch])
        loss.backward()
        self.optimizer.step()
        loss.item()

    def predict(self, start, batch):
        # Same work as predict_proba: NumPy images in, NumPy probabilities out.
        self._set_mode(False)
        torch = self.torch
        with torch.no_grad():
            x = torch.from_numpy(self.images[start:start + batch]).reshape((batch,) + self.shape)
            return torch.softmax(self.net(x), dim=1).numpy()

    def matmul(self, size, repeats):
        torch = self.torch
        generator = torch.Generator().manual_seed(SEED)
        a = torch.rand((size, size), generator=generator)
        b = torch.rand((size, size), generator=generator)
        with torch.no_grad():
            return matmul_rates(lambda: a @ b, size, repeats)
