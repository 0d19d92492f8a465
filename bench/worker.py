"""The worker processes of the benchmark, and the protocol the orchestrator talks to them with.

BLAS and Numba fix their thread counts when they load, so every measurement runs in a worker
subprocess (``bench.py --worker TASK ...``) started with its thread count; ours and PyTorch never
share a process (their thread pools would compete).  Tasks:

serve    answer JSON requests on stdin, one line each, with one JSON line on stdout:
         {"op": "train"|"infer", "batch": B, "seconds": S} -> {"images", "seconds", "steps"}
         {"op": "latency", "calls": C, "seconds": S}      -> {"seconds": [per call]}
         {"op": "matmul", "size": M, "repeats": R}        -> {"gflops": [...], "size": M}
         {"op": "quit"}; the first line is {"ready": true, "versions": {...}} (ours: + "flops")
         or {"error": "..."}; a failed request answers {"error": "..."}.
memory   peak resident memory of ``--steps`` training steps: one JSON line.
startup  imports, then one training step and one prediction per model: one JSON line of
         times and compiled kernels.
export   write each model's layer configs, weights and input shape to ``--out DIR/<name>.npz``:
         the PyTorch side builds its twin from that file and so never loads our library.

Anything a worker prints besides its JSON replies goes to stderr.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "bench.py"
# Every shipped model has a PyTorch twin (tests/support/torch_twins.py).  Listed here rather
# than read from models.registry so the orchestrator loads none of our library (tests/test_bench.py
# checks the two agree).
MODEL_CHOICES = ("cnn", "lstm", "gru", "rnn", "mlp")
SEED = 0


class BenchError(Exception):
    pass


# ======================================================================================
# Worker side: runs in a subprocess whose thread counts were fixed before NumPy loaded.
# ======================================================================================

def bootstrap(root, threads, side="ours"):
    """Fix thread counts before NumPy is imported; for our side, make ``root``'s nn/models
    importable and import nn first (its BLAS/OpenMP settings).  The torch side gets only the
    thread counts: nn's environment settings are ours, not the peer's."""
    if side == "torch":
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
        return
    sys.path.insert(0, str(root))
    import nn
    nn.configure_threads(threads)   # before NumPy: OpenBLAS and OpenMP spin times, the thread count


def protocol_stream():
    """The real stdout, for JSON replies only; anything else printed goes to stderr."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def memory_kb(field):
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


def versions(side):
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


def make_runner(args):
    from bench import runners
    images, labels = runners.random_data()
    if args.side == "ours":
        return runners.OursRunner(args.model, images, labels)
    if not args.weights:
        raise BenchError("the torch side needs --weights (a file written by --worker export)")
    return runners.TorchRunner(args.weights, images, labels, args.threads)


def serve_task(args):
    """Answer JSON requests from stdin until 'quit': train / infer / latency / matmul."""
    reply = protocol_stream()
    try:
        bootstrap(args.root, args.threads, args.side)
        runner = make_runner(args)
        if args.side == "ours":
            runner.train_step(0, 2)            # compile, or load from Numba's cache, untimed
            runner.predict(0, 1)
            ready = {"ready": True, "flops": runner.flops}
        else:
            ready = {"ready": True}
        ready["versions"] = versions(args.side)
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
    reply = protocol_stream()
    bootstrap(args.root, args.threads, args.side)
    runner = make_runner(args)
    setup_kb = memory_kb("VmRSS")
    for _ in range(args.steps):
        runner.train_step(runner.batch_start(args.batch), args.batch)
    reply.write(json.dumps({"setup_mb": setup_kb / 1024, "peak_mb": memory_kb("VmHWM") / 1024,
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


def startup_task(args, process_start):
    """Imports, then warm-up (one training step and one prediction per model); one JSON line.
    ``process_start``: perf_counter() at the top of bench.py, where the imports began."""
    reply = protocol_stream()
    bootstrap(args.root, args.threads)
    import numpy as np
    import numba  # noqa: F401
    import models
    import nn
    from nn.optim import Adam
    from nn.step import TrainingStep
    imported = time.perf_counter()

    def training_step(model, batch):
        rng = np.random.default_rng(SEED)
        x = model.to_network_input(rng.random((batch, 28, 28), dtype=np.float32))
        network = model.network
        TrainingStep(network, Adam(network.parameters(), lr=1e-3))(x, np.arange(batch) % 10)

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
        "imports_s": imported - process_start, "warmup_s": warmed - imported,
        "compiled": sum(compiled.values()), "compiled_kernels": compiled,
        "cache_hits": _cache_hits(), "compiled_after_warmup": late,
        "nn_file": nn.__file__, "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
        "package_writable": os.access(kernels_dir, os.W_OK)}) + "\n")
    return 0


