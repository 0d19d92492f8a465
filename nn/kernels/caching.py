"""Numba's on-disk cache for nn's kernels, invalidated by a change to any of their sources.

Numba checks a cached function against its own source file only (a hash of it, kept in the
function's index file).  A kernel that calls another compiles the callee into its own machine
code: ``lstm_sequence_forward`` holds a copy of ``blas._gemm`` and the name of the BLAS routine
it calls.  After ``blas.py`` changes and ``lstm.py`` does not (an update in place, a git pull),
Numba would load the old LSTM machine code, still doing what the old ``blas.py`` did.

Here every kernel of this package gets, as its source stamp, Numba's own stamp of its file and
a hash of every ``.py`` file of ``nn/kernels``: any change there makes each kernel compile once
more, and no kernel runs code of an older version.  The cache stays where Numba puts it (the
package's ``__pycache__`` or ``NUMBA_CACHE_DIR``, see :mod:`nn`); only the check changes.

How: Numba picks a cache locator per function, trying the classes of
``CacheImpl._locator_classes`` in turn; :func:`install` (run when :mod:`nn.kernels` is imported,
before any kernel is decorated) puts :class:`KernelSourcesLocator` first.  It answers only for
files of this directory, wrapping the locator Numba would have chosen.  With
``NUMBA_CACHE_LOCATOR_CLASSES`` set, Numba uses that list instead and this check is off.
"""
import hashlib
import os

from numba.core import caching

KERNELS_DIRECTORY = os.path.dirname(os.path.realpath(__file__))

# Numba >= 0.62 names these without the underscore.
_CacheImpl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")


def kernel_sources_hash(directory=KERNELS_DIRECTORY):
    """SHA-256 (hex) of every ``.py`` file in ``directory``: names and contents, in name order.
    None if one cannot be read (a zipped or frozen install: Numba's own check then applies)."""
    digest = hashlib.sha256()
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".py"))
        for name in names:
            with open(os.path.join(directory, name), "rb") as source:
                content = source.read()
            digest.update(f"{name}\0{len(content)}\0".encode())
            digest.update(content)
    except OSError:
        return None
    return digest.hexdigest()


_sources_hash = None   # computed once per process: the sources do not change under a running kernel


def _current_sources_hash():
    global _sources_hash
    if _sources_hash is None:
        _sources_hash = kernel_sources_hash() or ""
    return _sources_hash or None


class KernelSourcesLocator(caching._CacheLocator):
    """The locator Numba would pick for a kernel of nn/kernels (``inner``), with the hash of all
    of nn/kernels' sources added to the source stamp."""

    def __init__(self, inner, sources_hash):
        self._inner = inner
        self._sources_hash = sources_hash

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return (self._inner.get_source_stamp(), self._sources_hash)

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.realpath(py_file)) != KERNELS_DIRECTORY:
            return None
        sources_hash = _current_sources_hash()
        if sources_hash is None:
            return None
        for locator_class in _CacheImpl._locator_classes:
            if locator_class is cls:
                continue
            inner = locator_class.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner, sources_hash)
        return None


def install():
    """Make Numba try :class:`KernelSourcesLocator` first (once; only kernels decorated from now
    on are affected)."""
    if KernelSourcesLocator not in _CacheImpl._locator_classes:
        _CacheImpl._locator_classes.insert(0, KernelSourcesLocator)
