"""nn/layers/registry.py: layer classes are found by module and name (issue 17, item 6).

A user's own ``class Dense(Layer)`` - defined here, in a test module, as one would in a notebook -
used to replace the library's Dense in the bare-name registry, and ``load_model("cnn")`` failed
with "Dense.__init__() got an unexpected keyword argument 'in_features'".  Now the library keeps
its bare names, the user's class is namespaced under its module, and weights files written with
either keep loading.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nn.layers
from models import build_model, load_model, registry as models_registry
from models.base import shipped_weights
from nn.errors import WeightsError
from nn.layers import Layer, Sequential, build_layers, registry
from nn.serialize import read_weights, save_weights

IMAGES = np.random.default_rng(17).random((24, 28, 28)).astype(np.float32)


class Dense(Layer):
    """A user's own dense layer with the library's name and other arguments: y = x w (no bias).
    x (N, inputs) -> y (N, units)."""

    uses_rng = True

    def __init__(self, units, inputs, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.units, self.inputs = units, inputs
        self.params["w"] = rng.standard_normal((inputs, units)).astype(dtype)

    def forward(self, x, training=False):
        self.cache = x
        return x @ self.params["w"]

    def backward(self, dout):
        self.grads["w"] = self.cache.T @ dout          # dL/dw = x^T dy
        return dout @ self.params["w"].T               # dL/dx = dy w^T

    def config(self):
        return {"units": self.units, "inputs": self.inputs}


# Run in a fresh interpreter, where no user layer exists: the logits the shipped CNN gives there,
# and (when given a model file and a weights file) the logits of that file's model.  On the
# thread count of this process, so that no kernel's split between threads can change a bit (the
# kit's give the same bits on one and two threads, tests/test_speed_kernels.py; this test need
# not rely on it).
FRESH_PROCESS = textwrap.dedent("""
    import os, sys
    import numpy as np
    import nn
    nn.configure_threads(int(os.environ["FRESH_PROCESS_THREADS"]))
    from models import load_model, registry
    images = np.random.default_rng(17).random((24, 28, 28)).astype(np.float32)
    out = {"cnn": load_model("cnn").logits(images)}
    if len(sys.argv) > 2:
        registry.load_model_file(sys.argv[2])
        out["own"] = load_model(sys.argv[3]).logits(images)
    np.savez(sys.argv[1], **out)
""")


def fresh_process(repo_root, tmp_path, *arguments):
    out = tmp_path / "fresh.npz"
    import numba
    env = {**os.environ, "FRESH_PROCESS_THREADS": str(numba.get_num_threads())}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(out), *map(str, arguments)],
                            cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    with np.load(out, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def test_a_users_own_dense_leaves_the_library_dense_and_the_shipped_cnn_as_they_were(repo_root,
                                                                                      tmp_path):
    assert Dense is not nn.layers.Dense
    assert registry.layer_class("Dense") is nn.layers.Dense             # the library's name
    assert nn.layers.LAYER_TYPES["Dense"] is nn.layers.Dense
    assert registry.type_name(Dense) == f"{__name__}.Dense"            # the user's: namespaced
    assert registry.layer_class(f"{__name__}.Dense") is Dense
    assert registry.type_name(nn.layers.Dense) == "Dense"

    model = load_model("cnn")
    dense_layers = [layer for layer in model.network.layers if type(layer).__name__ == "Dense"]
    assert dense_layers and all(type(layer) is nn.layers.Dense for layer in dense_layers)
    meta, _ = read_weights(shipped_weights("cnn"))
    assert [layer["type"] for layer in model.network.config()["layers"]] == \
        [layer["type"] for layer in meta["layers"]]                    # the file's bare names
    np.testing.assert_array_equal(model.logits(IMAGES), fresh_process(repo_root, tmp_path)["cnn"])


def test_a_users_own_dense_round_trips_under_its_qualified_name():
    rng = np.random.default_rng(3)
    network = Sequential([Dense(5, 4, rng=rng), nn.layers.Dense(5, 3, rng=rng)])
    layers = network.config()["layers"]
    assert [layer["type"] for layer in layers] == [f"{__name__}.Dense", "Dense"]
    rebuilt = build_layers(layers, rng=np.random.default_rng(4))
    assert [type(layer) for layer in rebuilt.layers] == [Dense, nn.layers.Dense]
    assert rebuilt.config() == network.config()


OWN_DENSE_MODEL = '''
"""A model file with a layer of its own that has a library layer's name."""
import numpy as np

