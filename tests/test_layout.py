"""The layout: imports run one way only, and no shipped module grows past 600 lines.

The layers, from the bottom up (each may import those below it, never those above):

    nn                 the library
    kit                data sets, paths, progress, image handling (kit.images)
    models             the model files and their registry (models.base, .inputs, .registry, cnn...)
    models.training    the trainer, its checkpoints, teaching
    models.analysis    evaluation, the comparison report and its sections, saliency, study views
    models.commands    the command lines of train / evaluate / compare / export
    canvas             the drawing window, and ``cnn-vs-lstm`` (canvas.main) which starts everything

``python -m models.train`` (and evaluate, compare, export, study, and ``python -m models.training.reader``)
are kept for the README's commands as
thin entry modules inside ``models``; they are entry points like draw.py, allowed to import the
layer that runs them, and nothing imports them.
"""
import ast
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
LAYERS = ["nn", "kit", "models", "models.training", "models.analysis", "models.commands", "canvas"]
ENTRY_MODULES = {"models.train", "models.evaluate", "models.compare", "models.export", "models.study",
                 "models.training.reader"}
SHIPPED_PACKAGES = ("nn", "kit", "models", "canvas")
MAX_LINES = 600


def layer_of(module: str):
    """The deepest layer ``module`` belongs to ("models.training.trainer" -> "models.training");
    None for a module outside the kit (numpy, json...)."""
    best = None
    for layer in LAYERS:
        if module == layer or module.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def module_name(path: Path, root: Path = REPOSITORY) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = REPOSITORY):
    """(line, module) for every import in ``path``, relative imports resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:   # "from models import registry" imports models.registry
                yield node.lineno, f"{module}.{alias.name}"


def shipped_files():
    return sorted(path for package in SHIPPED_PACKAGES for path in (REPOSITORY / package).rglob("*.py"))


def test_layer_of():
    assert layer_of("models.training.trainer") == "models.training"
    assert layer_of("models.cnn") == "models"
    assert layer_of("models.analysis.compare.sections.memory") == "models.analysis"
    assert layer_of("kit.images.segment") == "kit"
    assert layer_of("numpy") is None
    assert layer_of("modelsx") is None


def test_imports_run_one_way_only():
    offenders = []
    for path in shipped_files():
        name = module_name(path)
        if name in ENTRY_MODULES:
            continue
        own = LAYERS.index(layer_of(name))
        for line, imported in imported_modules(path):
            if imported in ENTRY_MODULES:
                offenders.append(f"{path.relative_to(REPOSITORY)}:{line} imports the entry module {imported}")
                continue
            layer = layer_of(imported)
            if layer is not None and LAYERS.index(layer) > own:
                offenders.append(f"{path.relative_to(REPOSITORY)}:{line} ({layer_of(name)}) imports "
                                 f"{imported} ({layer}), a layer above it")
    assert offenders == []


def test_the_checker_sees_upward_and_relative_imports(tmp_path):
    """The walk above must be able to fail: a kit module importing models is seen as such."""
    fake = tmp_path / "kit" / "images" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from models.training import trainer\nimport numpy\nfrom ..paths import x\n")
    imports = list(imported_modules(fake, root=tmp_path))
    assert imports == [(1, "models.training"), (1, "models.training.trainer"), (2, "numpy"),
                       (3, "kit.paths"), (3, "kit.paths.x")]
    assert layer_of(module_name(fake, root=tmp_path)) == "kit"
    assert LAYERS.index(layer_of("models.training")) > LAYERS.index("kit")


def test_every_package_says_what_it_may_import():
    for layer in LAYERS[1:] + ["kit.images"]:
        init = REPOSITORY / layer.replace(".", "/") / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in docstring, f"{init} does not say what it may import"


@pytest.mark.parametrize("package", SHIPPED_PACKAGES)
def test_no_shipped_module_longer_than_600_lines(package):
    long = {str(path.relative_to(REPOSITORY)): count for path in (REPOSITORY / package).rglob("*.py")
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_test_fixtures_are_not_shipped():
    """The scripted handwriting and the number composer serve tests and benchmarks only."""
    for package in SHIPPED_PACKAGES:
        for path in (REPOSITORY / package).rglob("*.py"):
            assert path.name not in ("numbers.py", "handwriting.py"), path


def test_every_shipped_package_is_in_the_wheel():
    """setup.cfg lists its packages one by one (models.weights lives elsewhere): a package folder
    left out of the list is left out of the installed kit (models.analysis.compare once was)."""
    import configparser
    config = configparser.ConfigParser()
    config.read(REPOSITORY / "setup.cfg")
    listed = {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}
    found = {module_name(init) for package in SHIPPED_PACKAGES for init in (REPOSITORY / package).rglob("__init__.py")}
    assert found - listed == set()
    assert listed - found == {"models.weights"}
