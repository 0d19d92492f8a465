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
"""
import numpy as np

from models.base import build_model
from nn.losses import softmax

BLANK_ROWS = tuple(range(0, 57, 4))   # k = 0, 4, ..., 56 appended rows
GRADIENT_IMAGES = 1000                # test images the gradient norms are averaged over
MEMORY_BAR = 0.90                     # "falls below 90 %" in the generated sentences


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


def hidden_gradient_norms(model, images, labels, batch_size=500):
    """g_t = mean over the images of ||dL_n/dh_t||_2 for t = 1..T, shape (T,), float64.

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
    total, count = None, 0
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
    return total / count


def append_blank_rows(images, count):
    """(N, H, W) -> (N, H + count, W): ``count`` rows of zeros below every image."""
    if count <= 0:
        return images
    n, _, width = images.shape
    return np.concatenate([images, np.zeros((n, count, width), images.dtype)], axis=1)


def blank_row_accuracy(model, images, labels, counts=BLANK_ROWS, batch_size=500):
    """Accuracy after k appended blank rows, for each k in ``counts``: a list of floats.

    The images go through the model's own input convention (``spec.to_input``) but not through
    ``Model.check_images``, which insists on the training image size.
    """
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels)
    result = []
    for count in counts:
        correct = 0
        for start in range(0, len(images), batch_size):
            x = model.spec.to_input(append_blank_rows(images[start:start + batch_size], count))
            logits = model.network.forward(np.ascontiguousarray(x), training=False)
            correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
        result.append(correct / len(images))
    return result


def measure(models, images, labels, counts=BLANK_ROWS, gradient_images=GRADIENT_IMAGES, log=None):
    """Both measurements for every model that takes part (see :func:`takes_part`).

    Returns ``{"models": [names], "steps": T, "gradient_images": n, "gradients": {name:
    {"initial": [T], "trained": [T], "seed": s}}, "blank_rows": {"counts": [...], "accuracy":
    {name: [...]}}, "images": N}``.
    """
    names = [name for name, model in models.items() if takes_part(model)]
    grad_images, grad_labels = images[:gradient_images], labels[:gradient_images]
    gradients, accuracy = {}, {}
    for name in names:
        model = models[name]
        fresh = initial_model(model)
        gradients[name] = {"trained": hidden_gradient_norms(model, grad_images, grad_labels).tolist(),
                           "initial": hidden_gradient_norms(fresh, grad_images, grad_labels).tolist(),
                           "seed": int((model.extra or {}).get("seed", 0))}
        accuracy[name] = blank_row_accuracy(model, images, labels, counts)
        if log:
            log(f"  memory: {model.title} done")
    steps = len(next(iter(gradients.values()))["trained"]) if gradients else 0
    return {"models": names, "steps": steps, "gradient_images": len(grad_images),
            "gradients": gradients, "images": len(images),
            "blank_rows": {"counts": list(counts), "accuracy": accuracy}}


# --- words generated from the numbers ---

def _factor(ratio):
    """A factor to two significant digits: 6.4 -> '6.4', 513214 -> '510,000'."""
    rounded = float(f"{ratio:.2g}")
    return f"{rounded:,.0f}" if rounded >= 10 else f"{rounded:.1f}"


def _times(ratio, than=""):
    """A ratio g_T / g_1 in words: '3,400x smaller', '2.1x larger' (+ ``than``), or 'about as
    large' (+ ``than`` with 'as' for 'than') within 10 %."""
    if 1 / 1.1 < ratio < 1.1:
        return "about as large" + (" as" + than[len("than"):] if than else "")
    return (f"{_factor(ratio)}x smaller" if ratio >= 1 else f"{_factor(1 / ratio)}x larger") + (
        " " + than if than else "")


