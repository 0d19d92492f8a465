"""Numba's on-disk cache of nn's kernels: never stale, and cheap to load.

Numba checks a cached kernel against its own source file only, so a kernel compiled into another
(blas.gemm into the LSTM's sequence kernel) used to survive a change of the file it came from:
after an update in place the old machine code was loaded and ran.  nn.kernels.caching makes every
kernel's cache entry depend on all of nn/kernels' sources.  These tests run a copy of the nn
package in a child process, with the cache in the package (in-tree) or in NUMBA_CACHE_DIR, change
one file and check that the kernel that calls into it computes the new result.

And a warm start pays only for loading: importing the BLAS kernels compiles or loads no C
callback and does not import the whole of scipy.linalg (0.17 s), only its cython_blas.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent

CALLEE = """from numba import njit


@njit(cache=True)
def offset():
    return {value}
"""

CALLER = """from numba import njit

from nn.kernels import probe_callee


@njit(cache=True)
def shifted(x):
    return x + probe_callee.offset()
"""

RUN_CALLER = "from nn.kernels import probe_caller; print(probe_caller.shifted(40))"


def _package_copy(root):
    """A copy of the nn package under ``root`` with two probe kernels: probe_caller.shifted(x)
    returns x + probe_callee.offset(), offset() returning 1."""
    shutil.copytree(REPOSITORY / "nn", root / "nn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    kernels = root / "nn" / "kernels"
    (kernels / "probe_callee.py").write_text(CALLEE.format(value=1))
    (kernels / "probe_caller.py").write_text(CALLER)
    return kernels


def _run(code, root, cache_dir):
    env = {key: value for key, value in os.environ.items()
           if key not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(root)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("where", ["in-tree", "NUMBA_CACHE_DIR"])
def test_a_kernel_is_recompiled_when_a_kernel_it_calls_changes(tmp_path, where):
    root = tmp_path / "package"
    kernels = _package_copy(root)
    cache_dir = tmp_path / "numba-cache" if where == "NUMBA_CACHE_DIR" else None
    assert _run(RUN_CALLER, root, cache_dir) == "41"
    cached = list((cache_dir or kernels / "__pycache__").rglob("probe_caller.shifted-*.nbi"))
    assert cached, "the caller was not cached, so the test would not test the cache"
    assert _run(RUN_CALLER, root, cache_dir) == "41"      # from the cache

    (kernels / "probe_callee.py").write_text(CALLEE.format(value=2))   # the caller's file is untouched
    assert _run(RUN_CALLER, root, cache_dir) == "42"


def test_the_cache_stamp_covers_every_kernel_source(tmp_path):
    from nn.kernels import caching
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "a.py").write_text("x = 1\n")
    (kernels / "b.py").write_text("y = 2\n")
    first = caching.kernel_sources_hash(kernels)
    assert caching.kernel_sources_hash(kernels) == first
    (kernels / "b.py").write_text("y = 3\n")
    assert caching.kernel_sources_hash(kernels) != first
    (kernels / "b.py").write_text("y = 2\n")
    assert caching.kernel_sources_hash(kernels) == first
    (kernels / "c.py").write_text("")
    assert caching.kernel_sources_hash(kernels) != first


def test_nns_kernels_use_the_locator_that_adds_the_sources_hash():
    from nn.kernels import blas, caching, lstm
    for dispatcher in (blas.gemm, blas.gemm_general, lstm.lstm_sequence_forward):
        locator = dispatcher._cache._impl.locator
        assert isinstance(locator, caching.KernelSourcesLocator)
        stamp = locator.get_source_stamp()
        assert stamp[1] == caching.kernel_sources_hash()


def last_json_line(code):
    """Run ``python -c code`` in a fresh process from this checkout; its last output line, parsed."""
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_blas_kernels_is_light():
    code = ("import gc, sys, nn\nfrom nn.kernels import blas\n"
            "callbacks = sum(type(o).__module__ == 'numba.core.ccallback' for o in gc.get_objects())\n"
            "import numpy as np\n"
            "a = np.arange(6, dtype=np.float32).reshape(2, 3); b = np.ones((3, 2), np.float32)\n"
            "c = np.empty((2, 2), np.float32); blas.gemm(a, b, c)\n"
            "import json; print(json.dumps({'cfuncs': callbacks,\n"
            "    'scipy.linalg': 'scipy.linalg' in sys.modules, 'c': c.tolist()}))")
    seen = last_json_line(code)
    assert seen == {"cfuncs": 0, "scipy.linalg": False, "c": [[3.0, 3.0], [12.0, 12.0]]}


def test_scipy_linalg_works_after_cython_blas_was_loaded_alone():
    code = ("import sys\nfrom nn.scipy_blas import load_cython_blas\nfirst = load_cython_blas()\n"
            "assert 'scipy.linalg' not in sys.modules\n"
            "import numpy as np, scipy.linalg\nfrom scipy.linalg import cython_blas\n"
            "assert cython_blas is first\n"
            "a = np.array([[2.0, 1.0], [1.0, 3.0]])\n"
            "print(scipy.linalg.solve(a, np.array([3.0, 5.0])).round(12).tolist())")
    assert last_json_line(code) == [0.8, 1.4]
