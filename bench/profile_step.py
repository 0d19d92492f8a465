"""Where one training step's time goes: forward and backward of every execution step.

    python bench/profile_step.py [--models cnn,lstm] [--batch 64] [--threads 2] [--steps 30]

A training step is run the way the training scripts run it - ``network.forward(x, training=True)``,
the loss, ``network.backward``, Adam - but every step of the network's execution plan
(``model.network.steps()``: the layers, with each Conv2D -> LeakyReLU -> MaxPool2D run fused into
one step) is timed on its own.  After a few untimed warm-up steps, ``--steps`` training steps are
timed and the median of each cell is printed, with its share of the whole step and the forward
GFLOP/s it reaches (forward FLOPs per image from :mod:`nn.flops`, times the batch, over the time).
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
from nn.layers.fused import ConvActivationPool  # noqa: E402
from nn.losses import SoftmaxCrossEntropy  # noqa: E402
from nn.optim import Adam  # noqa: E402

WARMUP_STEPS = 3


def step_layers(step):
    """The layers one execution step runs (three for a fused conv block, else one)."""
    if isinstance(step, ConvActivationPool):
        return [step.conv, step.activation, step.pool]
    return [step]


def step_name(step):
    if isinstance(step, ConvActivationPool):
        conv = step.conv
        return (f"Conv2D {conv.in_channels}->{conv.out_channels} {conv.kernel_size}x{conv.kernel_size}"
                f" + LeakyReLU + MaxPool2D (fused)")
    config = ", ".join(f"{k}={v}" for k, v in step.config().items())
    return f"{type(step).__name__}({config})" if config else type(step).__name__


def step_flops(step, input_shape):
    """Forward FLOPs of one execution step for one sample, and its output shape."""
    total = 0
    for layer in step_layers(step):
        total += layer_flops(layer, input_shape)
        input_shape = layer.output_shape(input_shape)
    return total, input_shape


def profile(name, batch, steps, rng):
    """{'rows': [(name, output shape, MFLOP/img, fwd s, bwd s)], 'loss': s, 'optimizer': s, 'total': s}."""
    model = models.build_model(name, rng=np.random.default_rng(0))
    network = model.network
    plan = network.steps()
    images = rng.random((batch, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    x = np.ascontiguousarray(model.to_network_input(images))
    criterion = SoftmaxCrossEntropy()
    optimizer = Adam(network.parameters(), lr=1e-3)

    shapes, flops, shape = [], [], x.shape[1:]
    for step in plan:
        count, shape = step_flops(step, shape)
        flops.append(count)
        shapes.append(shape)

    forward = [[] for _ in plan]
    backward = [[] for _ in plan]
    loss_times, optimizer_times, totals = [], [], []
    clock = time.perf_counter
    for iteration in range(WARMUP_STEPS + steps):
        timed = iteration >= WARMUP_STEPS
        step_start = clock()
        out = x
        for i, step in enumerate(plan):
            started = clock()
            out = step.forward(out, True)
            if timed:
                forward[i].append(clock() - started)
        started = clock()
        criterion.forward(out, labels)
        grad = criterion.backward()
        if timed:
            loss_times.append(clock() - started)
        for i in reversed(range(len(plan))):
            started = clock()
            grad = plan[i].backward(grad)
            if timed:
                backward[i].append(clock() - started)
        started = clock()
        optimizer.step()
        if timed:
            optimizer_times.append(clock() - started)
            totals.append(clock() - step_start)
    median = statistics.median
    rows = [(step_name(step), shapes[i], flops[i], median(forward[i]), median(backward[i]))
            for i, step in enumerate(plan)]
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
    parser.add_argument("--models", default="cnn,lstm", help="comma-separated: cnn, lstm")
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
