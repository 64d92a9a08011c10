"""Run directories: a new ``<out>/<stem>-NNN`` and a staged build that appears complete.

A run directory is never overwritten: :func:`new_run_dir` reserves the first free name
by ``mkdir`` (atomic), and :func:`staged_run` builds the whole run in a hidden folder
beside it, renaming it into place only when everything is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["new_run_dir", "run_stem", "staged_run"]


def _umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_run_dir(out, stem: str) -> Path:
    """Create and return ``out/<stem>-NNN`` with the first free NNN (000, 001, ...)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(100000):
        cand = out / f"{stem}-{i:03d}"
        try:
            cand.mkdir()
        except FileExistsError:
            continue
        return cand
    raise RuntimeError(f"{out}: no free run directory name for stem {stem!r}")


def run_stem(source: str | None) -> str:
    """Stem of a run named after its data file (``'bayesoof'`` for in-memory data)."""
    return Path(source).stem if source and not str(source).startswith("<") else "bayesoof"


@contextlib.contextmanager
def staged_run(out, stem: str):
    """Build a run directory out of sight, then move it into place complete.

    Yields ``(staging, finish)``: a hidden folder inside ``out`` in which the caller
    writes (e.g. ``FitResult.save(staging)`` and plots), and ``finish(built)`` which
    renames the finished folder ``built`` to ``out/<stem>-NNN`` (first free NNN) and
    returns that path.  On any error the staging folder is removed, and ``out`` too when
    this call created it and it is still empty: no half-written run is ever visible.

    Raises
    ------
    NotADirectoryError
        ``out`` exists and is not a directory.
    """
    parent = Path(out)
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"{parent}: exists and is not a directory")
    created = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; a run follows the umask
    final: list[Path] = []

    def finish(built: Path) -> Path:
        target = new_run_dir(parent, stem)  # reserves the name (an empty directory)
        try:
            os.rename(built, target)  # POSIX: replaces the empty directory atomically
        except OSError:
            target.rmdir()
            os.rename(built, target)
        final.append(target)
        return target

    try:
        yield staging, finish
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not final:
            with contextlib.suppress(OSError):  # only if still empty
                parent.rmdir()
