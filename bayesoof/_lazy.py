"""Attributes of a package imported on first access (PEP 562 ``__getattr__``)."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` resolving ``table`` (name -> defining module).

    The first access imports the module and caches the value in the package's namespace.
    """

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class _DeferredModule(types.ModuleType):
    """Stand-in for a package whose code runs on first access to one of its names.

    ``__file__``, ``__path__`` and ``__spec__`` are real attributes (submodule imports and
    ``inspect.getmodule`` work without loading it); any other missing attribute runs the
    package's ``__init__`` in this very module object, after which it is the real module.
    """

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        loader = self.__dict__.pop("_deferred_loader", None)
        if loader is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        loader.exec_module(self)
        return getattr(self, name)


def defer_imports(*names: str) -> None:
    """Run the packages ``names`` on first use of one of their names instead of at import.

    For sub-packages that a dependency imports eagerly but bayesoof never uses, e.g.
    ``pytensor.tensor.signal`` (its ``scipy.signal`` import is ~0.5 s of every start).
    Names already imported, or whose top-level package is not installed, are left alone.
    """
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    for name in names:
        top = name.partition(".")[0]
        if name in sys.modules or top in sys.modules:
            continue
        top_spec = importlib.util.find_spec(top)  # finds, does not import
        if top_spec is None or not top_spec.submodule_search_locations:
            continue
        folder = Path(top_spec.submodule_search_locations[0]).joinpath(*name.split(".")[1:])
        spec = importlib.machinery.PathFinder.find_spec(name, [str(folder.parent)])
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            continue
        module = _DeferredModule(name)
        module.__spec__, module.__loader__ = spec, spec.loader
        module.__file__, module.__path__ = spec.origin, list(spec.submodule_search_locations)
        module.__package__ = name
        module._deferred_loader = spec.loader
        sys.modules[name] = module
