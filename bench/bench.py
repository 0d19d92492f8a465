"""Training and prediction speed of the reference CNN and LSTM, side by side with PyTorch CPU.

    python bench/bench.py [--json PATH] [--quick] [--models cnn,lstm] [--threads 2] [--batch 64]
                          [--skip startup,memory,sweep]

What it measures (batch 64, 2 threads, Adam lr 1e-3 unless told otherwise):

training      images/s of forward + backward + optimizer step in training mode (dropout on), for
              this project ("ours") and for the same model in PyTorch ("torch"), interleaved in one
              run: repeat R times { ours for S seconds, torch for S seconds } (the order alternates
              each repeat), then the median of each side and their ratio ours/torch;
inference     images/s of a batch-64 prediction (eval mode, softmax included), interleaved alike;
latency       one image: ``model.predict_proba(image)`` against torch eval + no_grad + softmax,
              after warm-up, median over many calls made in interleaved chunks;
GFLOP/s       3 x forward FLOPs x images/s for training, forward FLOPs x images/s for prediction,
              next to the float32 matrix-multiply rate of this machine (2048 x 2048 ``@``);
startup       the first-call compile or Numba cache-load time: a fresh process with an empty
              NUMBA_CACHE_DIR (cold), the same again (warm), and a read-only copy of the packages
              run twice with only XDG_CACHE_HOME set (the second run must compile nothing);
memory        peak resident memory (VmHWM) of a process running 50 training steps, per side;
sweep         training images/s at batch 16 / 64 / 256 with 1 and 2 threads.

BLAS and Numba fix their thread counts when they load, so every measurement runs in a worker
subprocess (``bench.py --worker ...``) started with its thread count in the environment; this
process only orchestrates them and talks to them over pipes, one JSON line per request.  Ours
and torch never share a process (their thread pools would compete), but their timed runs
alternate, so a busy machine slows both sides alike and the ratio stays meaningful even when
the absolute numbers do not.  ``--quick`` shortens everything (a smoke test, under a minute).
"""
import time

_T0 = time.perf_counter()  # the worker's imports are timed from here (see startup_task)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
MODEL_CHOICES = ("cnn", "lstm")
SECTIONS = ("startup", "memory", "sweep")
SEED = 0
POOL = 2048                 # distinct random images cycled through (a multiple of every batch size)
SWEEP_BATCHES = (16, 64, 256)
SWEEP_THREADS = (1, 2)


class Settings:
    """How long and how often to measure; ``quick`` is a smoke test."""

    def __init__(self, quick):
        self.quick = quick
        self.train_repeats, self.train_seconds = (3, 0.5) if quick else (7, 2.0)
        self.infer_repeats, self.infer_seconds = (3, 0.25) if quick else (5, 1.0)
        # latency: chunks x calls per side, each chunk also capped at chunk_seconds
        self.latency_chunks, self.latency_calls = (4, 25) if quick else (15, 40)
        self.latency_chunk_seconds = 0.3 if quick else 2.0
        self.sweep_repeats, self.sweep_seconds = (1, 0.3) if quick else (3, 1.0)
        self.memory_steps = 3 if quick else 50
        self.matmul_size, self.matmul_repeats = 2048, (3 if quick else 7)

    def as_dict(self):
        return {k: v for k, v in vars(self).items()}


# ======================================================================================
# Worker side: runs in a subprocess whose thread counts were fixed before NumPy loaded.
# ======================================================================================

def _bootstrap(root, threads, side="ours"):
    """Fix thread counts before NumPy is imported; for our side, make ``root``'s nn/models
    importable and import nn first (its BLAS/OpenMP settings).  The torch side gets only the
    thread counts: nn's environment settings are ours, not the peer's."""
    if side == "torch":
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        return
    sys.path.insert(0, str(root))
    import nn
    nn.configure_threads(threads)   # before NumPy: calm OpenBLAS, passive OpenMP, the thread count


