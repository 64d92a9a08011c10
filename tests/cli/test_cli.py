"""The ``bayesoof`` command line, end to end on small data, in-process and as a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesoof import testing as T
from bayesoof.cli import app as cli
from bayesoof.cli.common import Ticker
from bayesoof.data.fitsio import read_beam_maps
from bayesoof.simulate import example_path

SUBCOMMANDS = ["simulate", "fit", "sample", "finish", "plot", "info", "convert"]


def run(capsys, *argv):
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def console_script() -> list[str]:
    """The installed ``bayesoof`` console script (beside this interpreter, else on PATH)."""
    here = Path(sys.executable).parent / ("bayesoof.exe" if os.name == "nt" else "bayesoof")
    if here.is_file():
        return [str(here)]
    import shutil

    found = shutil.which("bayesoof")
    if found is None:
        pytest.fail("the console script 'bayesoof' is not installed (pip install -e .)")
    return [found]


# ---------------------------------------------------------------- help and usage
@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_of_every_subcommand(capsys, sub):
    code, out, _ = run(capsys, sub, "--help")
    assert code == 0
    assert out.startswith(f"usage: bayesoof {sub}")


def test_top_level_help_lists_subcommands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for sub in SUBCOMMANDS:
        assert sub in out


def test_usage_errors_exit_2(capsys):
    assert run(capsys)[0] == 2  # no subcommand: help, status 2
    code, _, err = run(capsys, "convert", "a.fits", "b.fits", "--to", "csv")
    assert code == 2 and "invalid choice" in err
    code, _, err = run(capsys, "fit", str(example_path()), "--order", "0")
    assert code == 2 and "--order" in err


# ---------------------------------------------------------------- simulate
@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small simulated file written by 'bayesoof simulate' (order 2, 15 x 15 maps)."""
    path = tmp_path_factory.mktemp("sim") / "sim.fits"
    K = [0, 0, 0, 0.05, -0.08, 0.03]
    code = cli.main(["simulate", str(path), "--coefficients", *map(str, K), "--n-grid", "15",
                     "--extent", "6", "--snr", "150", "--amp", "20", "--offset", "0.5",
                     "--seed", "3", "--dz", "-22", "0", "22"])
    assert code == 0
    return path, np.array(K)


def test_simulate_writes_what_was_asked(simulated, capsys):
    path, K = simulated
    data = read_beam_maps(path)
    assert data.meta["format"] == "nikolic"
    assert data.n_maps == 3 and np.allclose(data.d_z, [-0.022, 0.0, 0.022])
    assert np.isclose(data.wavelength, 0.009)
    assert all(m.size == 225 and m.grid() is not None for m in data.maps)
    assert data.meta["TELESC"] == "effelsberg"
    stored = np.array([data.meta[f"SIMK{j}"] for j in range(K.size)])
    np.testing.assert_allclose(stored, K)
    # sigma = peak / SNR of the in-focus map (offset removed)
    focus = data.maps[1]
    peak = np.max(focus.beam) - 0.5
    assert np.allclose(focus.sigma, focus.sigma[0])
    assert 0.8 < peak / focus.sigma[0] / 150 < 1.2


def test_simulate_random_coefficients_and_pyoof_format(tmp_path, capsys):
    out = tmp_path / "r.fits"
    code, stdout, _ = run(capsys, "simulate", out, "--order", "2", "--seed", "5", "--n-grid",
                          "11", "--extent", "5", "--format", "pyoof", "--noise-free",
                          "--frequency", "32")
    assert code == 0, stdout
    data = read_beam_maps(out)
    assert data.meta["format"] == "pyoof"
    assert np.isclose(data.frequency, 32e9)
    from bayesoof.simulate import random_coefficients

    want = random_coefficients(2, 0.05, 5)
    got = np.array([data.meta[f"SIMK{j}"] for j in range(6)])
    np.testing.assert_allclose(got, want)
    assert "K(2,+0)" in stdout and f"{want[4]:+.5f}" in stdout
    # refuses to overwrite, leaves the file alone
    before = out.read_bytes()
    code, _, err = run(capsys, "simulate", out, "--order", "1", "--n-grid", "5")
    assert code == 1 and "exists" in err and err.count("\n") == 1
    assert out.read_bytes() == before


