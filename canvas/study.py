"""What the study views show, computed with NumPy only (no pygame): testable without a window.

- :func:`cnn_feature_maps`: the CNN's activations after each convolution's LeakyReLU, i.e. the
  maps the next layer reads: (32, 28, 28), (64, 14, 14), (128, 7, 7) for the reference CNN.
- :func:`lstm_row_by_row`: the LSTM's answer after each of the 28 rows it reads.  The model is
  LSTM -> BatchNorm -> Dense on the *last* hidden state h_28; applying the same head (BatchNorm in
  inference mode, Dense) to every h_t gives the answer the model would give had the image ended
  after row t.
"""
import numpy as np

from nn.layers import Conv2D, LeakyReLU, LSTM, ReLU
from nn.layers.lstm import lstm_forward
from nn.losses import softmax


def cnn_feature_maps(model, image):
    """The CNN's feature maps for one image.

    Parameters
    ----------
    model : models.Model
        The CNN (its network a Sequential starting with Conv2D layers).
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


def lstm_row_by_row(model, image):
    """The LSTM's class probabilities after reading rows 1..t, for t = 1..28.

    Parameters
    ----------
    model : models.Model
        The LSTM model: LSTM layer first, then a head (BatchNorm, Dense) on the hidden state.
    image : numpy.ndarray
        float32 (28, 28) in [0, 1]; row t is timestep t.

    Returns
    -------
    numpy.ndarray
        (28, 10): row t holds softmax(head(h_{t+1})); the last row is the model's answer.
    """
    lstm, head = model.network.layers[0], model.network.layers[1:]
    if not isinstance(lstm, LSTM) or lstm.return_sequences:
        raise ValueError("expected a model whose first layer is an LSTM returning its last state")
    x = model.to_network_input(image[None])                  # (1, T, D)
    hs, _ = lstm_forward(x, lstm.params["w_ih"], lstm.params["w_hh"], lstm.params["b"])
    h = hs[:, 0, :]                                          # (T, H): every hidden state
    for layer in head:
        h = layer.forward(h, training=False)                 # (T, 10) logits at the end
    return softmax(h)
