"""What the study views show, computed with NumPy only (no pygame): testable without a window.

- :func:`feature_maps`: a convolutional model's activations after each convolution's
  LeakyReLU, i.e. the maps the next layer reads: (32, 28, 28), (64, 14, 14), (128, 7, 7) for the
  reference CNN.  :func:`has_conv_layers` says which models have any.
- :func:`row_by_row`: a recurrent model's answer after each of the 28 rows it reads.  The model
  is RNN/LSTM/GRU -> BatchNorm -> Dense on the *last* hidden state h_28; running the recurrent
  layer for every hidden state (``forward(x, return_sequences=True)``, an option of that one
  call) and applying the same head (BatchNorm in inference mode, Dense) to every h_t gives the
  answer the model would give had the image ended after row t.  :func:`reads_rows` says which
  models can be shown so.
"""
import numpy as np

from nn.layers import GRU, LSTM, Conv2D, LeakyReLU, ReLU, SimpleRNN
from nn.losses import softmax

RECURRENT_LAYERS = (LSTM, GRU, SimpleRNN)


def has_conv_layers(model):
    """True if ``model``'s network contains a Conv2D layer (the F view can show its maps)."""
    return any(isinstance(layer, Conv2D) for layer in model.network.layers)


def reads_rows(model):
    """True if ``model`` is recurrent (``spec.recurrent``) and its first layer an LSTM, GRU or
    SimpleRNN returning its last state (the R view can show it reading)."""
    first = model.network.layers[0]
    return bool(model.spec.recurrent) and isinstance(first, RECURRENT_LAYERS) and not first.return_sequences


def feature_maps(model, image):
    """A convolutional model's feature maps for one image.

    Parameters
    ----------
    model : models.Model
        A model whose network has Conv2D layers (e.g. the CNN).
    image : numpy.ndarray
        float32 (28, 28) in [0, 1].

    Returns
    -------
    list of (str, numpy.ndarray)
        For each conv layer, a label such as ``'conv1 + LeakyReLU'`` and its activations after the
        activation that follows it, (C, H, W).
    """
    x = model.to_network_input(image[None])                  # (1, 1, 28, 28)
    maps, count, previous = [], 0, None
    for layer in model.network.layers:
        x = layer.forward(x, training=False)
        if isinstance(layer, Conv2D):
            count += 1
        if isinstance(previous, Conv2D) and isinstance(layer, (LeakyReLU, ReLU)) and x.ndim == 4:
            maps.append((f"conv{count} + {type(layer).__name__}", x[0].copy()))
        previous = layer
        if x.ndim != 4:                                      # flattened: no more maps
            break
    return maps


def normalise_tiles(maps):
    """(C, H, W) -> float32 (C, H, W) in [0, 1], each channel min-max scaled on its own.

    A constant channel (a filter that stays silent on this digit) becomes all zeros.
    """
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def row_by_row(model, image):
    """A recurrent model's class probabilities after reading rows 1..t, for t = 1..T.

    Parameters
    ----------
    model : models.Model
        A recurrent model: an LSTM, GRU or SimpleRNN layer first (last state), then a head
        (e.g. BatchNorm, Dense) on the hidden state.
    image : numpy.ndarray
        float32 (28, 28) in [0, 1]; row t is timestep t.

    Returns
    -------
    numpy.ndarray
        (T, C): row t holds softmax(head(h_{t+1})); the last row is the model's answer.
    """
    if not reads_rows(model):
        raise ValueError(f"{model.title}: expected a recurrent model whose first layer is an LSTM, "
                         "GRU or SimpleRNN returning its last state")
    recurrent, head = model.network.layers[0], model.network.layers[1:]
    x = model.to_network_input(image[None])                  # (1, T, D)
    h = recurrent.forward(x, training=False, return_sequences=True)[0]   # (T, H): every h_t
    for layer in head:
        h = layer.forward(h, training=False)                 # (T, C) logits at the end
    return softmax(h)