def test_simulate_bad_input(tmp_path, capsys):
    out = tmp_path / "x.fits"
    cases = [
        (["--telescope", "arecibo"], "unknown telescope 'arecibo'"),
        (["--coefficients", "0", "0.1"], "not a complete Zernike order"),
        (["--dz", "-20", "20"], "must include the in-focus map"),
        (["--format", "pyoof", "--dz", "0", "10"], "exactly three maps"),
        (["--snr", "-3"], "--snr must be > 0"),
    ]
    for extra, msg in cases:
        code, _, err = run(capsys, "simulate", out, "--n-grid", "5", *extra)
        assert code == 1, extra
        assert msg in err, (extra, err)
        assert err.startswith("bayesoof: error: ") and err.count("\n") == 1
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary


def test_malformed_telescope_file(tmp_path, capsys):
    bad = tmp_path / "scope.toml"
    bad.write_text("radius = [oops\n")
    code, _, err = run(capsys, "simulate", tmp_path / "o.fits", "--telescope", bad)
    assert code == 1 and "not valid TOML" in err and str(bad) in err
    bad.write_text('name = "x"\nradius = 10.0\n[optics]\nkind = "cassegrain"\n')
    code, _, err = run(capsys, "simulate", tmp_path / "o.fits", "--telescope", bad)
    assert code == 1 and "focal_length" in err
    assert not (tmp_path / "o.fits").exists()


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        cli.main(["--debug", "info", str(tmp_path / "missing.fits")])


# ---------------------------------------------------------------- info / convert
def test_info_on_data_files(capsys, simulated):
    code, out, _ = run(capsys, "info", example_path())
    assert code == 0
    assert "maps        : 3" in out and "grid 61x61" in out and "format      : nikolic" in out
    code, out, _ = run(capsys, "info", simulated[0], "--json")
    info = json.loads(out)
    assert code == 0 and info["wavelength_m"] == pytest.approx(0.009)
    assert [m["samples"] for m in info["maps"]] == [225] * 3
    assert info["meta"]["SIMK4"] == pytest.approx(-0.08)


def test_info_and_convert_bad_input(tmp_path, capsys):
    missing = tmp_path / "nope.fits"
    code, _, err = run(capsys, "info", missing)
    assert code == 1 and "no such file" in err and err.count("\n") == 1
    text = tmp_path / "notes.fits"
    text.write_text("this is not FITS\n")
    code, _, err = run(capsys, "info", text)
    assert code == 1 and "not a valid FITS file" in err and err.count("\n") == 1
    code, _, err = run(capsys, "info", tmp_path)  # a directory that is not a run
    assert code == 1 and "summary.json" in err
    code, _, err = run(capsys, "convert", missing, tmp_path / "o.fits", "--to", "pyoof")
    assert code == 1 and "no such file" in err
    code, _, err = run(capsys, "convert", text, tmp_path / "o.fits", "--to", "pyoof")
    assert code == 1 and "not a valid FITS file" in err
    assert not (tmp_path / "o.fits").exists()


def test_convert_round_trip(tmp_path, capsys, simulated):
    src, _ = simulated
    a = tmp_path / "a_pyoof.fits"
    code, out, err = run(capsys, "convert", src, a, "--to", "pyoof")
    assert code == 0 and "pyoof format" in out
    assert "no noise column" in err  # the pyoof format drops sigma: warned, one line
    b = tmp_path / "b_nikolic.fits"
    assert run(capsys, "convert", a, b, "--to", "nikolic")[0] == 0
    d0, d1, d2 = read_beam_maps(src), read_beam_maps(a), read_beam_maps(b)
    assert d1.meta["format"] == "pyoof" and d2.meta["format"] == "nikolic"
    for m0, m1, m2 in zip(d0.maps, d1.maps, d2.maps, strict=True):
        np.testing.assert_array_equal(m0.beam, m1.beam)
        np.testing.assert_array_equal(m0.u, m2.u)
        np.testing.assert_array_equal(m0.beam, m2.beam)
        assert m0.d_z == m2.d_z
    # a set that the pyoof format cannot hold
    five = tmp_path / "five.fits"
    assert run(capsys, "simulate", five, "--order", "1", "--n-grid", "5", "--dz",
               "-30", "-15", "0", "15", "30")[0] == 0
    code, _, err = run(capsys, "convert", five, tmp_path / "five_p.fits", "--to", "pyoof")
    assert code == 1 and "exactly three maps" in err
    assert not (tmp_path / "five_p.fits").exists()


