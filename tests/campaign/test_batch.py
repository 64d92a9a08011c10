"""The Dask batch driver, the campaign table and the campaign commands end to end."""

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from bayesoof.campaign import dask_batch as D
from bayesoof.campaign.table import read_table, stage1_from_table
from bayesoof.physics import zernike


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """Five tiny observations (order 2, 17 × 17 maps) at 15-85 deg, and one broken file."""
    from bayesoof.campaign.simulate import random_gravity, simulate_campaign, write_campaign

    root = tmp_path_factory.mktemp("campaign")
    beta, tau = random_gravity(2, 0.03, 0.005, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maps, truth = simulate_campaign(np.linspace(15, 85, 5), beta, tau, n_grid=17,
                                        extent=5.0, snr=300, seed=2)
    paths = write_campaign(maps, root / "fits")
    (root / "fits" / "broken.fits").write_bytes(paths[0].read_bytes()[:4000])
    return root, truth


@pytest.fixture(scope="module")
def batched(campaign, tmp_path_factory):
    """The campaign batched once (one thread worker: the test process's compile cache)."""
    root, truth = campaign
    out = tmp_path_factory.mktemp("batched") / "c"
    log = io.StringIO()
    rows = D.batch(root / "fits", out, order=2, n_workers=1, threads=True, progress=log)
    return out, rows, log.getvalue(), truth


def test_batch_fits_each_file_and_reports_failures(batched):
    out, rows, text, truth = batched
    assert len(rows) == 6 and "6/6" in text
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(bad) == 1 and "broken.fits" in bad[0]["file"]
    assert "cannot detect the beam-map format" in bad[0]["reason"]
    assert "failed: " in text and "broken.fits" in text
    ok = [r for r in rows if r["status"] == "ok"]
    assert [r["elevation_deg"] for r in ok] == pytest.approx(truth.elevation)
    # one worker, one geometry: at most the first observation compiled the model
    assert sum(r["compile_time_s"] > 0 for r in ok) <= 1
    for r in ok:
        assert Path(r["run_dir"]).parent == out / "runs"
        assert (Path(r["run_dir"]) / "summary.json").is_file()
        assert r["converged"] and len(r["K"]) == 6 and r["adequacy"] in ("adequate", "misfit")
    table = read_table(out)
    assert list(table["status"].values) == [r["status"] for r in rows]
    csv_text = (out / "campaign.csv").read_text()
    assert csv_text.count("\n") == 7 and "np.float64" not in csv_text
    s1 = stage1_from_table(table)
    assert s1.n_obs == 5 and list(s1.terms) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(s1.K, np.array([r["K"] for r in ok]))


def test_batch_resumes_without_refitting(batched, campaign):
    out, rows, _, _ = batched
    root, _ = campaign
    log = io.StringIO()
    rows2 = D.batch(root / "fits", out, order=2, n_workers=1, threads=True, progress=log)
    assert "5 already done, 1 to fit" in log.getvalue()
    assert [r["run_dir"] for r in rows2 if r["status"] == "ok"] == \
        [r["run_dir"] for r in rows if r["status"] == "ok"]
    assert len(list((out / "runs").iterdir())) == 5


def test_gravity_and_surface_commands_on_the_campaign(batched, tmp_path, capsys):
    """The two commands a new user runs after the batch: gravity model, then the table."""
    from bayesoof.cli.app import main

    out, _, _, truth = batched
    runs = tmp_path / "runs"
    assert main(["gravity", str(out), "--out", str(runs), "--draws", "300", "--tune", "300",
                 "--chains", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "scatter scales tau" in text and "run directory:" in text
    run = next(runs.iterdir())
    summ = json.loads((run / "summary.json").read_text())
    assert summ["kind"] == "gravity" and len(summ["terms"]) == 15 and len(summ["scatter"]) == 5
    assert {"n", "l", "term", "mean", "sd", "hdi_3%", "hdi_97%"} <= set(summ["terms"][0])
    assert (run / "gravity.nc").is_file() and (run / "thermal.csv").is_file()
    assert (run / "plots" / "gravity_terms.png").is_file()
    assert (run / "plots" / "surface_rms_vs_elevation.png").is_file()
    # truth: with 5 observations the intervals are wide; A, B, C of at least 4 of the 5
    # terms must hold the truth (each term misses with ~6 % at 94 %)
    hits = [r["hdi_3%"] <= truth.beta["ABC".index(r["term"]),
                                       zernike.nl_to_j(r["n"], r["l"])] <= r["hdi_97%"]
            for r in summ["terms"]]
    assert sum(hits) >= 12, summ["terms"]
    assert main(["info", str(run)]) == 0
    assert "gravity model of 5 observations" in capsys.readouterr().out
    assert main(["surface", str(run), "--format", "effelsberg"]) == 0
    lut = (run / "lookup_effelsberg.data").read_text().splitlines()
    assert len(lut) == 97 and lut[-1] == "**ENDE**" and len(lut[0].split()) == 14
    assert (run / "lookup_effelsberg_sd.data").is_file()
    assert main(["surface", str(run), "--format", "gbt"]) == 0
    assert main(["surface", rows_run(out), "--format", "table"]) == 0
    assert "wrote" in capsys.readouterr().out


def rows_run(out) -> str:
    return str(sorted((out / "runs").iterdir())[0])


def test_campaign_simulator_matches_simulate():
    """The campaign's one-compile simulator reproduces bayesoof.simulate.simulate."""
    from bayesoof.campaign.simulate import _Simulator
    from bayesoof.simulate import random_coefficients, simulate

    K = random_coefficients(2, 0.05, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = simulate("effelsberg", K, n_grid=11, extent=5.0, snr=300, seed=4)
        b = _Simulator("effelsberg", 2, n_grid=11, extent=5.0)(K, snr=300, seed=4)
    for ma, mb in zip(a.maps, b.maps, strict=True):
        assert ma.d_z == mb.d_z and ma.name == mb.name
        np.testing.assert_array_equal(ma.u, mb.u)
        # same graph, same noise draws: equal to rounding
        np.testing.assert_allclose(mb.beam, ma.beam, rtol=0, atol=1e-12 * ma.beam.max())
        np.testing.assert_allclose(mb.sigma, ma.sigma, rtol=1e-12)


def test_connecting_honours_dask_tls_configuration(monkeypatch, tmp_path):
    """--scheduler: the client gets distributed.Security() built from Dask's config."""
    import dask
    import distributed

    seen = {}

    class FakeClient:
        def __init__(self, address, security=None):
            seen["address"], seen["security"] = address, security

    monkeypatch.setattr(distributed, "Client", FakeClient)
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with dask.config.set({"distributed.comm.tls.ca-file": str(ca),
                          "distributed.comm.require-encryption": True}):
        client, cluster = D._client("tls://scheduler.example:8786", None, False)
    assert cluster is None and seen["address"] == "tls://scheduler.example:8786"
    assert seen["security"].tls_ca_file == str(ca)
    assert seen["security"].require_encryption
    # and Dask's own scheduler-address setting is used when none is given
    with dask.config.set({"scheduler-address": "tcp://elsewhere:8786"}):
        D._client(None, None, False)
    assert seen["address"] == "tcp://elsewhere:8786"


def test_ctrl_c_cancels_and_closes_the_local_cluster(campaign, monkeypatch, tmp_path):
    root, _ = campaign
    made = {}
    real = D._client

    def spy(*args):
        client, cluster = real(None, 1, True)
        made["client"], made["cluster"] = client, cluster
        return client, cluster

    def interrupted(futures):
        raise KeyboardInterrupt

    monkeypatch.setattr(D, "_client", spy)
    monkeypatch.setattr("distributed.as_completed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        D.batch(root / "fits", tmp_path / "c", order=2, progress=None)
    assert made["client"].status == "closed"
    assert str(made["cluster"].status.name) == "closed"


def test_collect_files_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no FITS files"):
        D.collect_files([tmp_path])
    with pytest.raises(FileNotFoundError, match="nope.fits: no such file"):
        D.collect_files([tmp_path / "nope.fits"])
