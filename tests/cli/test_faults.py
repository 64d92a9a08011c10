"""Faults of the output side: a full disk or a read-only --out gives one line, nothing partial.

The session runs as root in CI containers, where chmod cannot make a folder read-only, so
the operating-system errors are injected where the writers meet the file system.
"""

from __future__ import annotations

import errno

import pytest

from bayesoof.cli import main
from bayesoof.simulate import example_path


def _fit(out):
    return main(["fit", str(example_path()), "--order", "1", "--out", str(out), "--quiet"])


def test_full_disk_while_saving_leaves_nothing(tmp_path, capsys, monkeypatch):
    from bayesoof.io import atomic

    real = atomic.atomic_path
    calls = []

    def full(path, write, **kw):
        calls.append(path)
        if len(calls) == 3:  # a few files in: the run is half-written in staging
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write, **kw)

    monkeypatch.setattr(atomic, "atomic_path", full)
    out = tmp_path / "runs"
    code = _fit(out)
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("bayesoof: error: ")
    assert "No space left on device" in err
    assert len(calls) == 3
    assert not out.exists(), list(out.rglob("*"))  # no run, no staging, no --out folder


@pytest.mark.parametrize("exc", [PermissionError(errno.EACCES, "Permission denied"),
                                 OSError(errno.EROFS, "Read-only file system")])
def test_unwritable_out_gives_one_line(tmp_path, capsys, monkeypatch, exc):
    from bayesoof.io import rundir

    def refuse(*args, **kwargs):
        raise type(exc)(exc.errno, exc.strerror, str(kwargs.get("dir", "")))

    monkeypatch.setattr(rundir.tempfile, "mkdtemp", refuse)
    out = tmp_path / "runs"
    out.mkdir()
    code = _fit(out)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert exc.strerror in err and str(out) in err
    assert list(out.iterdir()) == []