def test_console_script_subprocess(tmp_path, simulated):
    """The installed entry point: 'bayesoof info' and an error, as a separate process."""
    exe = console_script()
    env = dict(os.environ, MPLBACKEND="Agg")
    ok = subprocess.run([*exe, "info", str(simulated[0])], capture_output=True, text=True,
                        env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "d_z =  -22.000 mm" in ok.stdout
    bad = subprocess.run([*exe, "info", str(tmp_path / "missing.fits")], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"bayesoof: error: {tmp_path / 'missing.fits'}: no such file or directory"]


# ---------------------------------------------------------------- fit / plot / info on a run
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """'bayesoof fit' of the bundled example, order 1 (the fastest), with plots."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("runs") / "runs"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["fit", str(example_path()), "--order", "1", "--out", str(out),
                         "--plots"])
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def test_fit_writes_a_complete_run(fitted):
    out, stdout, stderr = fitted
    runs = sorted(out.iterdir())
    assert [p.name for p in runs] == ["example_effelsberg-000"]  # no staging left behind
    run = runs[0]
    assert f"run directory: {run}" in stdout
    assert f"plots: {run / 'plots'} (beam_maps.png, " in stdout  # says where the plots went
    names = {p.name for p in run.iterdir()}
    assert {"summary.json", "result.nc", "phase.fits", "fitpar_n1.csv", "cov_n1.csv",
            "corr_n1.csv", "phase_n1.csv", "plots"} <= names
    plots = sorted(p.name for p in (run / "plots").iterdir())
    assert plots == ["beam_maps.png", "beam_maps_db.png", "coefficients.png",
                     "correlation.png", "phase.png", "phase_uncertainty.png"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["order"] == 1 and summary["orders_fitted"] == [1]
    assert summary["telescope"]["name"] == "effelsberg"  # from the file's TELESC card
    # the table printed for order 1 carries the chi2 of summary.json
    row = [ln for ln in stdout.splitlines() if ln.split()[:1] == ["1"]]
    assert len(row) == 1
    assert float(row[0].split()[2]) == pytest.approx(summary["chi2"], rel=1e-5)
    assert ("converged" in row[0]) == summary["converged"]
    # the adequacy verdict: one line, the one stored; the status carries it
    verdict = [ln for ln in stdout.splitlines() if ln.startswith("adequacy: ")]
    assert len(verdict) == 1
    assert ("MISFIT" in verdict[0]) == (summary["adequacy"]["verdict"] == "misfit")
    assert ("MISFIT" in row[0]) == (summary["adequacy"]["verdict"] == "misfit")
    # the aperture model error (on by default): one line, with the widening stored
    me = [ln for ln in stdout.splitlines() if ln.startswith("model error: ")]
    stored = summary["uncertainty"]["model_error"]
    assert len(me) == 1 and f"K sd x {stored['K_sd_ratio_range'][0]:.2f}-" in me[0]
    # the example was simulated with amplitude 1000, offset 2 (bayesoof.simulate), at order
    # 5: at order 1 it is a misfit (flagged), and since session 5 the free leg half-width
    # soaks up part of it (1.20 m against the preset's 1.0; width-amplitude correlation
    # 0.6-0.8, nuisances.py): the in-focus amplitude lands 7.4 % high (0.1 % at order 5).
    # 10 % still fails a wrong normalisation or unit (factors >= 2) or a fit gone elsewhere
    # (it was 5 % before the legs were free)
    focus = summary["maps"][1]
    assert focus["amp"]["value"] == pytest.approx(1000.0, rel=0.10)
    assert focus["offset"]["value"] == pytest.approx(2.0, abs=0.1)
    assert "order 1:" in stderr  # live progress goes to stderr


def test_plot_remakes_the_plots(fitted, capsys):
    rundir = next(fitted[0].iterdir())
    for p in (rundir / "plots").iterdir():
        p.unlink()
    code, out, err = run(capsys, "plot", rundir, "--pdf")
    assert code == 0, err
    made = sorted(p.name for p in (rundir / "plots").iterdir())
    assert len(made) == 12 and sum(n.endswith(".pdf") for n in made) == 6
    assert out.strip().splitlines()[0].endswith(".png")


def test_info_on_a_run(fitted, capsys):
    rundir = next(fitted[0].iterdir())
    code, out, _ = run(capsys, "info", rundir)
    assert code == 0 and f"run directory : {rundir}" in out
    assert "quick fit     : order 1" in out and "K(1,-1)" in out and "c_dB" in out
    code, out, _ = run(capsys, "info", rundir, "--json")
    assert code == 0 and json.loads(out)["order"] == 1


def test_fit_bad_input(tmp_path, capsys):
    out = tmp_path / "runs"
    ex = str(example_path())
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[fit\norder = 2\n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[fit]\nordr = 2\n")
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text("[fit]\nmax_nfev = 'many'\n")
    text = tmp_path / "notes.fits"
    text.write_text("not FITS\n")
    cases = [
        ([ex, "--config", bad_toml], "not valid TOML"),
        ([ex, "--config", unknown], "unknown entry 'fit.ordr'"),
        ([ex, "--config", wrong_type], "'fit.max_nfev' must be int"),
        ([ex, "--config", tmp_path / "missing.toml"], "no such file"),
        ([ex, "--telescope", "arecibo"], "unknown telescope 'arecibo'"),
        ([tmp_path / "missing.fits"], "no such file"),
        ([text], "not a valid FITS file"),
    ]
    for argv, msg in cases:
        code, stdout, err = run(capsys, "fit", *argv, "--out", out)
        assert code == 1, (argv, stdout, err)
        assert msg in err, (argv, err)
        assert err.startswith("bayesoof: error: ") and err.count("\n") == 1
    assert not out.exists(), "a failed fit must not leave a run directory"


def test_fit_needs_a_telescope(tmp_path, capsys):
    shared = T.shared_dir() / "data" / "pyoof_example0.fits"
    if not shared.is_file():
        pytest.skip("pyoof's example file is not beside the repository")
    code, _, err = run(capsys, "fit", shared, "--out", tmp_path / "runs")
    assert code == 1 and "does not name its telescope" in err and "--telescope" in err
    assert not (tmp_path / "runs").exists()


def test_plot_and_info_bad_run(tmp_path, capsys):
    code, _, err = run(capsys, "plot", tmp_path / "nope")
    assert code == 1 and "no such run directory" in err
    code, _, err = run(capsys, "plot", tmp_path)
    assert code == 1 and "summary.json" in err
    (tmp_path / "summary.json").write_text("{not json")
    code, _, err = run(capsys, "info", tmp_path)
    assert code == 1 and "not valid JSON" in err


# ---------------------------------------------------------------- sample
def test_sample_emcee_on_the_example(tmp_path, capsys):
    """'bayesoof sample' end to end (emcee, order 1, a few steps: the cheapest sampler).

    Order 1 on the order-4 example is a misfit the quick fit flags, so its misfit
    covariance is on and the posterior's K is carried onto it (misfit_adjust.py) through
    the whole CLI: the line that says so, summary.json, posterior.nc's K_noise_only,
    'info' and 'plot'.
    """
    out = tmp_path / "runs"
    code, stdout, err = run(capsys, "sample", example_path(), "--order", "1", "--sampler",
                            "emcee", "--draws", "20", "--tune", "20", "--seed", "3",
                            "--out", out, "--quiet")
    assert code == 0, err
    (rundir,) = list(out.iterdir())
    names = {p.name for p in rundir.iterdir()}
    assert {"summary.json", "result.nc", "posterior.nc", "posterior_products.nc"} <= names
    summary = json.loads((rundir / "summary.json").read_text())
    post = summary["posterior"]
    assert post["sampler"] == "emcee"
    assert post["settings"]["draws"] == 20 and post["settings"]["seed"] == 3
    # the verdict printed is the one stored
    verdict = [ln for ln in stdout.splitlines() if ln.startswith("diagnostics: ")]
    assert len(verdict) == 1
    assert ("NOT CONVERGED" not in verdict[0]) == post["converged"]
    adequacy = [ln for ln in stdout.splitlines() if ln.startswith("adequacy: ")]
    assert len(adequacy) == 1 and post["adequacy"]["verdict"] in ("adequate", "misfit")
    assert ("MISFIT" in adequacy[0]) == (post["adequacy"]["verdict"] == "misfit")
    assert f"run directory: {rundir}" in stdout
    # the misfit adjustment: stored, said once (in the adequacy line or its own line)
    adj = post["misfit_adjustment"]
    assert adj["coefficients"] >= 1
    assert summary["uncertainty"]["switched_on"] and adj["reason"] == summary["uncertainty"][
        "reason"]
    assert stdout.count("open-faced sandwich") == 1
    import xarray as xr

    with xr.open_dataset(rundir / "posterior.nc", group="posterior") as ds:
        assert ds["K_noise_only"].shape == ds["K"].shape
        assert not np.allclose(ds["K_noise_only"].values, ds["K"].values)
    # the posterior sits where the quick fit is: amplitude of the in-focus map ~ 1000 (10 %:
    # at order 1 the free leg width takes it 7.4 % high, see test_fit_writes_a_complete_run)
    amp = post["parameters"]["amp[ZERO OOF]"]
    assert amp["mean"] == pytest.approx(1000.0, rel=0.10)
    fit_amp = summary["maps"][1]["amp"]["value"]
    assert abs(amp["mean"] - fit_amp) < 5 * summary["maps"][1]["amp"]["sd"] + 1e-9
    code, info, _ = run(capsys, "info", rundir)
    assert code == 0 and "posterior     : emcee" in info
    assert ("NOT CONVERGED" in info) == (not post["converged"])
    # the posterior surface rms stored under posterior.aperture is the one 'info' prints
    srf = post["aperture"]["surface_rms_weighted"]
    assert f"surface rms (illumination-weighted) {srf['mean']:.1f} ± {srf['sd']:.1f} µm" in info
    # 'plot' afterwards adds the posterior figures
    code, stdout, err = run(capsys, "plot", rundir)
    assert code == 0, err
    made = {p.stem for p in (rundir / "plots").iterdir()}
    assert {"posterior_phase", "posterior_coefficients", "trace", "rank", "pair",
            "phase", "beam_maps"} <= made


def test_sample_bad_input(tmp_path, capsys):
    out = tmp_path / "runs"
    bad = tmp_path / "bad.toml"
    bad.write_text("[zernike]\nlower = 1.0\nupper = -1.0\n")
    cases = [
        ([tmp_path / "missing.fits"], "no such file"),
        ([example_path(), "--telescope", "arecibo"], "unknown telescope"),
        ([example_path(), "--config", bad], "lower < upper"),
    ]
    for argv, msg in cases:
        code, _, err = run(capsys, "sample", *argv, "--out", out)
        assert code == 1 and msg in err, (argv, err)
        assert err.count("\n") == 1
    code, _, err = run(capsys, "sample", example_path(), "--sampler", "gibbs")
    assert code == 2 and "invalid choice" in err
    assert not out.exists()


# ---------------------------------------------------------------- README stays true
def test_readme_starts_with_install_and_test_commands():
    readme = (T.REPO_ROOT / "README.md").read_text().splitlines()
    first, second = readme[0].strip(), readme[1].strip()
    assert first.startswith('pip install -e ".[dev,jax]" && bayesoof fit ')
    assert "example_path()" in first and "--order 4" in first
    assert second == "python -m pytest -q"
    # CI runs exactly the README's test command, after the README's install
    ci = (T.REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert second in ci
    assert any('pip install' in line and '-e ".[dev,jax]"' in line for line in ci)


def test_readme_cli_options_exist():
    """Every --option the README names belongs to the parser (pytest's own excepted)."""
    import argparse
    import re

    text = (T.REPO_ROOT / "README.md").read_text()
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)) - {"--run-slow"}
    parser = cli.build_parser()
    known = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                known |= set(sub._option_string_actions)
    assert named <= known, sorted(named - known)


def test_ticker_on_a_terminal_and_off():
    import io
    import time

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    with Ticker("working", stream=tty):
        time.sleep(0.6)
    text = tty.getvalue()
    assert text.count("\rworking") >= 1 and text.endswith("\r")  # line cleared at the end
    plain = io.StringIO()
    with Ticker("working", stream=plain):
        pass
    assert plain.getvalue() == "working ...\n"
    quiet = io.StringIO()
    with Ticker("working", stream=quiet, quiet=True):
        pass
    assert quiet.getvalue() == ""
