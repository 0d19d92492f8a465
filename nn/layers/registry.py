"""Which class a layer name in a weights file means: every Layer class, by module and name.

Every layer class is registered when it is defined, under its qualified name
``"<module>.<qualname>"`` (``"nn.layers.dense.Dense"``, ``"_kit_model_wide_mlp.Scale"``,
``"__main__.Dense"``).  A weights header names each layer by a *type name*:

- the library's own layers (defined in the ``nn`` package) own their bare names: ``"Dense"`` is
  always :class:`nn.layers.Dense`, whatever else is defined, so the shipped weights files (and
  every file an earlier version wrote) keep loading;
- a user's layer whose bare name is unique (no library layer, no other user layer has it) is
  written and found by that bare name, as earlier versions wrote it (so a weights file still
  loads when the model file that defines the layer is renamed or moved);
- a user's layer whose bare name is taken - its own ``class Dense(Layer)`` - is namespaced: it
  is written and found by its qualified name, ``"__main__.Dense"``, and never replaces the
  library's ``Dense``.  A bare name two user layers share is refused as ambiguous on loading.

Defining a class again under the same qualified name (a notebook cell run twice, a model file
loaded again) replaces the earlier definition; claiming the qualified name of a library layer
from elsewhere is refused with a TypeError, since that *would* silently replace it.
"""

LIBRARY_PACKAGE = "nn"

classes: dict = {}          # qualified name -> class, every layer class defined so far
library_types: dict = {}    # bare name -> class, the library's own layers (nn.layers.*)


def qualified_name(cls) -> str:
    """``"<module>.<qualname>"``: the key a class is registered under."""
    return f"{cls.__module__}.{cls.__qualname__}"


def is_library_class(cls) -> bool:
    """True for a class defined in the library's own package (``nn``)."""
    module = cls.__module__
    return module == LIBRARY_PACKAGE or module.startswith(LIBRARY_PACKAGE + ".")


def register(cls):
    """Record ``cls`` under its qualified name (and, for a library layer, its bare name).

    Raises TypeError if ``cls`` claims the qualified name of a library layer that is not itself,
    or if the library defines two layers of the same bare name.
    """
    key = qualified_name(cls)
    held = classes.get(key)
    if held is not None and held is not cls and is_library_class(held):
        raise TypeError(f"layer class {key} is already the library's own layer; give yours "
                        "another module or name (it would replace the library's)")
    if is_library_class(cls):
        other = library_types.get(cls.__name__)
        if other is not None and other is not cls:
            raise TypeError(f"two library layers are named {cls.__name__}: "
                            f"{qualified_name(other)} and {key}")
        library_types[cls.__name__] = cls
    classes[key] = cls
    return cls


def user_classes_named(name):
    """The registered non-library classes whose bare name is ``name``."""
    return [cls for cls in classes.values() if cls.__name__ == name and not is_library_class(cls)]


def layer_class(type_name):
    """The class a weights header's ``"type"`` means (a bare or a qualified name).

    Raises ValueError for a name nothing is registered under, or a bare name two user layers
    share (one line naming both, so the user can tell which one to rename).
    """
    if not isinstance(type_name, str):
        raise ValueError(f"layer type {type_name!r} is not a name")
    if type_name in library_types:                     # the library's own names win
        return library_types[type_name]
    if type_name in classes:
        return classes[type_name]
    candidates = user_classes_named(type_name)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(sorted(qualified_name(cls) for cls in candidates))
        raise ValueError(f"layer type {type_name!r} is ambiguous: {names} are all defined")
    raise ValueError(f"unknown layer type {type_name!r}")


def type_name(cls) -> str:
    """The name a weights header stores for ``cls``: the bare class name where it leads back
    to ``cls`` (:func:`layer_class`), else the qualified name."""
    try:
        if layer_class(cls.__name__) is cls:
            return cls.__name__
    except ValueError:
        pass                                           # ambiguous: only the qualified name is
    return qualified_name(cls)


def canonical_name(type_name):
    """The qualified name of the class ``type_name`` leads to (``"Dense"`` ->
    ``"nn.layers.dense.Dense"``), or ``type_name`` itself if it leads nowhere: two headers
    name the same layers when their canonical names agree."""
    try:
        return qualified_name(layer_class(type_name))
    except ValueError:
        return type_name
