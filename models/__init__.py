"""The reference CNN and LSTM of the original app, and the stable interface to trained models.

    model = models.load_model("weights/cnn.npz")
    probabilities = model.predict_proba(images)   # images: float32 (N, 28, 28) in [0, 1]
    labels = model.predict(images)                 # (N,) int64

draw.py, the benchmarks, evaluation and any user script go through this interface.
"""
import nn  # noqa: F401  (first: it sets up BLAS threads and the Numba cache before NumPy loads)
from models.base import Model, build_model, load_model, MODEL_NAMES

__all__ = ["Model", "build_model", "load_model", "MODEL_NAMES"]
