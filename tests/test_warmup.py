"""warm_up() reaches every kernel, and the Numba cache works from a read-only install."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import importlib
import pkgutil

import nn.kernels
from nn import ctc
from kit.images import augment
from nn.warmup import warm_up

REPO = Path(__file__).resolve().parent.parent
# Every kernel module, found rather than listed, so a new one is covered without editing this.
KERNEL_MODULES = [importlib.import_module(f"nn.kernels.{info.name}")
                  for info in pkgutil.iter_modules(nn.kernels.__path__) if info.name != "reference"]


def public_kernels():
    return {f"{module.__name__}.{name}": value for module in KERNEL_MODULES
            for name, value in vars(module).items()
            if isinstance(value, CPUDispatcher) and not name.startswith("_")}


def test_warm_up_compiles_every_public_kernel():
    kernels = public_kernels()
    assert len(kernels) >= 12
    # The exact LSTM step is the float64 (gradient check) one; CTC's kernels are warmed by the
    # models trained with it, not by every program (nn.ctc.warm_up).
    warm_up((np.float32, np.float64), extra=(augment.warm_up, ctc.warm_up))
    missing = [name for name, kernel in kernels.items() if not kernel.signatures]
    assert missing == []


# Run in a fresh interpreter from a copy of the packages; os.access is patched to report the copy
# as read-only (the tests may run as root, for whom every directory is writable).
CHILD = r"""
import json, os, sys
copy = sys.argv[1]
real_access = os.access
os.access = lambda path, mode, **kw: False if str(path).startswith(copy) and mode & os.W_OK else real_access(path, mode, **kw)
sys.path.insert(0, copy)
import nn
from nn.warmup import warm_up
from numba.core.registry import CPUDispatcher
import importlib, pkgutil
import nn.kernels
from kit.images import augment
modules = [importlib.import_module(f"nn.kernels.{info.name}")
           for info in pkgutil.iter_modules(nn.kernels.__path__) if info.name != "reference"]
os.access = real_access
warm_up(extra=(augment.warm_up,))
stats = {"hits": 0, "misses": 0}
for module in modules:
    for value in vars(module).values():
        if isinstance(value, CPUDispatcher) and value.signatures:
            stats["hits"] += sum(value.stats.cache_hits.values())
            stats["misses"] += sum(value.stats.cache_misses.values())
print(json.dumps({"cache_dir": os.environ.get("NUMBA_CACHE_DIR"), "file": nn.__file__, **stats}))
"""


@pytest.mark.slow
def test_read_only_install_caches_in_the_user_directory(tmp_path):
    copy = tmp_path / "install"
    shutil.copytree(REPO / "nn", copy / "nn", ignore=shutil.ignore_patterns("__pycache__"))
    user_cache = tmp_path / "xdg"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(user_cache)}

    def run():
        result = subprocess.run([sys.executable, "-c", CHILD, str(copy)], env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    first = run()
    assert first["file"].startswith(str(copy))
    assert first["cache_dir"] == str(user_cache / "cnn-vs-lstm-numpy" / "numba")
    assert first["misses"] > 0  # a cold cache: everything compiled ...
    assert any(user_cache.rglob("*.nbi"))  # ... and written to the user cache
    assert not any((copy / "nn").rglob("*.nbi"))  # nothing written into the package
    second = run()
    assert second["misses"] == 0 and second["hits"] > 0  # a second process compiles nothing


# A fresh interpreter (signatures compiled by other tests would hide a gap): warm_up for one
# model's network, then a training step and a prediction at real sizes on 1 and 2 threads; prints
# the kernel signatures the step needed that the warm-up had not run, and every warmed kernel.
STEP_CHILD = r"""
import json, sys
import nn, importlib, pkgutil
import numpy as np
import nn.kernels
from numba.core.registry import CPUDispatcher
from kit.images import augment
from models import build_model
from nn.optim import Adam
from nn.step import TrainingStep
from nn.warmup import warm_up
modules = [importlib.import_module(f"nn.kernels.{info.name}")
           for info in pkgutil.iter_modules(nn.kernels.__path__) if info.name != "reference"] + [augment]
def signatures():
    return {f"{module.__name__}.{name}{signature}" for module in modules
            for name, value in vars(module).items() if isinstance(value, CPUDispatcher)
            for signature in value.signatures}
model = build_model(sys.argv[1], rng=np.random.default_rng(0))
warm_up(extra=(augment.warm_up,), network=model.network)
warmed = signatures()
step = TrainingStep(model.network, Adam(model.network.parameters(), lr=1e-3))
rng = np.random.default_rng(0)
x, labels = model.to_network_input(rng.random((64, 28, 28), dtype=np.float32)), rng.integers(0, 10, 64)
for threads in (1, 2):
    with nn.set_threads(threads):
        step(x, labels)
        model.predict_proba(rng.random((3, 28, 28), dtype=np.float32))
print(json.dumps({"missed": sorted(signatures() - warmed), "warmed": sorted(warmed)}))
"""


@pytest.mark.parametrize("name", ["cnn", "lstm", "mlp"])
def test_warm_up_for_a_network_covers_its_training_step_and_nothing_else(name):
    result = subprocess.run([sys.executable, "-c", STEP_CHILD, name], capture_output=True, text=True,
                            timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["missed"] == []
    warmed_modules = {signature.split(".")[2] for signature in found["warmed"]}
    others = {"cnn": {"lstm", "gru", "rnn"}, "lstm": {"conv", "fused", "winograd", "gru", "rnn"},
              "mlp": {"conv", "fused", "winograd", "lstm", "gru", "rnn"}}[name]
    assert warmed_modules & others == set(), warmed_modules
    assert "optim" in warmed_modules and "affine" in warmed_modules     # Adam; augmentation's warp
