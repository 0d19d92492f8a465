"""Does the LSTM remember longer?  Two measurements for the recurrent models of the comparison.

The original app's README says the LSTM "solves the problem of long-term dependency" that a
standard (tanh) RNN has.  Two ways to look at it, both with the kit's own code:

gradient norms   how strongly the loss depends on the hidden state after each row:
                     g_t = mean over images n of ||dL_n / dh_t||_2,   t = 1..T
                 where L_n is image n's cross-entropy and h_t (H,) the recurrent layer's state
                 after reading row t.  The backward pass computes every dL/dh_t anyway (the
                 total of the gradient from the output and the one handed back by step t + 1);
                 the layer returns them from ``backward_with_hidden_grads``.  With the last state
                 feeding the classifier, g_T is where the gradient enters, and g_t / g_T for
                 small t is how much of it is left after travelling back T - t steps: a vanishing
                 gradient is a ratio many orders of magnitude below 1.  Measured in inference
                 mode (BatchNorm uses its running statistics), so every image's gradient is its
                 own and the mean over images is well defined.

blank rows       accuracy when k rows of black pixels are appended below the digit: the model
                 reads the 28 rows of the digit, then k empty rows, and answers from its last
                 state.  Whatever it knows of the digit must be held in its state for k more
                 steps of input that carries no information.  The models never saw such inputs
                 in training (they always answered after row 28).

The report's words, tables and figures for both are in
:mod:`models.analysis.compare.sections.memory`.
"""
import numpy as np

from models.base import build_model
from nn.losses import softmax

BLANK_ROWS = tuple(range(0, 57, 4))   # k = 0, 4, ..., 56 appended rows
GRADIENT_IMAGES = 1000                # test images the gradient norms are averaged over


def recurrent_layer(model):
    """The first layer of ``model`` whose backward can return dL/dh_t, or None."""
    for layer in model.network.layers:
        if hasattr(layer, "backward_with_hidden_grads"):
            return layer
    return None


def takes_part(model):
    """True for a model declared recurrent whose recurrent layer records hidden gradients."""
    return bool(model.spec.recurrent) and recurrent_layer(model) is not None


def initial_model(model, seed=None):
    """The same model freshly initialised, as the trainer starts it.

    The trainer draws the initial weights from ``np.random.default_rng([seed, 1])``
    (models/training/trainer.py), with the seed it records in the weights file; ``seed`` overrides it.
    """
    if seed is None:
        seed = (getattr(model, "extra", None) or {}).get("seed", 0)
    return build_model(model.name, rng=np.random.default_rng([int(seed), 1]),
                       num_classes=model.num_classes, image_shape=model.image_shape, **model.options)


def hidden_gradient_norms(model, images, labels, batch_size=500, per_image=False):
    """g_t = mean over the images of ||dL_n/dh_t||_2 for t = 1..T, shape (T,), float64; with
    ``per_image`` every image's own ||dL_n/dh_t||, shape (N, T) (for tests between models).

    L_n is image n's own cross-entropy: the upstream gradient is softmax(logits) - onehot per
    row (the gradient of the *sum* of the per-image losses), so in inference mode row n of
    dL/dh_t is exactly dL_n/dh_t.
    """
    layer = recurrent_layer(model)
    if layer is None:
        raise ValueError(f"the {model.title} has no recurrent layer that records dL/dh_t")
    labels = np.asarray(labels)
    steps = model.network.steps()
    above = steps[steps.index(layer) + 1:]          # the layers between h_t and the logits
    total, count, rows = None, 0, []
    for start in range(0, len(images), batch_size):
        x = model.to_network_input(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        logits = model.network.forward(x, training=False)
        dlogits = softmax(logits)
        dlogits[np.arange(len(y)), y] -= 1                           # dL_n/dlogits_n
        dout = dlogits
        for step in reversed(above):
            dout = step.backward(dout)
        _, hidden_grads = layer.backward_with_hidden_grads(dout)      # (T, N, H) dL/dh_t
        norms = np.linalg.norm(hidden_grads.astype(np.float64), axis=2)   # (T, N)
        total = norms.sum(axis=1) if total is None else total + norms.sum(axis=1)
        count += len(y)
        if per_image:
            rows.append(norms.T)
    return np.concatenate(rows) if per_image else total / count


def append_blank_rows(images, count):
    """(N, H, W) -> (N, H + count, W): ``count`` rows of zeros below every image."""
    if count <= 0:
        return images
    n, _, width = images.shape
    return np.concatenate([images, np.zeros((n, count, width), images.dtype)], axis=1)


def blank_row_correct(model, images, labels, counts=BLANK_ROWS, batch_size=500):
    """Which images the model reads right after k appended blank rows: bool (len(counts), N).

    The images go through the model's own input convention (``spec.to_input``) but not through
    ``Model.check_images``, which insists on the training image size.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    result = np.zeros((len(counts), len(images)), dtype=bool)
    for row, count in enumerate(counts):
        for start in range(0, len(images), batch_size):
            x = model.spec.to_input(append_blank_rows(images[start:start + batch_size], count))
            logits = model.network.forward(np.ascontiguousarray(x), training=False)
            result[row, start:start + batch_size] = logits.argmax(axis=1) == labels[start:start + batch_size]
    return result


def blank_row_accuracy(model, images, labels, counts=BLANK_ROWS, batch_size=500):
    """Accuracy after k appended blank rows, for each k in ``counts``: a list of floats."""
    return [float(row.mean()) for row in blank_row_correct(model, images, labels, counts, batch_size)]


def measure(models, images, labels, counts=BLANK_ROWS, gradient_images=GRADIENT_IMAGES, log=None):
    """Both measurements for every model that takes part (see :func:`takes_part`).

    Returns ``{"models": [names], "steps": T, "gradient_images": n, "gradients": {name:
    {"initial": [T], "trained": [T], "seed": s}}, "blank_rows": {"counts": [...], "accuracy":
    {name: [...]}}, "images": N, "per_image": {name: {"trained": (n, T), "initial": (n, T),
    "blank_rows": (len(counts), N) bool}}}``; ``per_image`` holds each image's own numbers, for
    the tests between models.
    """
    names = [name for name, model in models.items() if takes_part(model)]
    grad_images, grad_labels = images[:gradient_images], labels[:gradient_images]
    gradients, accuracy, per_image = {}, {}, {}
    for name in names:
        model = models[name]
        fresh = initial_model(model)
        trained = hidden_gradient_norms(model, grad_images, grad_labels, per_image=True)
        initial = hidden_gradient_norms(fresh, grad_images, grad_labels, per_image=True)
        gradients[name] = {"trained": trained.mean(axis=0).tolist(), "initial": initial.mean(axis=0).tolist(),
                           "seed": int((model.extra or {}).get("seed", 0))}
        correct = blank_row_correct(model, images, labels, counts)
        accuracy[name] = [float(row.mean()) for row in correct]
        per_image[name] = {"trained": trained, "initial": initial, "blank_rows": correct}
        if log:
            log(f"  memory: {model.title} done")
    steps = len(next(iter(gradients.values()))["trained"]) if gradients else 0
    return {"models": names, "steps": steps, "gradient_images": len(grad_images),
            "gradients": gradients, "images": len(images),
            "blank_rows": {"counts": list(counts), "accuracy": accuracy}, "per_image": per_image}