def export_task(args):
    """Write ``--out DIR/<model>.npz`` for each of ``--models``: what the PyTorch side needs to
    build the same network with the same initial weights as our side (built alike, from SEED)."""
    reply = protocol_stream()
    bootstrap(args.root, 1)
    import numpy as np
    import models
    written = {}
    for name in args.models.split(","):
        model = models.build_model(name, rng=np.random.default_rng(SEED))
        one_image = np.zeros((1, 28, 28), np.float32)
        header = {"model": name, "layers": model.network.config()["layers"],
                  "input_shape": list(model.to_network_input(one_image).shape[1:])}
        path = Path(args.out) / f"{name}.npz"
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez(temporary, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                 **{f"state.{key}": value for key, value in model.network.state().items()})
        os.replace(temporary, path)
        written[name] = str(path)
    reply.write(json.dumps(written) + "\n")
    return 0


def read_export(path):
    """(header dict, state {key: array}) of a file written by the export task."""
    import numpy as np
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes().decode())
        state = {key[len("state."):]: data[key] for key in data.files if key.startswith("state.")}
    return header, state


def worker_main(argv, process_start):
    parser = argparse.ArgumentParser(prog="bench.py --worker")
    parser.add_argument("task", choices=("serve", "memory", "startup", "export"))
    parser.add_argument("--side", choices=("ours", "torch"), default="ours")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="cnn")
    parser.add_argument("--models", default=",".join(MODEL_CHOICES))
    parser.add_argument("--weights", help="torch side: the model file written by 'export'")
    parser.add_argument("--out", help="export: the directory to write <model>.npz into")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--root", default=str(REPO), help="directory holding nn/ and models/")
    args = parser.parse_args(argv)
    if args.task == "startup":
        return startup_task(args, process_start)
    return {"serve": serve_task, "memory": memory_task, "export": export_task}[args.task](args)


# ======================================================================================
# Orchestrator side: the handles on the worker processes.
# ======================================================================================

_LOG_START = time.perf_counter()


def log(message):
    print(f"[bench {time.perf_counter() - _LOG_START:5.1f} s] {message}", file=sys.stderr, flush=True)


def _tail(stream, lines=6):
    stream.seek(0)
    text = stream.read().strip().splitlines()
    return " | ".join(text[-lines:])


def worker_command(task, *options):
    return [sys.executable, str(SCRIPT), "--worker", task, *map(str, options)]


def side_options(side, model, exports):
    """The flags that pick a side and its model (the torch side: the exported file)."""
    options = ["--side", side, "--model", model]
    if side == "torch":
        options += ["--weights", exports[model]]
    return options


class Worker:
    """A ``bench.py --worker serve`` subprocess for one side, model and thread count."""

    def __init__(self, side, model, threads, exports):
        self.side, self.model, self.threads = side, model, threads
        self.stderr = tempfile.TemporaryFile("w+")
        command = worker_command("serve", *side_options(side, model, exports),
                                 "--threads", threads)
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


def start_workers(model, threads, peer, exports):
    """{'ours': Worker, 'torch': Worker} started together, once both are ready.

    If the torch worker cannot start (PyTorch missing or broken), ``peer`` records why and the
    benchmark carries on with ours alone.  ``exports``: {model: file} for the torch side.
    """
    workers = {"ours": Worker("ours", model, threads, exports)}
    if peer["available"]:
        workers["torch"] = Worker("torch", model, threads, exports)
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


def run_once(command, cwd=REPO, env=None, what="worker"):
    """Run a one-answer worker to the end: (its last JSON line, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchError(f"{what} failed ({done.returncode}): "
                         f"{' | '.join(done.stderr.strip().splitlines()[-4:])}")
    return json.loads(lines[-1]), wall


def export_models(models, directory):
    """{model: path of its exported file} (see export_task), written by one worker process."""
    answer, _ = run_once(worker_command("export", "--models", ",".join(models), "--out", directory),
                         what="export worker")
    return answer


def run_startup(root, env, models, threads, wrap=()):
    """One ``--worker startup`` process: its JSON answer plus the wall time from launch to exit."""
    command = list(wrap) + worker_command("startup", "--root", root, "--models", models,
                                          "--threads", threads)
    answer, wall = run_once(command, cwd=root, env=env, what="startup worker")
    return {**answer, "process_s": wall}


def start_memory_worker(side, model, threads, batch, steps, exports):
    command = worker_command("memory", *side_options(side, model, exports), "--threads", threads,
                             "--batch", batch, "--steps", steps)
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
