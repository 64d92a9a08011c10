"""The one strict loader of the TOML presets (telescopes, fit configurations, priors).

A preset is named (``bayesoof/presets/<kind>/<name>.toml``, a package resource), given as
the path of a TOML file, or given as a dict; it overrides a default of the same
structure entry by entry with :func:`merge`, which rejects any key the default lacks
(a typo is an error naming the source and the key, never silently ignored).
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path

__all__ = ["available", "merge", "preset_text", "read_preset", "read_toml"]


def _dir(kind: str):
    return resources.files("bayesoof.presets").joinpath(kind)


def available(kind: str) -> list[str]:
    """Names of the bundled presets of ``kind`` ('telescopes', 'fit', 'priors')."""
    return sorted(p.name[:-5] for p in _dir(kind).iterdir() if p.name.endswith(".toml"))


def preset_text(kind: str, name: str) -> str | None:
    """Text of the bundled preset ``kind/name.toml``, None when there is none."""
    res = _dir(kind).joinpath(f"{name}.toml")
    return res.read_text() if res.is_file() else None


def read_toml(text: str, source: str, error: type[Exception] = ValueError) -> dict:
    """Parse TOML ``text``; ``error`` naming ``source`` when it is not valid TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(f"{source}: not valid TOML ({err})") from err


def read_preset(kind: str, spec, error: type[Exception] = ValueError) -> tuple[dict, str]:
    """Return ``(table, source)`` of a preset name, a TOML path or a dict.

    A name is looked up among the bundled presets of ``kind`` first (unless it ends in
    ``.toml``); otherwise ``spec`` must be an existing file.
    """
    if isinstance(spec, dict):
        return spec, f"<dict {kind}>"
    s = str(spec)
    if not s.endswith(".toml"):
        text = preset_text(kind, s)
        if text is not None:
            return read_toml(text, f"preset {s}", error), f"preset {s}"
    path = Path(s)
    if not path.is_file():
        raise error(f"{kind} {s!r}: no such file, and not a preset ({', '.join(available(kind))})")
    return read_toml(path.read_text(), str(path), error), str(path)


def merge(base: dict, over: dict, source: str, error: type[Exception] = ValueError,
          opaque: tuple[str, ...] = (), path: str = "") -> dict:
    """``base`` updated by ``over`` entry by entry; unknown keys raise ``error``.

    Tables named in ``opaque``, and tables holding a ``dist`` key (a prior distribution,
    whose parameters depend on the distribution), are replaced whole; their contents are
    checked by their reader.
    """
    out = copy.deepcopy(base)
    for key, val in over.items():
        where = f"{path}{key}"
        if key not in base:
            known = ", ".join(sorted(base)) or "none"
            raise error(f"{source}: unknown entry '{where}' (known here: {known})")
        if isinstance(base[key], dict) and key not in opaque and "dist" not in base[key]:
            if not isinstance(val, dict):
                raise error(f"{source}: '{where}' must be a table, got {val!r}")
            out[key] = merge(base[key], val, source, error, opaque, where + ".")
        elif isinstance(base[key], dict) and not isinstance(val, dict):
            raise error(f"{source}: '{where}' must be a table, got {val!r}")
        else:
            out[key] = copy.deepcopy(val)
    return out
