"""Why a model answered as it did: which pixels of the 28x28 input drove its answer.

Two views, for any model of the kit (NumPy and the kit's own backward pass; no pygame):

**Saliency** (Simonyan et al., 2014): the gradient of the answer's log-probability with respect
to the input image,

    S = d log p_c / d x,   log p_c = z_c - logsumexp(z),   d log p_c / d z = onehot(c) - p   (C,)

pushed back through the network by ``network.backward`` in inference mode (BatchNorm with its
running statistics, dropout off), then reshaped from the network's input layout to (28, 28).
S[i, j] > 0: brightening pixel (i, j) a little would make the model surer of c.  The first layer
of a model is built with ``need_input_grad=False`` (training never needs the image's gradient);
:func:`input_gradient` asks for it in its one backward pass (``need_input_grad=True``), leaving
the layer as it was built.

**Occlusion sensitivity** (Zeiler & Fergus, 2014): the drop in p_c when a ``patch x patch``
square of the image is blanked (set to 0), for squares every ``stride`` pixels; each pixel gets
the mean drop of the squares covering it.  No gradients: it asks the model directly what
happens without that part of the digit.
"""
import numpy as np

from nn.losses import softmax


def first_input_grad_layer(network):
    """The first layer of ``network`` that can skip its input gradient (``need_input_grad``), or
    None: the one :func:`input_gradient` asks for it."""
    for layer in network.layers:
        if hasattr(layer, "need_input_grad"):
            return layer
    return None


def input_gradient(model, image, target=None):
    """The saliency map d log p_target / d image of one image.

    Parameters
    ----------
    model : models.Model
    image : numpy.ndarray
        (H, W) in [0, 1]; float32 for the app, float64 for a gradient check on a float64 copy.
    target : int, optional
        The class; default: the model's answer (the argmax).

    Returns
    -------
    gradient : numpy.ndarray
        (H, W), the dtype of the network's computation.
    target : int
    log_probability : float
        log p_target at ``image``.
    """
    x = model.spec.to_input(np.asarray(image)[None])          # (1, ...) the network's layout
    logits = model.network.forward(x, training=False)         # (1, C)
    probabilities = softmax(logits)[0]                        # (C,)
    if target is None:
        target = int(np.argmax(probabilities))
    dlogits = -probabilities[None, :]                         # d log p_c / dz = onehot(c) - p
    dlogits[0, target] += 1
    dx = model.network.backward(dlogits.astype(logits.dtype), need_input_grad=True)
    log_probability = float(np.log(probabilities[target]))
    return np.asarray(dx).reshape(np.shape(image)), target, log_probability


def occlusion_sensitivity(model, image, target=None, patch=4, stride=2):
    """The drop in p_target when each ``patch x patch`` square is blanked, per pixel.

    Parameters
    ----------
    model : models.Model
    image : numpy.ndarray
        float32 (H, W) in [0, 1].
    target : int, optional
        The class; default: the model's answer.
    patch, stride : int
        Square side and the step between squares (the last square touches the border).

    Returns
    -------
    drops : numpy.ndarray
        float32 (H, W): for each pixel, the mean of p(image) - p(image with the square blanked)
        over the squares covering it.  Positive where the ink mattered for the answer.
    target : int
    """
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape
    base = model.predict_proba(image[None])[0]
    if target is None:
        target = int(np.argmax(base))
    tops = sorted(set(list(range(0, height - patch + 1, stride)) + [height - patch]))
    lefts = sorted(set(list(range(0, width - patch + 1, stride)) + [width - patch]))
    corners = [(top, left) for top in tops for left in lefts]
    blanked = np.repeat(image[None], len(corners), axis=0)   # (P, H, W)
    for k, (top, left) in enumerate(corners):
        blanked[k, top:top + patch, left:left + patch] = 0
    drops = base[target] - model.predict_proba(blanked)[:, target]   # (P,)
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.float64)
    for drop, (top, left) in zip(drops, corners):
        total[top:top + patch, left:left + patch] += drop
        count[top:top + patch, left:left + patch] += 1
    return (total / count).astype(np.float32), target


def explain(model, image, target=None):
    """Both views of one model's answer for one float32 (H, W) image.

    Returns a dict: 'target' (int), 'probability' (float), 'saliency' (H, W) float32,
    'occlusion' (H, W) float32.
    """
    gradient, target, log_p = input_gradient(model, np.asarray(image, dtype=np.float32), target)
    occlusion, _ = occlusion_sensitivity(model, image, target)
    return {"target": target, "probability": float(np.exp(log_p)),
            "saliency": gradient.astype(np.float32), "occlusion": occlusion}


def float64_copy(model):
    """A copy of ``model`` computing in float64 (its parameters and buffers cast), for checks.

    Built from the model's own layer configuration, so the original is untouched.
    """
    from models.base import Model
    from nn.layers import build_layers
    network = build_layers(model.network.config()["layers"], rng=np.random.default_rng(0))
    for layer, original in zip(network.layers, model.network.layers):
        for store, source in ((layer.params, original.params), (layer.buffers, original.buffers)):
            for name in list(store):
                store[name] = source[name].astype(np.float64)
    copy = Model(model.spec, network, model.options, model.num_classes, model.image_shape)
    return copy
