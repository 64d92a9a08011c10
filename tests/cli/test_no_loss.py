"""Sampling time is never lost: raw draws kept before assembly, 'bayesoof finish', signals.

All on a pyoof-format file (no per-sample noise column: the noise is a per-map posterior
variable, the case that used to fail in assembly), order 1, 9 x 9 maps, emcee with
max(2 d + 2, 32) walkers x (10 + 20) steps: seconds of sampling, the point is the bookkeeping.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import xarray as xr

from bayesoof.cli import main
from bayesoof.inference import checkpoint, posterior, progress

SAMPLE = ["--telescope", "effelsberg", "--order", "1", "--sampler", "emcee", "--draws", "20",
          "--tune", "10", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def pyoof_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny_pyoof.fits"
    code = main(["simulate", str(path), "--order", "1", "--n-grid", "9", "--extent", "5",
                 "--format", "pyoof", "--seed", "2"])
    assert code == 0
    return path


@pytest.fixture(scope="module")
def recovered(pyoof_file, tmp_path_factory):
    """'sample' whose assembly fails after sampling, then 'bayesoof finish' on the run."""
    out = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    real = posterior.assemble

    def broken(*args, **kwargs):
        raise MemoryError("simulated failure after sampling")

    mp.setattr(posterior, "assemble", broken)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["sample", str(pyoof_file), *SAMPLE, "--out", str(out)])
    mp.setattr(posterior, "assemble", real)
    (run,) = list(out.iterdir())
    before = sorted(p.name for p in run.iterdir())
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        finished = main(["finish", str(run), "--quiet"])
    mp.undo()
    return code, err.getvalue(), run, before, finished


def test_failure_after_sampling_keeps_a_recoverable_run(recovered):
    code, err, run, before, _ = recovered
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "simulated failure after sampling" in lines[0]
    assert f"the draws are kept in {run}" in lines[0] and f"'bayesoof finish {run}'" in lines[0]
    assert not run.name.startswith(".staging")
    # the quick fit and the raw draws, no posterior yet
    assert checkpoint.RAW_FILE in before and "result.nc" in before and "summary.json" in before
    assert "posterior.nc" not in before
    kept = checkpoint.load_raw(run)
    z = kept["raw"].z  # walkers x kept draws x d: all of them (emcee: max(2 d + 2, 32)
    d = z.shape[-1]    # walkers: 44 with issue 9's default nuisances, 32 before)
    assert z.shape[:2] == (max(2 * d + 2, 32) + max(2 * d + 2, 32) % 2, 20)
    assert kept["recipe"]["data"].endswith("tiny_pyoof.fits")


def test_finish_completes_the_run(recovered):
    _, _, run, _, finished = recovered
    assert finished == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["posterior"]["sampler"] == "emcee"
    with xr.open_dataset(run / "posterior.nc", group="posterior", engine="h5netcdf") as post:
        # per-map noise of a file without a noise column: dims ('chain', 'draw', 'map')
        assert post["sigma"].dims == ("chain", "draw", "map") and post.sizes["map"] == 3
        assert post.sizes["draw"] == 20
        # summary.json keeps full precision: its means are those of the draws (float64
        # sums of 640 numbers agree to ~1e-15 relative; ArviZ's default rounding gave 1e-3)
        primary = summary["posterior"]["modes"]["primary"]  # the table's chains
        K = post["K"].isel(chain=primary).values.reshape(-1, post.sizes["zernike"])
        params = summary["posterior"]["parameters"]
        for j, name in enumerate(post["zernike"].values):
            assert params[str(name)]["mean"] == pytest.approx(K[:, j].mean(), rel=1e-12)
    # the posterior maps also as FITS with units and a WCS in aperture metres
    from astropy.io import fits

    with fits.open(run / "posterior_phase.fits") as hdul:
        names = [h.name for h in hdul]
        assert names == ["PHASE_MEAN", "PHASE_SD", "PHASE_WIDTH", "SURFACE_MEAN",
                         "SURFACE_SD", "SURFACE_WIDTH"]
        assert [h.header["BUNIT"] for h in hdul] == ["rad"] * 3 + ["um"] * 3
        h = hdul["SURFACE_SD"].header
        assert h["CTYPE1"] == "X" and h["CUNIT1"] == "m" and h["CDELT1"] > 0
        with xr.open_dataset(run / "posterior_products.nc", engine="h5netcdf") as prod:
            np.testing.assert_array_equal(hdul["SURFACE_SD"].data, prod["surface_sd"].values)
            np.testing.assert_array_equal(hdul["PHASE_WIDTH"].data,
                                          prod["phase_hi"].values - prod["phase_lo"].values)
            assert h["CRVAL1"] == pytest.approx(float(prod["x"][0]))
    assert main(["finish", str(run), "--quiet"]) == 1  # already complete: refused


def test_same_seed_same_files(recovered, pyoof_file, tmp_path):
    """A fresh run with the same seed equals the recovered one, file by file.

    Timing entries (seconds, dates) are the only differences allowed.  Made under umask
    027: every file 0640, every folder 0750 (quick-fit files used to be 0600).
    """
    _, _, run_a, _, _ = recovered
    old = os.umask(0o027)  # and every file and folder follows the umask (issue 8, item 3)
    try:
        assert main(["sample", str(pyoof_file), *SAMPLE, "--out", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    (run_b,) = list(tmp_path.iterdir())
    modes = {p.name: p.stat().st_mode & 0o777 for p in [run_b, *run_b.rglob("*")]}
    want = {name: 0o750 if (run_b / name).is_dir() or name == run_b.name else 0o640
            for name in modes}
    assert modes == want, {k: oct(v) for k, v in modes.items() if v != want[k]}
    names = sorted(p.name for p in run_a.iterdir())
    assert names == sorted(p.name for p in run_b.iterdir())
    for name in names:
        a, b = run_a / name, run_b / name
        if name.endswith((".csv", ".fits")):
            assert a.read_bytes() == b.read_bytes(), name
    for group in ("posterior", "sample_stats"):
        with (xr.open_dataset(run_a / "posterior.nc", group=group, engine="h5netcdf") as da,
              xr.open_dataset(run_b / "posterior.nc", group=group, engine="h5netcdf") as db):
            xr.testing.assert_identical(da.drop_attrs(), db.drop_attrs())
    with np.load(run_a / checkpoint.RAW_FILE) as ra, np.load(run_b / checkpoint.RAW_FILE) as rb:
        np.testing.assert_array_equal(ra["z"], rb["z"])

    def strip(d):
        if isinstance(d, dict):
            return {k: strip(v) for k, v in d.items()
                    if "time" not in k and k not in ("timing", "created")}
        if isinstance(d, list):
            return [strip(v) for v in d]
        return d

    sa = strip(json.loads((run_a / "summary.json").read_text()))
    sb = strip(json.loads((run_b / "summary.json").read_text()))
    sa.pop("source", None), sb.pop("source", None)
    assert sa == sb


@pytest.mark.slow  # a third sampling run (~30 s); tests/cli/test_console.py is the quick check
def test_sigterm_during_sampling_keeps_the_draws_made(pyoof_file, tmp_path, capsys,
                                                      monkeypatch):
    """SIGTERM half-way through emcee: the draws so far are assembled, saved and said so."""
    real_update = progress.Progress.update

    def update(self, done, note=""):
        if done == 20:  # 10 burn-in + 10 kept steps
            os.kill(os.getpid(), signal.SIGTERM)
        real_update(self, done, note)

    monkeypatch.setattr(progress.Progress, "update", update)
    code = main(["sample", str(pyoof_file), *[a for a in SAMPLE if a != "--quiet"],
                 "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "sampling was interrupted: kept 10 of 20 draws per chain" in out
    (run,) = list(tmp_path.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["posterior"]["interrupted"] is True
    with xr.open_dataset(run / "posterior.nc", group="posterior", engine="h5netcdf") as post:
        assert post.sizes["draw"] == 10
