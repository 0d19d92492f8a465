"""Where one training step's time goes: forward and backward of every execution step.

    python bench/profile_step.py [--models cnn,lstm] [--batch 64] [--threads 2] [--steps 30]

A training step is the kit's own (:class:`nn.step.TrainingStep`, as the trainer runs it: forward
in training mode, the loss, backward, Adam), handed a network, loss and optimizer that time
themselves: every step of the network's execution plan (``model.network.steps()``: the layers,
with each Conv2D -> LeakyReLU -> MaxPool2D run fused into one step) is timed on its own.  After
a few untimed warm-up steps, ``--steps`` training steps are timed and the median of each cell is
printed, with its share of the whole step and the forward GFLOP/s it reaches (forward FLOPs per
image from :mod:`nn.flops`, times the batch, over the time).
"""
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nn  # noqa: E402
from nn.threads import threads_from_argv  # noqa: E402

nn.configure_threads(threads_from_argv(sys.argv) or 2)  # before NumPy loads BLAS

import argparse  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402

import models  # noqa: E402
from nn.flops import layer_flops  # noqa: E402
from nn.layers.dense import DenseActivation  # noqa: E402
from nn.layers.fused import ConvActivationPool  # noqa: E402
from nn.losses import SoftmaxCrossEntropy  # noqa: E402
from nn.optim import Adam  # noqa: E402
from nn.step import TrainingStep  # noqa: E402

WARMUP_STEPS = 3


def step_layers(step):
    """The layers one execution step runs (three for a fused conv block, two for a fused dense
    layer and activation, else one)."""
    if isinstance(step, ConvActivationPool):
        return [step.conv, step.activation, step.pool]
    if isinstance(step, DenseActivation):
        return [step.dense, step.activation]
    return [step]


def step_name(step):
    if isinstance(step, ConvActivationPool):
        conv = step.conv
        return (f"Conv2D {conv.in_channels}->{conv.out_channels} {conv.kernel_size}x{conv.kernel_size}"
                f" + LeakyReLU + MaxPool2D (fused)")
    if isinstance(step, DenseActivation):
        return (f"Dense {step.dense.in_features}->{step.dense.out_features} + "
                f"{type(step.activation).__name__} (fused)")
    config = ", ".join(f"{k}={v}" for k, v in step.config().items())
    return f"{type(step).__name__}({config})" if config else type(step).__name__


def step_flops(step, input_shape):
    """Forward FLOPs of one execution step for one sample, and its output shape."""
    total = 0
    for layer in step_layers(step):
        total += layer_flops(layer, input_shape)
        input_shape = layer.output_shape(input_shape)
    return total, input_shape


class TimedPlan:
    """The network as TrainingStep calls it (forward, backward), running the execution plan
    step by step with a clock around each; ``recording`` turns the clock's log on."""

    def __init__(self, plan, clock):
        self.plan, self.clock, self.recording = plan, clock, False
        self.forward_times = [[] for _ in plan]
        self.backward_times = [[] for _ in plan]

    def forward(self, x, training=False):
        for step, times in zip(self.plan, self.forward_times):
            started = self.clock()
            x = step.forward(x, training)
            if self.recording:
                times.append(self.clock() - started)
        return x

    def backward(self, grad, need_input_grad=None):
        """As Sequential.backward: ``need_input_grad=False`` lets the first step skip dL/dx."""
        for position in range(len(self.plan) - 1, -1, -1):
            step, times = self.plan[position], self.backward_times[position]
            started = self.clock()
            if position == 0 and need_input_grad is not None and hasattr(step, "need_input_grad"):
                grad = step.backward(grad, need_input_grad=need_input_grad)
            else:
                grad = step.backward(grad)
            if self.recording:
                times.append(self.clock() - started)
        return grad


class TimedCalls:
    """Stands in for ``target``, adding the time of every call of the named methods to ``total``
    (reset by the caller for each training step)."""

    def __init__(self, target, methods, clock):
        self.target, self.methods, self.clock, self.total = target, set(methods), clock, 0.0

    def __getattr__(self, name):
        value = getattr(self.target, name)
        if name not in self.methods:
            return value

        def timed(*args, **kwargs):
            started = self.clock()
            try:
                return value(*args, **kwargs)
            finally:
                self.total += self.clock() - started
        return timed


