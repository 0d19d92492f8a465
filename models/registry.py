"""Which models exist: every ``models/<name>.py`` that declares ``MODEL = ModelSpec(...)``, plus
any file a person points at with ``--model-file PATH``.

A model is one file.  It declares everything the kit needs to know::

    MODEL = ModelSpec(
        name="gru", title="GRU",
        description="GRU(64) over the 28 rows -> BatchNorm -> Dense.",   # --help and the report
        build=build_gru,              # build(rng, image_shape, num_classes, **options) -> Sequential
        to_input=image_rows,          # images (N, H, W) in [0, 1] -> what the network reads
        options={"hidden": 64},       # each becomes a flag (--hidden) of the trainer
        recipe=Recipe(lr=2e-3, epochs=30, schedule="cosine", augment=True),
        recurrent=True,               # reads the image row by row (the canvas's R view)
    )

Whether a model's trained weights ship with the kit is not declared but found: ``spec.shipped``
is True when ``weights/<name>.npz`` is there (:func:`shipped_weights`, the lookup
``load_model("gru")`` uses), so a model of one's own, without such a file, is never offered as
shipped, and is told how to train it from its file.

and nothing else in the kit names it: the trainer, evaluation, the comparison, ``load_model``
and the canvas all go through :func:`get` and :func:`names`.  The files are found by reading
``models/*.py`` for a top-level ``MODEL =`` (without importing every module of the package, some
of which are heavy), and imported when first asked for.
"""
import importlib
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

from nn.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
REPOSITORY_WEIGHTS = PACKAGE_DIR.parent / "weights"
_DECLARES_MODEL = re.compile(r"^MODEL\s*=\s*ModelSpec\(", re.MULTILINE)
_DECLARES_SEQUENCE = re.compile(r"^\s*kind\s*=\s*[\"']sequence[\"']", re.MULTILINE)


@dataclass(frozen=True)
class Recipe:
    """A model's default training recipe; the trainer's flags override each field."""
    lr: float = 1e-3
    epochs: int = 20
    batch_size: int = 64
    schedule: str = "constant"          # or "cosine" (decay to lr * final_lr_factor)
    final_lr_factor: float = 0.01
    augment: bool = False               # random shifts, rotations and scaling of each batch
    optimizer: str = "adam"
    # A number reader's (kind "sequence") data: numbers composed per epoch for training, and per
    # condition (digits apart, touching) for validation and the test; None for a per-digit model.
    numbers: Optional[int] = None
    test_numbers: Optional[int] = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the kit needs to know about one model (see the module docstring)."""
    name: str
    title: str
    description: str
    build: Callable
    to_input: Callable
    options: dict = field(default_factory=dict)
    recipe: Recipe = field(default_factory=Recipe)
    recurrent: bool = False
    # "digit": one 28x28 digit -> 10 classes (every per-digit command lists it); "sequence": a
    # strip of any width -> a number (models/reader.py), listed only by names(kind="sequence").
    kind: str = "digit"
    # Found, not declared: whether weights/<name>.npz is part of the kit (set when the spec is
    # made; False given here keeps a model out of the shipped ones even so).
    shipped: Optional[bool] = None
    source: str = ""                    # the file it was declared in (filled in by the registry)

    def __post_init__(self):
        found = shipped_weights(self.name).is_file() if isinstance(self.name, str) else False
        object.__setattr__(self, "shipped", self.shipped is not False and found)

    @property
    def from_model_file(self) -> bool:
        """True for a model loaded with ``--model-file`` (declared outside the package)."""
        return bool(self.source) and Path(self.source).resolve().parent != PACKAGE_DIR

    @property
    def train_command(self) -> str:
        """The command that trains this model: by name for the kit's own, by file otherwise."""
        if self.from_model_file:
            return f"python -m models.train --model-file {shlex.quote(str(self.source))}"
        return f"python -m models.train --model {self.name}"


