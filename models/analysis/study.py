"""What the study views show, computed with NumPy only (no pygame): testable without a window.

- :func:`feature_maps`: a convolutional model's activations after each convolution's
  LeakyReLU, i.e. the maps the next layer reads: (32, 28, 28), (64, 14, 14), (128, 7, 7) for the
  reference CNN.  :func:`has_conv_layers` says which models have any.
- :func:`row_by_row`: a recurrent model's answer after each of the 28 rows it reads.  The model
  is RNN/LSTM/GRU -> BatchNorm -> Dense on the *last* hidden state h_28; running the recurrent
  layer for every hidden state (``forward(x, return_sequences=True)``, an option of that one
  call) and applying the same head (BatchNorm in inference mode, Dense) to every h_t gives the
  answer the model would give had the image ended after row t.  The recurrent layer need not be
  the first: layers before it that treat each row on its own (Dense, BatchNorm, activations,
  Dropout) or read the rows in order (a recurrent layer returning every state) keep "after row
  t" meaning rows 1..t.  :func:`reads_rows` says which models can be shown so,
  :func:`why_not_row_by_row` why another cannot (a bidirectional or convolutional layer first).
"""
import numpy as np

from nn.layers import (GRU, LSTM, BatchNorm, Bidirectional, Conv2D, Dense, Dropout, LeakyReLU,
                       ReLU, SimpleRNN)
from nn.losses import softmax

RECURRENT_LAYERS = (LSTM, GRU, SimpleRNN)
ROW_BY_ROW_LAYERS = (Dense, BatchNorm, LeakyReLU, ReLU, Dropout)   # each row's features alone


def has_conv_layers(model):
    """True if ``model``'s network contains a Conv2D layer (the F view can show its maps)."""
    return any(isinstance(layer, Conv2D) for layer in model.network.layers)


def last_state_layer(model):
    """(index of the recurrent layer whose last state the rest of ``model`` reads, None), or
    (None, why the model cannot be shown reading row by row: a phrase)."""
    if not model.spec.recurrent:
        return None, f"the {model.title} does not read the image row by row"
    layers = model.network.layers
    ends = [k for k, layer in enumerate(layers)
            if isinstance(layer, RECURRENT_LAYERS + (Bidirectional,)) and not layer.return_sequences]
    if not ends:
        return None, f"the {model.title} has no LSTM, GRU or RNN layer ending in its last state"
    for layer in layers[:ends[0] + 1]:
        if isinstance(layer, Bidirectional):
            return None, (f"the {model.title} reads the rows in both directions: its answer after "
                          "row t already depends on the rows below it")
        if not isinstance(layer, RECURRENT_LAYERS + ROW_BY_ROW_LAYERS):
            return None, (f"the {model.title}'s {type(layer).__name__} layer mixes rows before "
                          "its recurrent layer reads them")
    return ends[0], None


def reads_rows(model):
    """True if ``model`` is recurrent (``spec.recurrent``), has an LSTM, GRU or SimpleRNN
    returning its last state, and every layer before it reads the rows in order or each on its
    own (the R view can show it reading)."""
    return last_state_layer(model)[0] is not None


def why_not_row_by_row(model):
    """Why the R view cannot show ``model`` (a phrase), or None if it can."""
    return last_state_layer(model)[1]


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
        A recurrent model (:func:`reads_rows`): an LSTM, GRU or SimpleRNN layer (last state),
        possibly after layers that read the rows in order, then a head (e.g. BatchNorm, Dense)
        on its hidden state.
    image : numpy.ndarray
        float32 (28, 28) in [0, 1]; row t is timestep t.

    Returns
    -------
    numpy.ndarray
        (T, C): row t holds softmax(head(h_{t+1})); the last row is the model's answer.
    """
    index, why_not = last_state_layer(model)
    if index is None:
        raise ValueError(f"cannot show it reading row by row: {why_not}")
    layers = model.network.layers
    x = model.to_network_input(image[None])                  # (1, T, D)
    for layer in layers[:index]:                              # each keeps (1, T, .) in row order
        x = layer.forward(x, training=False)
    h = layers[index].forward(x, training=False, return_sequences=True)[0]   # (T, H): every h_t
    head = layers[index + 1:]
    for layer in head:
        h = layer.forward(h, training=False)                 # (T, C) logits at the end
    return softmax(h)