def profile(name, batch, steps, rng):
    """{'rows': [(name, output shape, MFLOP/img, fwd s, bwd s)], 'loss': s, 'optimizer': s, 'total': s}."""
    model = models.build_model(name, rng=np.random.default_rng(0))
    network = model.network
    plan = network.steps()
    images = rng.random((batch, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    x = np.ascontiguousarray(model.to_network_input(images))
    clock = time.perf_counter
    timed_network = TimedPlan(plan, clock)
    criterion = TimedCalls(SoftmaxCrossEntropy(), ("forward", "backward"), clock)
    optimizer = TimedCalls(Adam(network.parameters(), lr=1e-3), ("step",), clock)
    training_step = TrainingStep(timed_network, optimizer, criterion)

    shapes, flops, shape = [], [], x.shape[1:]
    for step in plan:
        count, shape = step_flops(step, shape)
        flops.append(count)
        shapes.append(shape)

    loss_times, optimizer_times, totals = [], [], []
    for iteration in range(WARMUP_STEPS + steps):
        timed_network.recording = timed = iteration >= WARMUP_STEPS
        criterion.total = optimizer.total = 0.0
        step_start = clock()
        training_step(x, labels)
        if timed:
            totals.append(clock() - step_start)
            loss_times.append(criterion.total)
            optimizer_times.append(optimizer.total)
    median = statistics.median
    rows = [(step_name(step), shapes[i], flops[i], median(timed_network.forward_times[i]),
             median(timed_network.backward_times[i])) for i, step in enumerate(plan)]
    return {"rows": rows, "loss": median(loss_times), "optimizer": median(optimizer_times),
            "total": median(totals), "flops": sum(flops)}


def render(name, batch, threads, steps, result):
    total = result["total"]
    ms = 1e3
    header = ["step", "output", "MFLOP/img", "fwd ms", "bwd ms", "share", "fwd GFLOP/s"]
    rows = []
    for step, shape, flops, fwd, bwd in result["rows"]:
        gflops = flops * batch / fwd / 1e9 if flops and fwd > 0 else None
        rows.append([step, "x".join(map(str, shape)), f"{flops / 1e6:.2f}", f"{fwd * ms:.3f}",
                     f"{bwd * ms:.3f}", f"{100 * (fwd + bwd) / total:.1f}%",
                     "-" if gflops is None else f"{gflops:.1f}"])
    rows.append(["softmax cross-entropy (fwd + bwd)", "", "", f"{result['loss'] * ms:.3f}", "",
                 f"{100 * result['loss'] / total:.1f}%", ""])
    rows.append(["Adam step", "", "", f"{result['optimizer'] * ms:.3f}", "",
                 f"{100 * result['optimizer'] / total:.1f}%", ""])
    rows.append(["whole training step (median)", "", f"{result['flops'] / 1e6:.2f}",
                 f"{total * ms:.3f}", "", "100%",
                 f"{3 * result['flops'] * batch / total / 1e9:.1f} (train, 3x)"])
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines = [f"{name.upper()}: batch {batch}, {threads} thread(s), median of {steps} training steps "
             f"({batch / total:,.0f} images/s)"]
    for j, row in enumerate([header] + rows):
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
        if j == 0 or j == len(rows) - 1:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="profile_step.py", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,lstm",
                        help=f"comma-separated, any of {', '.join(models.registry.names())}")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2,
                        help="BLAS and Numba threads (read before NumPy loads)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in models.registry.names()]
    if not names or unknown:
        parser.error(f"--models: unknown model {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(models.registry.names())}")
    if args.batch < 1 or args.steps < 1 or args.threads < 1:
        parser.error("--batch, --steps and --threads must be positive")
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        result = profile(name, args.batch, args.steps, rng)
        print(("\n" if i else "") + render(name, args.batch, args.threads, args.steps, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