from models.inputs import image_pixels
from models.registry import ModelSpec
from nn.layers import Dense as LibraryDense, Layer, Sequential


class Dense(Layer):
    """Not the library's Dense: y = x * scale, one scale per feature.  x (N, F) -> (N, F)."""

    def __init__(self, features, dtype=np.float32):
        super().__init__()
        self.features = features
        self.params["scale"] = np.linspace(0.5, 1.5, features, dtype=dtype)

    def forward(self, x, training=False):
        self.cache = x
        return x * self.params["scale"]

    def backward(self, dout):
        self.grads["scale"] = (dout * self.cache).sum(axis=0)     # dL/ds = sum_n dy * x
        return dout * self.params["scale"]                        # dL/dx = dy * s

    def config(self):
        return {"features": self.features}


class Brightness(Layer):
    """A layer whose name no library layer has: y = x + offset.  x (N, F) -> (N, F)."""

    def __init__(self, offset):
        super().__init__()
        self.offset = offset

    def forward(self, x, training=False):
        return x + self.offset

    def backward(self, dout):
        return dout

    def config(self):
        return {"offset": self.offset}


def build(rng, image_shape=(28, 28), num_classes=10):
    pixels = image_shape[0] * image_shape[1]
    return Sequential([Brightness(0.25), Dense(pixels), LibraryDense(pixels, num_classes, rng=rng)])


MODEL = ModelSpec(name="own_dense_in_a_file", title="Own Dense", description="for a test",
                  build=build, to_input=image_pixels, shipped=False)