def describe_gradients(result, titles):
    """Sentences on the gradient norms: for each model the ratio g_T / g_1, trained and initial."""
    text = []
    steps = result["steps"]
    ratios = {}
    for name in result["models"]:
        g = result["gradients"][name]
        trained, initial = g["trained"], g["initial"]
        ratios[name] = trained[-1] / trained[0] if trained[0] > 0 else float("inf")
        start = initial[-1] / initial[0] if initial[0] > 0 else float("inf")
        text.append(
            f"{titles[name]}: after training, the gradient reaching the state after row 1 is "
            f"{_times(ratios[name], f'than at row {steps}')} (mean ||dL/dh_1|| = {trained[0]:.2e}, "
            f"||dL/dh_{steps}|| = {trained[-1]:.2e}); freshly initialised (seed {g['seed']}) it "
            f"was {_times(start)} ({initial[0]:.2e} vs {initial[-1]:.2e}).")
    if len(ratios) >= 2:
        order = sorted(ratios, key=lambda name: ratios[name])
        best, worst = order[0], order[-1]
        text.append(
            f"Of the trained models, the {titles[best]} keeps the most gradient over the {steps} "
            f"steps and the {titles[worst]} the least: the {titles[worst]}'s ratio is "
            f"{_factor(ratios[worst] / ratios[best])}x the {titles[best]}'s.")
        initial = {name: result["gradients"][name]["initial"][-1] / result["gradients"][name]["initial"][0]
                   for name in result["models"]}
        order = sorted(initial, key=lambda name: initial[name])
        text.append(
            f"Freshly initialised, the {titles[order[-1]]} loses the most gradient between row {steps} "
            f"and row 1 ({_factor(initial[order[-1]])}x) and the {titles[order[0]]} the least "
            f"({_factor(initial[order[0]])}x).")
    return text


def describe_blank_rows(result, titles, bar=MEMORY_BAR):
    """Sentences on the blank-row accuracy: where each model falls below ``bar``, and the mean."""
    counts = result["blank_rows"]["counts"]
    accuracy = result["blank_rows"]["accuracy"]
    names = result["models"]
    bar_words = f"{bar * 100:.0f} %"
    text = []
    falls = {}
    for name in names:
        acc = accuracy[name]
        below = next((i for i, a in enumerate(acc) if a < bar), None)
        falls[name] = counts[below] if below is not None else None
        if below is None:
            text.append(f"The {titles[name]} stays at or above {bar_words} all the way to "
                        f"{counts[-1]} blank rows ({acc[0] * 100:.1f} % with none, "
                        f"{acc[-1] * 100:.1f} % with {counts[-1]}).")
        elif below == 0:
            text.append(f"The {titles[name]} is below {bar_words} even with no blank rows "
                        f"({acc[0] * 100:.1f} %).")
        elif below == 1:
            text.append(f"The {titles[name]} scores {acc[0] * 100:.1f} % with no blank rows and falls "
                        f"below {bar_words} already at {counts[1]} ({acc[1] * 100:.1f} %); after "
                        f"{counts[-1]} it scores {acc[-1] * 100:.1f} %.")
        else:
            text.append(f"The {titles[name]} scores {acc[0] * 100:.1f} % with no blank rows and "
                        f"{acc[below - 1] * 100:.1f} % after {counts[below - 1]}, then falls below "
                        f"{bar_words} at {counts[below]} blank rows ({acc[below] * 100:.1f} %); "
                        f"after {counts[-1]} it scores {acc[-1] * 100:.1f} %.")
    later = [i for i, k in enumerate(counts) if k > 0]
    if len(names) >= 2 and later:
        mean = {name: float(np.mean([accuracy[name][i] for i in later])) for name in names}
        order = sorted(names, key=lambda name: -mean[name])
        text.append(f"Averaged over k = {counts[later[0]]}..{counts[later[-1]]}: " + ", ".join(
            f"{titles[name]} {mean[name] * 100:.1f} %" for name in order)
            + f"; the {titles[order[0]]} holds the digit best and the {titles[order[-1]]} worst.")
    return text
