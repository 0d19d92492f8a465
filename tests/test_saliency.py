"""models/analysis/saliency.py: the saliency map against central finite differences of the log-probability,
and occlusion sensitivity against blanking a square by hand."""
import copy

import numpy as np
import pytest

from models import build_model, registry
from models.analysis.saliency import explain, first_input_grad_layer, float64_copy, input_gradient, occlusion_sensitivity

PIXELS = [(5, 5), (14, 14), (20, 9), (10, 22), (27, 27), (0, 3)]


def tie_free_image(seed=0):
    """Every pixel strictly inside (0, 1) and distinct: no max-pool ties, no LeakyReLU kinks
    at exactly zero, so the log-probability is differentiable where it is checked."""
    return np.random.default_rng(seed).uniform(0.05, 0.95, (28, 28))


@pytest.mark.parametrize("name", registry.names())
def test_saliency_matches_central_differences_of_the_log_probability(name):
    model = float64_copy(build_model(name, rng=np.random.default_rng(1)))
    image = tie_free_image()
    gradient, target, log_p = input_gradient(model, image)
    assert gradient.shape == (28, 28) and gradient.dtype == np.float64
    assert np.isclose(log_p, np.log(model.predict_proba(image[None].astype(np.float32))[0, target]),
                      atol=1e-4)
    scale = np.abs(gradient).max()
    assert scale > 0
    eps = 1e-5
    for i, j in PIXELS:
        up, down = image.copy(), image.copy()
        up[i, j] += eps
        down[i, j] -= eps
        numeric = (input_gradient(model, up, target)[2] - input_gradient(model, down, target)[2]) / (2 * eps)
        assert abs(numeric - gradient[i, j]) <= 1e-5 * abs(numeric) + 1e-6 * scale, (name, i, j, numeric,
                                                                                       gradient[i, j])


@pytest.mark.parametrize("name", ["cnn", "lstm"])
def test_the_first_layer_is_left_as_it_was_built(name):
    """The image's gradient is asked for in the one backward pass (need_input_grad=True), not
    by switching the layer: it still skips its input gradient, and a training step afterwards
    gives the same bits as on an untouched copy."""
    model = build_model(name, rng=np.random.default_rng(2))
    untouched = copy.deepcopy(model)
    first = first_input_grad_layer(model.network)
    assert first.need_input_grad is False
    gradient, _, _ = input_gradient(model, tie_free_image().astype(np.float32))
    assert first.need_input_grad is False and gradient.dtype == np.float32
    assert np.abs(gradient).max() > 0
    assert model.network.config() == untouched.network.config()
    x = model.to_network_input(tie_free_image(1)[None].astype(np.float32).repeat(3, axis=0))
    for network in (model.network, untouched.network):
        y = network.forward(x, training=False)
        assert network.backward(np.ones_like(y)) is None      # still skipped
    ours, theirs = ({key: layer.grads[name] for key, layer, name in network.parameters()}
                    for network in (model.network, untouched.network))
    assert ours.keys() == theirs.keys()
    for key in ours:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_occlusion_is_the_probability_drop_of_blanking_each_square():
    model = build_model("mlp", rng=np.random.default_rng(3))
    image = tie_free_image(4).astype(np.float32)
    drops, target = occlusion_sensitivity(model, image, patch=4, stride=4)
    base = model.predict_proba(image[None])[0, target]
    # stride 4 = patch: the squares tile the image, each pixel covered by exactly one of them.
    for top, left in [(0, 0), (12, 8), (24, 24)]:
        blanked = image.copy()
        blanked[top:top + 4, left:left + 4] = 0
        expected = base - model.predict_proba(blanked[None])[0, target]
        np.testing.assert_allclose(drops[top:top + 4, left:left + 4], expected, atol=1e-6)
    assert np.abs(drops).max() > 1e-6


def test_explain_gives_both_maps_for_the_models_answer():
    model = build_model("lstm", rng=np.random.default_rng(5))
    image = tie_free_image(6).astype(np.float32)
    result = explain(model, image)
    p = model.predict_proba(image[None])[0]
    assert result["target"] == int(np.argmax(p))
    assert result["probability"] == pytest.approx(float(p.max()), rel=1e-5)
    assert result["saliency"].shape == result["occlusion"].shape == (28, 28)
    assert result["saliency"].dtype == np.float32