'''


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """OWN_DENSE_MODEL written to own_dense.py and registered, as --model-file does."""
    path = tmp_path_factory.mktemp("model_file") / "own_dense.py"
    path.write_text(OWN_DENSE_MODEL)
    models_registry.load_model_file(path)
    return path


def test_a_model_file_with_its_own_dense_saves_loads_and_leaves_the_cnn_alone(repo_root, tmp_path,
                                                                              model_file):
    model = build_model("own_dense_in_a_file", rng=np.random.default_rng(5))
    weights = tmp_path / "own.npz"
    model.save(weights)

    meta, _ = read_weights(weights)
    # the clashing name is namespaced by the model file's module; a unique one stays bare, as
    # earlier versions wrote it; the library's keep their names
    assert [layer["type"] for layer in meta["layers"]] == \
        ["Brightness", "_kit_model_own_dense.Dense", "Dense"]
    loaded = load_model(weights)
    assert [type(layer) for layer in loaded.network.layers] == \
        [type(layer) for layer in model.network.layers]
    assert type(loaded.network.layers[2]) is nn.layers.Dense
    np.testing.assert_array_equal(loaded.logits(IMAGES), model.logits(IMAGES))

    fresh = fresh_process(repo_root, tmp_path, model_file, weights)   # another process, the same
    np.testing.assert_array_equal(fresh["own"], model.logits(IMAGES))
    np.testing.assert_array_equal(load_model("cnn").logits(IMAGES), fresh["cnn"])


def test_a_header_may_name_a_layer_by_bare_or_qualified_name(tmp_path, model_file):
    """Files written by earlier versions name a user layer by its bare name; one written while
    the bare name was taken by another user layer, by its qualified name.  Both load."""
    model = build_model("own_dense_in_a_file", rng=np.random.default_rng(6))
    state = model.network.state()
    header = model.header()
    header["layers"][0]["type"] = "_kit_model_own_dense.Brightness"
    header["layers"][2]["type"] = "nn.layers.dense.Dense"
    path = tmp_path / "qualified.npz"
    save_weights(path, state, header)
    np.testing.assert_array_equal(load_model(path).logits(IMAGES), model.logits(IMAGES))


def test_a_header_naming_the_library_dense_with_the_users_arguments_is_refused(tmp_path):
    """A file whose 'Dense' has another layer's arguments: one line, no traceback, whatever
    user layers exist (bare 'Dense' is only ever the library's)."""
    model = build_model("mlp", rng=np.random.default_rng(7))
    header = model.header()
    header["layers"][1] = {"type": "Dense", "units": 3, "inputs": 4}
    path = tmp_path / "bad.npz"
    save_weights(path, model.network.state(), header)
    with pytest.raises(WeightsError, match="architecture in the file is invalid") as refused:
        load_model(path)
    assert "layer 1, 'Dense' = nn.layers.dense.Dense" in str(refused.value)
    assert "\n" not in str(refused.value)


def make_layer_class(name, module):
    """A Layer subclass named ``name`` as if defined in module ``module`` (registers it)."""
    return type(name, (Layer,), {"__module__": module, "__qualname__": name})


def test_a_bare_name_two_user_layers_share_is_refused_as_ambiguous():
    first = make_layer_class("Twin", "user_package_a.layers")
    second = make_layer_class("Twin", "user_package_b.layers")
    with pytest.raises(ValueError, match="ambiguous") as refused:
        registry.layer_class("Twin")
    assert "user_package_a.layers.Twin" in str(refused.value)
    assert "user_package_b.layers.Twin" in str(refused.value)
    assert registry.type_name(first) == "user_package_a.layers.Twin"
    assert registry.type_name(second) == "user_package_b.layers.Twin"
    rebuilt = build_layers([{"type": "user_package_b.layers.Twin"}])
    assert type(rebuilt.layers[0]) is second


def test_a_unique_user_layer_keeps_its_bare_name():
    cls = make_layer_class("OnlyOneOfMe", "user_package_c.layers")
    assert registry.type_name(cls) == "OnlyOneOfMe"
    assert registry.layer_class("OnlyOneOfMe") is cls
    assert registry.layer_class("user_package_c.layers.OnlyOneOfMe") is cls


def test_defining_a_class_again_in_its_own_module_replaces_it():
    """A notebook cell run twice defines the class twice: the newer definition is meant."""
    older = make_layer_class("Rerun", "__main__")
    newer = make_layer_class("Rerun", "__main__")
    assert registry.layer_class("__main__.Rerun") is newer is not older


def test_claiming_a_library_layers_qualified_name_is_refused():
    with pytest.raises(TypeError, match="already the library's own layer"):
        make_layer_class("Dense", "nn.layers.dense")
    assert registry.layer_class("nn.layers.dense.Dense") is nn.layers.Dense
    assert registry.layer_class("Dense") is nn.layers.Dense


@pytest.mark.parametrize("name", ["Sequential", "nn.layers.sequential.Sequential",
                                  "NoSuchLayer", "no.such.Layer"])
def test_names_that_are_no_buildable_layer_are_refused(name):
    with pytest.raises(ValueError, match="unknown layer type"):
        build_layers([{"type": name}])


def test_the_layer_of_docs_extending_is_written_under_its_bare_name(repo_root):
    """The example layer of docs/extending.md, defined as a user would (outside nn), keeps the
    name "Scale" in a weights header and is rebuilt from it with its scales."""
    text = (repo_root / "docs" / "extending.md").read_text()
    code = text.split("## A layer", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace = {"__name__": "extending_example", "np": np, "Layer": Layer}
    exec(compile(code, "docs/extending.md", "exec"), namespace)
    scale = namespace["Scale"](3)
    scale.params["s"][...] = [0.5, 2.0, -1.0]
    network = Sequential([scale, nn.layers.Dense(3, 2, rng=np.random.default_rng(8))])
    layers = network.config()["layers"]
    assert [layer["type"] for layer in layers] == ["Scale", "Dense"]
    rebuilt = build_layers(layers, rng=np.random.default_rng(9))
    rebuilt.load_state(network.state())
    x = np.random.default_rng(10).standard_normal((4, 3)).astype(np.float32)
    assert type(rebuilt.layers[0]) is namespace["Scale"]
    np.testing.assert_array_equal(rebuilt.forward(x), network.forward(x))