def _protocol_stream():
    """The real stdout, for JSON replies only; anything else printed goes to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _random_data():
    import numpy as np
    rng = np.random.default_rng(SEED)
    images = rng.random((POOL, 28, 28), dtype=np.float32)   # (POOL, 28, 28) in [0, 1)
    labels = rng.integers(0, 10, POOL).astype(np.int64)     # (POOL,)
    return images, labels


def _memory_kb(field):
    """VmRSS / VmHWM of this process in kB (getrusage's max RSS where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Runner:
    """Timed loops shared by both sides; subclasses provide one training step and predictions."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.next_index = 0
        self.warmed = set()

    def _batch_start(self, batch):
        start = self.next_index
        self.next_index = (start + batch) % POOL
        return start

    def _warm(self, kind, batch, function):
        # Kernels are compiled already (at startup); this settles buffers and torch's per-shape
        # caches for a new batch size.
        if (kind, batch) not in self.warmed:
            function(self._batch_start(batch), batch)
            self.warmed.add((kind, batch))

    def _timed(self, kind, function, batch, seconds, min_steps=1):
        self._warm(kind, batch, function)
        steps = 0
        started = time.perf_counter()
        while True:
            function(self._batch_start(batch), batch)
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
                self.predict(self._batch_start(1), 1)
            self.warmed.add(("one", 1))
        times = []
        deadline = time.perf_counter() + seconds
        for _ in range(calls):
            if len(times) >= 5 and time.perf_counter() > deadline:
                break
            start = self._batch_start(1)
            started = time.perf_counter()
            self.predict(start, 1)
            times.append(time.perf_counter() - started)
        return {"seconds": times}


class OursRunner(Runner):
    def __init__(self, name, images, labels):
        super().__init__(images, labels)
        import numpy as np
        import models
        from nn.losses import SoftmaxCrossEntropy
        from nn.optim import Adam
        self.model = models.build_model(name, rng=np.random.default_rng(SEED))
        self.x = np.ascontiguousarray(self.model.to_network_input(images))   # network input
        self.criterion = SoftmaxCrossEntropy()
        self.optimizer = Adam(self.model.network.parameters(), lr=1e-3)
        self.flops = self.model.flops()

    def train_step(self, start, batch):
        network = self.model.network
        logits = network.forward(self.x[start:start + batch], training=True)
        self.criterion.forward(logits, self.labels[start:start + batch])
        network.backward(self.criterion.backward())
        self.optimizer.step()

    def predict(self, start, batch):
        return self.model.predict_proba(self.images[start:start + batch])

    def matmul(self, size, repeats):
        import numpy as np
        rng = np.random.default_rng(SEED)
        a = rng.random((size, size), dtype=np.float32)
        b = rng.random((size, size), dtype=np.float32)
        return _matmul_rates(lambda: a @ b, size, repeats)


def _matmul_rates(product, size, repeats):
    product()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        product()
        times.append(time.perf_counter() - started)
    flops = 2.0 * size ** 3
    return {"gflops": [flops / t / 1e9 for t in times], "size": size}


def torch_model(name):
    """The PyTorch twin of our reference model (same layers, same shapes, default init)."""
    import torch
    from torch import nn as tnn
    if name == "cnn":
        layers, in_channels = [], 1
        for out_channels, rate in zip((32, 64, 128), (0.25, 0.25, 0.4)):
            layers += [tnn.Conv2d(in_channels, out_channels, 3, padding=1), tnn.LeakyReLU(0.1),
                       tnn.MaxPool2d(2, ceil_mode=True), tnn.Dropout(rate)]
            in_channels = out_channels
        layers += [tnn.Flatten(), tnn.Linear(2048, 128), tnn.LeakyReLU(0.1), tnn.Dropout(0.3),
                   tnn.Linear(128, 10)]
        return tnn.Sequential(*layers)

    class LastStepLSTM(tnn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = tnn.LSTM(28, 64, batch_first=True)
            self.norm = tnn.BatchNorm1d(64)
            self.dense = tnn.Linear(64, 10)

        def forward(self, x):                  # x (N, 28, 28)
            hs, _ = self.lstm(x)               # (N, T, 64)
            return self.dense(self.norm(hs[:, -1]))

    torch.manual_seed(SEED)
    return LastStepLSTM()


class TorchRunner(Runner):
    def __init__(self, name, images, labels, threads):
        super().__init__(images, labels)
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(SEED)
        self.torch = torch
        self.net = torch_model(name)
        self.shape = (1, 28, 28) if name == "cnn" else (28, 28)   # one image, network layout
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
            return _matmul_rates(lambda: a @ b, size, repeats)


def _versions(side):
    import numpy
    info = {"python": platform.python_version(), "numpy": numpy.__version__}
    if side == "ours":
        import numba
        info["numba"] = numba.__version__
        info["numba_threading_layer"] = _threading_layer()
    else:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def _threading_layer():
    import numba
    try:
        return numba.threading_layer()
    except ValueError:   # no parallel kernel has run yet
        return None


def serve_task(args):
    """Answer JSON requests from stdin until 'quit': train / infer / latency / matmul."""
    reply = _protocol_stream()
    try:
        _bootstrap(args.root, args.threads, args.side)
        images, labels = _random_data()
        if args.side == "ours":
            runner = OursRunner(args.model, images, labels)
            runner.train_step(0, 2)            # compile, or load from Numba's cache, untimed
            runner.predict(0, 1)
            ready = {"ready": True, "flops": runner.flops}
        else:
            runner = TorchRunner(args.model, images, labels, args.threads)
            ready = {"ready": True}
        ready["versions"] = _versions(args.side)
    except Exception as error:                 # e.g. torch missing: the parent reports it
        reply.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")
        return 1
    reply.write(json.dumps(ready) + "\n")
    handlers = {"train": runner.train, "infer": runner.infer, "latency": runner.latency,
                "matmul": runner.matmul}
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        try:
            result = handlers[op](**request)
        except Exception as error:
            result = {"error": f"{type(error).__name__}: {error}"}
        reply.write(json.dumps(result) + "\n")
    return 0


def memory_task(args):
    """Peak memory of a process that runs ``--steps`` training steps; prints one JSON line."""
    reply = _protocol_stream()
    _bootstrap(args.root, args.threads, args.side)
    images, labels = _random_data()
    runner = (OursRunner(args.model, images, labels) if args.side == "ours"
              else TorchRunner(args.model, images, labels, args.threads))
    setup_kb = _memory_kb("VmRSS")
    for _ in range(args.steps):
        runner.train_step(runner._batch_start(args.batch), args.batch)
    reply.write(json.dumps({"setup_mb": setup_kb / 1024, "peak_mb": _memory_kb("VmHWM") / 1024,
                            "steps": args.steps, "batch": args.batch}) + "\n")
    return 0


def _dispatchers():
    """{'module.function': numba dispatcher} for every jitted function of nn and models."""
    from numba.core.dispatcher import Dispatcher
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == "nn" or module_name.startswith(("nn.", "models."))):
            continue
        for name, value in vars(module).items():
            if isinstance(value, Dispatcher) and getattr(value, "__module__", None) == module_name:
                found[f"{module_name}.{name}"] = value
    return found


def _compiled_kernels():
    """{kernel: signatures compiled in this process} (loaded from the cache ones excluded)."""
    return {name: sum(d.stats.cache_misses.values()) for name, d in _dispatchers().items()
            if sum(d.stats.cache_misses.values())}


def _cache_hits():
    return sum(sum(d.stats.cache_hits.values()) for d in _dispatchers().values())


def startup_task(args):
    """Imports, then warm-up (one training step and one prediction per model); one JSON line."""
    reply = _protocol_stream()
    _bootstrap(args.root, args.threads)
    import numpy as np
    import numba  # noqa: F401
    import models
    import nn
    from nn.losses import SoftmaxCrossEntropy
    from nn.optim import Adam
    imported = time.perf_counter()

    def training_step(model, batch):
        x = model.to_network_input(np.random.default_rng(SEED).random((batch, 28, 28), dtype=np.float32))
        criterion = SoftmaxCrossEntropy()
        optimizer = Adam(model.network.parameters(), lr=1e-3)
        criterion.forward(model.network.forward(x, training=True), np.arange(batch) % 10)
        model.network.backward(criterion.backward())
        optimizer.step()

    built = {}
    for name in args.models.split(","):
        built[name] = models.build_model(name, rng=np.random.default_rng(SEED))
        training_step(built[name], 2)
        built[name].predict_proba(np.zeros((1, 28, 28), np.float32))
    warmed = time.perf_counter()
    compiled = _compiled_kernels()
    for model in built.values():              # does the warm-up cover a real-sized step?
        training_step(model, 64)
    late = {k: v - compiled.get(k, 0) for k, v in _compiled_kernels().items()
            if v > compiled.get(k, 0)}
    kernels_dir = Path(nn.__file__).resolve().parent / "kernels"
    reply.write(json.dumps({
        "imports_s": imported - _T0, "warmup_s": warmed - imported,
        "compiled": sum(compiled.values()), "compiled_kernels": compiled,
        "cache_hits": _cache_hits(), "compiled_after_warmup": late,
        "nn_file": nn.__file__, "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
        "package_writable": os.access(kernels_dir, os.W_OK)}) + "\n")
    return 0


def worker_main(argv):
    parser = argparse.ArgumentParser(prog="bench.py --worker")
    parser.add_argument("task", choices=("serve", "memory", "startup"))
    parser.add_argument("--side", choices=("ours", "torch"), default="ours")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="cnn")
    parser.add_argument("--models", default=",".join(MODEL_CHOICES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--root", default=str(REPO), help="directory holding nn/ and models/")
    args = parser.parse_args(argv)
    task = {"serve": serve_task, "memory": memory_task, "startup": startup_task}[args.task]
    return task(args)


# ======================================================================================
# Orchestrator side: starts workers, interleaves their runs, prints and saves the numbers.
# ======================================================================================

class BenchError(Exception):
    pass


_LOG_START = time.perf_counter()


def log(message):
    print(f"[bench {time.perf_counter() - _LOG_START:5.1f} s] {message}", file=sys.stderr, flush=True)


def _tail(stream, lines=6):
    stream.seek(0)
    text = stream.read().strip().splitlines()
    return " | ".join(text[-lines:])


class Worker:
    """A ``bench.py --worker serve`` subprocess for one side, model and thread count."""

    def __init__(self, side, model, threads):
        self.side, self.model, self.threads = side, model, threads
        self.stderr = tempfile.TemporaryFile("w+")
        command = [sys.executable, str(SCRIPT), "--worker", "serve", "--side", side,
                   "--model", model, "--threads", str(threads)]
        self.process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                        bufsize=1)
        self.info = None

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise BenchError(f"{self.side} {self.model} worker exited ({self.process.returncode}): "
                             f"{_tail(self.stderr)}")
        return json.loads(line)

    def wait_ready(self):
        self.info = self._read()
        if "error" in self.info:
            raise BenchError(f"{self.side} {self.model} worker: {self.info['error']}")
        return self.info

    def request(self, op, **arguments):
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise BenchError(f"{self.side} {self.model} worker, {op}: {answer['error']}")
        return answer

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"op": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def start_workers(model, threads, peer):
    """{'ours': Worker, 'torch': Worker} started together, once both are ready.

    If the torch worker cannot start (PyTorch missing or broken), ``peer`` records why and the
    benchmark carries on with ours alone.
    """
    workers = {"ours": Worker("ours", model, threads)}
    if peer["available"]:
        workers["torch"] = Worker("torch", model, threads)
    try:
        workers["ours"].wait_ready()
    except BaseException:
        for worker in workers.values():
            worker.close()
        raise
    if "torch" in workers:
        try:
            workers["torch"].wait_ready()
        except BenchError as error:
            workers.pop("torch").close()
            peer.update(available=False, reason=str(error))
            log(f"PyTorch peer unavailable: {error}")
    return workers


def close_workers(workers):
    for worker in workers.values():
        worker.close()


# Idle time before each timed run, so the other side's worker threads (OpenMP's and OpenBLAS's
# spin for a while after their last task) are asleep and not competing for the same two cores.
SETTLE_SECONDS = 0.3


def interleaved(workers, repeats, op, **arguments):
    """{side: [answers]}: each repeat asks every side once, the order alternating (ABBA...)."""
    sides = list(workers)
    answers = {side: [] for side in sides}
    for repeat in range(repeats):
        for side in (sides if repeat % 2 == 0 else sides[::-1]):
            time.sleep(SETTLE_SECONDS)
            answers[side].append(workers[side].request(op, **arguments))
    return answers


def throughput(answers):
    """{side: {'median': images/s, 'runs': [images/s per repeat]}}."""
    out = {}
    for side, runs in answers.items():
        rates = [run["images"] / run["seconds"] for run in runs]
        out[side] = {"median": statistics.median(rates), "runs": rates}
    return out


def spread(result):
    """The larger max/min over the repeats of either side: how noisy the medians are."""
    runs = [side["runs"] for side in result.values() if isinstance(side, dict) and side.get("runs")]
    return max(max(r) / min(r) for r in runs) if runs else None


def ratio(result, key="median"):
    if "ours" in result and "torch" in result and result["torch"][key]:
        return result["ours"][key] / result["torch"][key]
    return None


def measure_model(model, settings, args, peer, results):
    """Training, inference, latency (and the sweep rows) of one model; fills ``results``."""
    record = results["models"].setdefault(model, {})
    thread_counts = [args.threads] + [t for t in SWEEP_THREADS if t != args.threads]
    if "sweep" in args.skip:
        thread_counts = [args.threads]
    for threads in thread_counts:
        log(f"{model}: starting workers ({threads} thread{'s' * (threads > 1)})")
        workers = start_workers(model, threads, peer)
        try:
            if threads == args.threads:
                record["flops_per_image"] = workers["ours"].info["flops"]
                for worker in workers.values():
                    results["versions"].update(
                        (k, v) for k, v in worker.info["versions"].items() if v is not None)
                if "matmul" not in results:
                    log(f"float32 matmul rate, {args.threads} threads")
                    results["matmul"] = {side: worker.request(
                        "matmul", size=settings.matmul_size, repeats=settings.matmul_repeats)
                        for side, worker in workers.items()}
                log(f"{model}: training, {settings.train_repeats} x {settings.train_seconds} s per side")
                record["train"] = throughput(interleaved(
                    workers, settings.train_repeats, "train", batch=args.batch,
                    seconds=settings.train_seconds))
                log(f"{model}: batch inference")
                record["infer"] = throughput(interleaved(
                    workers, settings.infer_repeats, "infer", batch=args.batch,
                    seconds=settings.infer_seconds))
                log(f"{model}: single-image latency")
                answers = interleaved(workers, settings.latency_chunks, "latency",
                                      calls=settings.latency_calls,
                                      seconds=settings.latency_chunk_seconds)
                record["latency"] = {side: {"median": statistics.median(
                    [t for chunk in chunks for t in chunk["seconds"]]),
                    "calls": sum(len(chunk["seconds"]) for chunk in chunks)}
                    for side, chunks in answers.items()}
            if "sweep" not in args.skip:
                for batch in SWEEP_BATCHES:
                    if threads == args.threads and batch == args.batch:
                        # the main measurement is this point, only longer: reuse it
                        record.setdefault("sweep", []).append(
                            {"batch": batch, "threads": threads, "from": "training",
                             **record["train"]})
                        continue
                    log(f"{model}: sweep, batch {batch}, {threads} thread{'s' * (threads > 1)}")
                    rates = throughput(interleaved(workers, settings.sweep_repeats, "train",
                                                   batch=batch, seconds=settings.sweep_seconds))
                    record.setdefault("sweep", []).append(
                        {"batch": batch, "threads": threads, **rates})
        finally:
            close_workers(workers)


# --- startup: compile / cache-load time ---

def run_startup(root, env, models, threads, wrap=()):
    """One ``--worker startup`` process: its JSON answer plus the wall time from launch to exit."""
    command = list(wrap) + [sys.executable, str(SCRIPT), "--worker", "startup", "--root", str(root),
                            "--models", models, "--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"startup worker failed ({done.returncode}): "
                         f"{' | '.join(done.stderr.strip().splitlines()[-4:])}")
    return {**json.loads(lines[-1]), "process_s": wall}


def _make_read_only(root, writable=False):
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755 if writable else 0o555)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644 if writable else 0o444)


def _count_files(directory):
    return sum(len(files) for _, _, files in os.walk(directory))


def read_only_check(models, threads):
    """Run a read-only copy of nn/ and models/ twice; the second run must compile nothing.

    Permission bits do not stop root, so as root the copy is also bind-mounted read-only in a
    private mount namespace of the child (``unshare -m``); the host's mounts are untouched.
    """
    temp = Path(tempfile.mkdtemp(prefix="bench-readonly-"))
    root, xdg = temp / "install", temp / "xdg"
    try:
        for package in ("nn", "models"):
            shutil.copytree(REPO / package, root / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        xdg.mkdir()
        _make_read_only(root)
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env["XDG_CACHE_HOME"] = str(xdg)
        wrap, method = (), "chmod a-w"
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("unshare"):
            wrap = ("unshare", "-m", "sh", "-c",
                    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"',
                    str(root))
            method = "chmod a-w + read-only bind mount (running as root)"
        try:
            runs = [run_startup(root, env, models, threads, wrap) for _ in range(2)]
        except BenchError:
            if not wrap:
                raise
            wrap, method = (), "chmod a-w only (could not mount read-only as root)"
            runs = [run_startup(root, env, models, threads) for _ in range(2)]
        first, second = runs
        from_copy = all(str(root) in run["nn_file"] for run in runs)
        cache_in_xdg = all((run["numba_cache_dir"] or "").startswith(str(xdg)) for run in runs)
        read_only = not any(run["package_writable"] for run in runs)
        cache_files = _count_files(xdg)
        if cache_in_xdg:
            where = "nn's user cache dir, $XDG_CACHE_HOME/cnn-vs-lstm-numpy/numba"
        elif cache_files:
            where = "Numba's own user-wide cache under $XDG_CACHE_HOME"
        else:
            where = "nowhere under $XDG_CACHE_HOME"
        if not from_copy:
            verdict = "inconclusive (imported the wrong nn)"
        elif not read_only:
            verdict = "inconclusive (the copy was writable)"
        elif first["compiled"] > 0 and second["compiled"] == 0:
            verdict = "ok"
        else:
            verdict = "FAILED"
        return {"method": method, "runs": runs, "cache_files": cache_files, "cache_location": where,
                "cache_in_nn_user_dir": cache_in_xdg, "package_read_only": read_only,
                "verdict": verdict}
    finally:
        _make_read_only(root, writable=True)
        shutil.rmtree(temp, ignore_errors=True)


def measure_startup(settings, args, results):
    models = ",".join(args.models)
    startup = results["startup"] = {}
    if not settings.quick:
        with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            log("startup: cold Numba cache")
            startup["cold"] = run_startup(REPO, env, models, args.threads)
            log("startup: warm Numba cache")
            startup["warm"] = run_startup(REPO, env, models, args.threads)
    log("startup: read-only install, two runs")
    check = startup["read_only"] = read_only_check(models, args.threads)
    if settings.quick:   # the read-only runs are a cold and a warm start too: save ~10 s
        startup["cold"], startup["warm"] = check["runs"]
        startup["cold_warm_from"] = "read-only install runs (--quick)"


# --- memory ---

def measure_memory(settings, args, peer, results):
    log(f"memory: {settings.memory_steps} training steps per process, all at once")
    sides = ["ours"] + (["torch"] if peer["available"] else [])
    processes = {}
    for model in args.models:
        for side in sides:
            command = [sys.executable, str(SCRIPT), "--worker", "memory", "--side", side,
                       "--model", model, "--threads", str(args.threads), "--batch",
                       str(args.batch), "--steps", str(settings.memory_steps)]
            processes[model, side] = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                                      stderr=subprocess.PIPE, text=True)
    try:
        for (model, side), process in processes.items():
            out, err = process.communicate()
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if process.returncode != 0 or not lines:
                raise BenchError(f"memory worker {side} {model} failed ({process.returncode}): "
                                 f"{' | '.join(err.strip().splitlines()[-4:])}")
            memory = results["models"].setdefault(model, {}).setdefault("memory", {})
            memory[side] = json.loads(lines[-1])
    finally:
        for process in processes.values():   # only left running if another one failed
            if process.poll() is None:
                process.kill()
                process.wait()


# --- report ---

def table(header, rows, left=1):
    """Aligned text table: the first ``left`` columns left-aligned, the others right-aligned."""
    cells = [list(map(str, header))] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(parts).rstrip())
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(value, digits=0, suffix=""):
    if value is None:
        return None
    return f"{value:,.{digits}f}{suffix}"


def _side(record, kind, side, key="median"):
    return record.get(kind, {}).get(side, {}).get(key)


def report(results, args, settings):
    peer = results["peer"]
    out = []
    versions = results["versions"]
    load = results["load_average"]
    machine = results["machine"]
    layer = versions.get("numba_threading_layer")
    out.append(f"bench: {machine['cpus']} CPUs ({machine['cpu_model']}), "
               f"Python {versions.get('python')}, NumPy {versions.get('numpy')}, "
               f"Numba {versions.get('numba')}{f' ({layer} threading layer)' if layer else ''}, "
               + (f"PyTorch {versions.get('torch')}" if peer["available"] else "PyTorch: missing"))
    out.append(f"batch {args.batch}, {args.threads} threads, Adam lr 1e-3, random images"
               f"{'; --quick: short runs, rough numbers' if settings.quick else ''}")
    busy = max(load.values()) >= machine["cpus"]
    out.append(f"load average {load['start']:.1f} at start, {load['end']:.1f} at end on "
               f"{machine['cpus']} CPUs" + ("  (busy machine: absolute numbers are noisy, "
                                            "ratios less so)" if busy else ""))
    if not peer["available"]:
        out.append(f"PyTorch peer missing ({peer['reason']}): measuring ours only")
    matmul = results.get("matmul", {})
    numpy_rate = statistics.median(matmul["ours"]["gflops"]) if "ours" in matmul else None
    if matmul:
        parts = [f"NumPy (BLAS) {numpy_rate:.1f}"]
        if "torch" in matmul:
            parts.append(f"PyTorch {statistics.median(matmul['torch']['gflops']):.1f}")
        out.append(f"float32 matmul {settings.matmul_size}x{settings.matmul_size}, {args.threads} "
                   f"threads: {', '.join(parts)} GFLOP/s (median of {settings.matmul_repeats})")

    models = results["models"]
    rows = []
    for name, record in models.items():
        if "train" not in record:
            continue
        r = ratio(record["train"])
        rows.append([name, fmt(_side(record, "train", "ours")), fmt(_side(record, "train", "torch")),
                     fmt(r, 2), None if r is None else ("met" if r >= 1 else "missed"),
                     fmt(spread(record["train"]), 2, "x")])
    if rows:
        out.append(f"\ntraining images/s (forward + backward + Adam, dropout on; median of "
                   f"{settings.train_repeats} x {settings.train_seconds} s per side, interleaved)")
        out.append(table(["model", "ours", "torch", "ours/torch", "bar >= 1", "max/min"], rows))
        out.append("  max/min: fastest over slowest repeat of the noisier side")
        if args.threads > 1 and any(f"batch {args.batch}" in point.split(" ", 1)[1]
                                    for point in oversubscribed(models)):
            out.append(f"  warning: at {args.threads} threads both sides ran at under half their "
                       f"1-thread speed - the CPUs are oversubscribed; see the last table")

    rows = []
    for name, record in models.items():
        if "infer" not in record:
            continue
        lat = record["latency"]
        ours_ms = lat["ours"]["median"] * 1e3
        torch_ms = lat["torch"]["median"] * 1e3 if "torch" in lat else None
        r_lat = ours_ms / torch_ms if torch_ms else None
        rows.append([name, fmt(_side(record, "infer", "ours")), fmt(_side(record, "infer", "torch")),
                     fmt(ratio(record["infer"]), 2), fmt(ours_ms, 3), fmt(torch_ms, 3),
                     fmt(r_lat, 2), None if r_lat is None else ("met" if r_lat <= 1 else "missed")])
    if rows:
        calls = min(side["calls"] for record in models.values()
                    for side in record.get("latency", {}).values())
        out.append(f"\nprediction: batch-{args.batch} images/s (eval, softmax; median of "
                   f"{settings.infer_repeats} x {settings.infer_seconds} s) and one-image latency "
                   f"(median of >= {calls} calls per side, interleaved)")
        out.append(table(["model", "ours img/s", "torch img/s", "ours/torch", "ours ms",
                          "torch ms", "ours/torch", "bar <= 1"], rows))

    rows = []
    for name, record in models.items():
        flops = record.get("flops_per_image")
        if not flops or "train" not in record:
            continue
        kinds = (("train b%d" % args.batch, "train", 3), ("infer b%d" % args.batch, "infer", 1))
        for label, kind, factor in kinds:
            ours = _side(record, kind, "ours")
            torch = _side(record, kind, "torch")
            g_ours = factor * flops * ours / 1e9
            g_torch = factor * flops * torch / 1e9 if torch else None
            rows.append([name, label, fmt(flops / 1e6, 2), fmt(g_ours, 2), fmt(g_torch, 2),
                         fmt(100 * g_ours / numpy_rate, 1, "%") if numpy_rate else None,
                         fmt(100 * g_torch / numpy_rate, 1, "%") if numpy_rate and g_torch else None])
        lat = record["latency"]
        g_ours = flops / lat["ours"]["median"] / 1e9
        g_torch = flops / lat["torch"]["median"] / 1e9 if "torch" in lat else None
        rows.append([name, "1 image", fmt(flops / 1e6, 2), fmt(g_ours, 2), fmt(g_torch, 2),
                     fmt(100 * g_ours / numpy_rate, 1, "%") if numpy_rate else None,
                     fmt(100 * g_torch / numpy_rate, 1, "%") if numpy_rate and g_torch else None])
    if rows:
        out.append("\nachieved GFLOP/s (training counts 3 x the forward FLOPs), and as a share of "
                   "the NumPy matmul rate")
        out.append(table(["model", "run", "MFLOP/img", "ours", "torch", "ours %mm", "torch %mm"],
                         rows, left=2))

    startup = results.get("startup")
    if startup:
        rows = []
        for label, key in (("cold cache", "cold"), ("warm cache", "warm")):
            run = startup.get(key)
            if run:
                rows.append([label, fmt(run["process_s"], 2), fmt(run["imports_s"], 2),
                             fmt(run["warmup_s"], 2), run["compiled"], run["cache_hits"],
                             sum(run["compiled_after_warmup"].values())])
        source = startup.get("cold_warm_from", "a fresh NUMBA_CACHE_DIR, then the same dir again")
        out.append(f"\nstartup of {', '.join(args.models)} (warm-up = one training step + one "
                   f"prediction per model; {source})")
        out.append(table(["run", "process s", "imports s", "warm-up s", "compiled", "cache hits",
                          "compiled later"], rows))
        check = startup["read_only"]
        first, second = check["runs"]
        out.append(f"  read-only install ({check['method']}; NUMBA_CACHE_DIR unset, XDG_CACHE_HOME "
                   f"a temp dir): {check['verdict']}")
        out.append(f"    run 1 compiled {first['compiled']} kernel signatures in {first['warmup_s']:.2f} s, "
                   f"run 2 compiled {second['compiled']} in {second['warmup_s']:.2f} s; cached in "
                   f"{check['cache_location']} ({check['cache_files']} files)")

    rows = []
    for name, record in models.items():
        memory = record.get("memory")
        if not memory:
            continue
        ours, torch = memory["ours"], memory.get("torch")
        rows.append([name, fmt(ours["setup_mb"]), fmt(ours["peak_mb"]),
                     fmt(torch["setup_mb"]) if torch else None, fmt(torch["peak_mb"]) if torch else None,
                     fmt(ours["peak_mb"] / torch["peak_mb"], 2) if torch else None])
    if rows:
        out.append(f"\nmemory, MB (resident before training, and peak over {settings.memory_steps} "
                   f"steps of batch {args.batch}; one process per row and side)")
        out.append(table(["model", "ours before", "ours peak", "torch before", "torch peak",
                          "peak ours/torch"], rows))

    rows = []
    for name, record in models.items():
        for point in sorted(record.get("sweep", []), key=lambda p: (p["threads"], p["batch"])):
            rows.append([name, point["threads"], point["batch"] if "from" not in point
                         else f"{point['batch']}*", fmt(point["ours"]["median"]),
                         fmt(point.get("torch", {}).get("median")), fmt(ratio(point), 2),
                         fmt(spread(point), 2, "x") if settings.sweep_repeats > 1 else None])
    if rows:
        out.append(f"\ntraining images/s by threads and batch size (median of "
                   f"{settings.sweep_repeats} x {settings.sweep_seconds} s per side, interleaved)")
        out.append(table(["model", "threads", "batch", "ours", "torch", "ours/torch", "max/min"],
                         rows, left=1))
        out.append("  * the training measurement above")
        collapsed = oversubscribed(models)
        if collapsed:
            out.append(f"  note: more threads more than halved both sides' speed ({', '.join(collapsed)}):")
            out.append("  the CPUs were oversubscribed (other processes held cores) and threads waited on "
                       "each other; trust the 1-thread rows")
    return "\n".join(out)


def oversubscribed(models):
    """'model batch B' for every sweep point where more threads more than halved both sides' speed.

    On a machine whose cores are taken by other processes a multi-threaded step waits for a
    descheduled thread at every barrier, and throughput collapses; that is not the code's speed.
    """
    found = []
    for name, record in models.items():
        points = {(p["threads"], p["batch"]): p for p in record.get("sweep", [])}
        for (threads, batch), point in sorted(points.items()):
            single = points.get((1, batch))
            if threads == 1 or single is None:
                continue
            sides = [side for side in ("ours", "torch") if side in point and side in single]
            if sides and all(point[side]["median"] < 0.5 * single[side]["median"] for side in sides):
                found.append(f"{name} batch {batch}")
    return found


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write every number to this JSON file")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test (< 1 min)")
    parser.add_argument("--models", default="cnn,lstm", help="comma-separated: cnn, lstm")
    parser.add_argument("--threads", type=int, default=2, help="threads per side (default 2)")
    parser.add_argument("--batch", type=int, default=64, help="training batch size (default 64)")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(SECTIONS)}")
    parser.add_argument("--no-torch", action="store_true", help="measure ours only")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODEL_CHOICES]
    if not args.models or unknown:
        parser.error(f"--models: unknown model {', '.join(unknown) or '(none)'}; "
                     f"choose from {', '.join(MODEL_CHOICES)}")
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.skip - set(SECTIONS):
        parser.error(f"--skip: unknown section {', '.join(sorted(args.skip - set(SECTIONS)))}; "
                     f"choose from {', '.join(SECTIONS)}")
    if args.threads < 1 or args.batch < 1 or POOL % args.batch:
        parser.error(f"--threads must be >= 1 and --batch a divisor of {POOL}")
    if args.json:
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            parser.error(f"--json: directory {parent} does not exist")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1:])
    args = parse_args(argv)
    settings = Settings(args.quick)
    if args.no_torch:
        peer = {"available": False, "reason": "--no-torch"}
    elif importlib.util.find_spec("torch") is None:
        peer = {"available": False, "reason": "torch is not installed"}
    else:
        peer = {"available": True, "reason": None}
    results = {"settings": settings.as_dict(), "batch": args.batch, "threads": args.threads,
               "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                           "platform": platform.platform()},
               "load_average": {"start": _load()}, "peer": peer, "versions": {}, "models": {}}
    started = time.perf_counter()
    try:
        if "startup" not in args.skip:
            measure_startup(settings, args, results)
        for model in args.models:
            measure_model(model, settings, args, peer, results)
        if "memory" not in args.skip:
            measure_memory(settings, args, peer, results)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    results["load_average"]["end"] = _load()
    results["wall_seconds"] = time.perf_counter() - started
    print(report(results, args, settings))
    print(f"\n({results['wall_seconds']:.0f} s in all)")
    if args.json:
        path = Path(args.json)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(temporary, path)
        print(f"numbers written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
