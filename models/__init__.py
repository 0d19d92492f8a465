"""The models (one file each, found by :mod:`models.registry`), and the stable interface to them.

    model = models.load_model("cnn")                 # shipped weights, by name
    probabilities = model.predict_proba(images)      # images: float32 (N, 28, 28) in [0, 1]
    labels = model.predict(images)                   # (N,) int64

draw.py, the benchmarks, evaluation and any user script go through this interface.

The package's own modules are the model files (``cnn.py`` ... one per model), ``registry.py``,
``base.py`` and ``inputs.py``; they may import ``kit`` and ``nn`` only.  Above them, in
subpackages: :mod:`models.training`, :mod:`models.analysis`, :mod:`models.commands` (each says
what it may import), and ``train.py``, ``evaluate.py``, ``compare.py``, ``export.py``: thin entry
modules that keep ``python -m models.train`` and its siblings working.

May import (the model files and registry): ``kit`` and ``nn``.  Importing the package itself is
light (no NumPy): the names below load on first use.
"""
_EXPORTS = {"Model": "models.base", "build_model": "models.base", "load_model": "models.base",
            "shipped_weights": "models.base", "ImageError": "models.base",
            "ModelSpec": "models.registry", "Recipe": "models.registry"}

__all__ = sorted(_EXPORTS) + ["registry"]


def __getattr__(name):
    import importlib
    if name == "registry":
        return importlib.import_module("models.registry")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
