"""SciPy's BLAS for compiled code (``scipy.linalg.cython_blas``), loaded without the rest of
``scipy.linalg``.

Our kernels call SciPy's ``sgemm`` / ``dgemm`` (:mod:`nn.kernels.blas`), and threadpoolctl must
see that BLAS loaded to limit its threads (:mod:`nn.threads`).  ``import scipy.linalg.cython_blas``
first runs ``scipy.linalg/__init__``, which imports all of SciPy's linear algebra: 0.17 s of a
0.5 s warm start of the canvas, for nothing it uses.  The extension module itself loads in ~2 ms
and imports nothing of SciPy's: :func:`load_cython_blas` loads it from its file with Python's
own import machinery, under its own name in ``sys.modules``, so a later ``from scipy.linalg import
cython_blas`` (or Numba's ``np.dot``) gets this same module and SciPy works as usual.
"""
import importlib
import importlib.machinery
import importlib.util
import os
import sys

MODULE = "scipy.linalg.cython_blas"


def load_cython_blas():
    """The module ``scipy.linalg.cython_blas``, loaded (once) without ``scipy.linalg`` if that is
    not imported yet.  Raises ImportError without SciPy."""
    module = sys.modules.get(MODULE)
    if module is not None:
        return module
    if "scipy.linalg" not in sys.modules:
        try:
            module = _load_alone()
        except ImportError:
            module = None
        if module is not None:
            return module
    return importlib.import_module(MODULE)      # the usual way, with all of scipy.linalg


def _load_alone():
    """Load the extension module from scipy/linalg/ by itself; None if it is not a plain file
    there (a zipped or unusual install: the usual import then)."""
    scipy_spec = importlib.util.find_spec("scipy")
    if scipy_spec is None or not scipy_spec.submodule_search_locations:
        raise ImportError("SciPy is not installed (needed for BLAS: pip install scipy)")
    for package_directory in scipy_spec.submodule_search_locations:
        finder = importlib.machinery.FileFinder(
            os.path.join(package_directory, "linalg"),
            (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES))
        spec = finder.find_spec(MODULE)
        if spec is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[MODULE]
            raise
        return module
    return None