def shipped_weights(name) -> Path:
    """The path of model ``name``'s shipped weights (inside the installed package, or the
    repository's weights/ folder when running from a checkout); it need not exist.

    Only the weights of *this* copy of the kit count: the package data ``models.weights`` is
    used when it lies inside this package (a wheel install), not when it belongs to another
    checkout (an editable install of it elsewhere would hand one checkout another's weights).
    """
    try:
        folder = resources.files("models.weights")
        candidate = Path(str(folder / f"{name}.npz"))
        if candidate.is_file() and PACKAGE_DIR in candidate.resolve().parents:
            return candidate
    except (ModuleNotFoundError, TypeError):
        pass
    return REPOSITORY_WEIGHTS / f"{name}.npz"


_specs: dict = {}


def register(spec: ModelSpec, source="") -> ModelSpec:
    """Add ``spec`` under its name (a model file's ``MODEL`` is registered when it is loaded)."""
    if not isinstance(spec, ModelSpec):
        raise UserError(f"{source or 'a model file'}: MODEL must be a models.registry.ModelSpec")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", spec.name):
        raise UserError(f"{source}: model name {spec.name!r} must be lower-case letters, digits, _")
    known = _specs.get(spec.name)
    if known is not None and known.source and source and Path(known.source) != Path(source):
        raise UserError(f"{source}: a model named {spec.name!r} is already defined in {known.source}")
    spec = ModelSpec(**{**spec.__dict__, "source": str(source)})
    _specs[spec.name] = spec
    return spec


def _package_model_files(kind="digit"):
    """{name: path} of the package's model files of ``kind`` (None: every kind), by reading, not
    importing, models/*.py."""
    found = {}
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        file_kind = "sequence" if _DECLARES_SEQUENCE.search(text) else "digit"
        if _DECLARES_MODEL.search(text) and kind in (None, file_kind):
            found[path.stem] = path
    return found


def names(shipped_only=False, kind="digit"):
    """Every known model name of ``kind`` ("digit", the per-digit classifiers; "sequence", the
    number readers; None: all): the package's model files first (sorted), then loaded files."""
    result = list(_package_model_files(kind))
    result += [name for name, spec in _specs.items()
               if name not in result and kind in (None, spec.kind)]
    if shipped_only:
        result = [name for name in result if get(name).shipped]
    return result


def shipped():
    """Names of the models whose trained weights ship with the kit, in a stable order."""
    return names(shipped_only=True)


def get(name) -> ModelSpec:
    """The spec of model ``name``; one line naming the known models if there is none."""
    if name in _specs:
        return _specs[name]
    files = _package_model_files(None)
    if name in files:
        module = importlib.import_module(f"models.{name}")
        spec = getattr(module, "MODEL", None)
        if not isinstance(spec, ModelSpec) or spec.name != name:
            raise UserError(f"{files[name]}: MODEL must be a ModelSpec named {name!r}")
        return register(spec, files[name])
    raise UserError(f"unknown model {name!r}; choose one of {', '.join(names())}"
                    " (or load your own with --model-file PATH)")


def load_model_file(path) -> ModelSpec:
    """Import a model file from anywhere (``--model-file PATH``) and register its ``MODEL``."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the Python file that defines MODEL = ModelSpec(...)")
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path}: is a broken symbolic link or a link loop")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    module_name = f"_kit_model_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None:
        raise UserError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except SyntaxError as error:
        raise UserError(f"{path}: line {error.lineno}: {error.msg}") from None
    spec = getattr(module, "MODEL", None)
    if spec is None:
        raise UserError(f"{path}: defines no MODEL = ModelSpec(...)")
    # A kit model's name would be trained under, then every weights file of it checked against
    # the kit's own file: refused now, before any work, rather than by evaluate and draw later.
    kits = _package_model_files().get(getattr(spec, "name", None))
    if kits is not None and kits.resolve() != path.resolve():
        raise UserError(f"{path}: its model is named {spec.name!r}, the name of the kit's model in {kits}; "
                        "give yours another name (ModelSpec(name=...))")
    return register(spec, path.resolve())
