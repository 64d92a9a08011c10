"""Rough edges a new user hits: --help, sampler names, typos, internal notices, README."""

from __future__ import annotations

import argparse
import logging
import os
import re
import warnings

from bayesoof import testing as T
from bayesoof.cli import app, main
from bayesoof.cli import sample as sample_cmd


def _subparsers():
    parser = app.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


def test_each_default_printed_once_in_help():
    for name, sub in _subparsers().items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if not action.help or action.help is argparse.SUPPRESS:
                continue
            text = fmt._expand_help(action).lower()
            assert text.count("(default") <= 1, (name, action.dest, text)
            if action.default in (None, False):
                assert "(default: none)" not in text and "(default: false)" not in text


def test_sampler_choices_are_the_api_samplers():
    from bayesoof.inference.sample import SAMPLERS

    assert sample_cmd.SAMPLERS == SAMPLERS
    sampler = next(a for a in _subparsers()["sample"]._actions if a.dest == "sampler")
    assert tuple(sampler.choices) == SAMPLERS


def test_mistyped_telescope_did_you_mean(tmp_path, capsys):
    from bayesoof.simulate import example_path

    code = main(["fit", str(example_path()), "--telescope", "efelsberg", "--out",
                 str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "unknown telescope 'efelsberg'; did you mean 'effelsberg'?" in err
    assert not (tmp_path / "runs").exists()


def test_internal_notices_not_shown(monkeypatch, capfd):
    """PyTensor's JAX 'Skipping Check' warning, its BLAS log notice, LAPACK text: hidden."""
    from bayesoof.cli import info

    def noisy(args):
        warnings.warn("Skipping Check{sigma > 0} Op (assertion: sigma > 0) as JAX tracing "
                      "would remove it.", UserWarning, stacklevel=1)
        logging.getLogger("pytensor.tensor.blas").warning(
            "Using NumPy C-API based implementation for BLAS functions.")
        os.write(1, b" ** On entry to DLASCL parameter number  4 had an illegal value\n")
        print("result")
        warnings.warn("a real warning\nover two lines", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(info, "run", noisy)
    assert main(["info", "anything"]) == 0
    out, err = capfd.readouterr()
    assert out == "result\n"
    assert err == "bayesoof: warning: a real warning over two lines\n"


def test_readme_cli_example_runs_in_a_scratch_folder(tmp_path, monkeypatch, capsys):
    """The README's command-line example starts in a scratch folder (nothing lands in the
    clone), and 'simulate OUT' writes OUT relative to the current directory, as it says."""
    text = (T.REPO_ROOT / "README.md").read_text()
    runnable = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S)
                if "bayesoof simulate" in b or "shared/" in b]  # runnable in a fresh clone
    assert len(runnable) >= 2
    for block in runnable:
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        # every such example first moves to a scratch folder: nothing lands in the clone
        assert 'cd "$(mktemp -d)"' in lines[0], lines[0]
    assert "relative to the current directory" in " ".join(text.split())
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "sim.fits", "--order", "1", "--n-grid", "5", "--extent", "4"]) == 0
    assert (tmp_path / "sim.fits").is_file()
    assert "wrote sim.fits" in capsys.readouterr().out


def test_sigterm_outside_sampling_exits_143_with_one_line(monkeypatch, capsys):
    """SIGTERM while a command works (not sampling): exit 143, one line, staging cleaned."""
    import signal

    from bayesoof.cli import info

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10000):  # the handler runs between bytecodes
            pass
        return 0

    monkeypatch.setattr(info, "run", killed)
    assert main(["info", "anything"]) == 143
    err = capsys.readouterr().err
    assert err.startswith("bayesoof: terminated (SIGTERM)") and err.count("\n") == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
