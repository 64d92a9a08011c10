"""bench/misspec_posterior.py: the posterior side of the misspecification study.

A dataset costs one quick fit and one default posterior (minutes of CPU on the shared
machine), so the real version is a slow test (--run-slow) of a few baseline datasets.  The
default run checks the table's arithmetic on hand-made rows (no fit, no sampling), which
fails if pairing, exclusion or the coverage sums go wrong.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from bayesoof.testing import bench_script


def _study():
    return bench_script("misspec_posterior")


def _row(setting, i, inside, n, err, q_inside, q_err, chi2=1.0, div=0, conv=True):
    return {"setting": setting, "dataset": i, "method": "posterior", "inside90": inside,
            "n": n, "z2": float(n), "phase_err": err, "quick_inside90": q_inside,
            "quick_n": n, "quick_z2": 4.0 * n, "quick_phase_err": q_err,
            "reduced_chi2": chi2, "converged": conv, "divergences": div, "post_cpu_s": 10.0}


def test_summary_pairs_datasets_and_excludes_failed_baselines():
    study = _study()
    rows = [_row("baseline", 0, 18, 20, 0.01, 17, 0.02),
            _row("baseline", 1, 19, 20, 0.02, 18, 0.02),
            _row("baseline", 2, 0, 20, 9.0, 0, 9.0, chi2=3.0),  # missed optimum: excluded
            _row("all", 0, 10, 20, 0.03, 16, 0.02, div=4, conv=False),
            _row("all", 1, 12, 20, 0.02, 18, 0.04),
            _row("all", 2, 20, 20, 0.01, 20, 0.01),
            {"setting": "all", "dataset": 3, "method": "posterior", "error": "boom"}]
    tab = {(r["setting"], r["method"]): r for r in study.summarise(rows)}
    post, quick = tab["all", "posterior"], tab["all", "quick fit"]
    assert post["datasets"] == 2 and post["excluded"] == 1 and post["failed"] == 1
    assert post["coverage90"] == pytest.approx(22 / 40)
    assert quick["coverage90"] == pytest.approx(34 / 40)
    assert post["z_rms"] == pytest.approx(1.0) and quick["z_rms"] == pytest.approx(2.0)
    # paired ratios: posterior 0.03/0.01 and 0.02/0.02 -> median 2; quick 1 and 2 -> 1.5
    assert post["phase_ratio"] == pytest.approx(2.0)
    assert quick["phase_ratio"] == pytest.approx(1.5)
    rms = np.sqrt((0.03**2 + 0.02**2) / 2) / np.sqrt((0.01**2 + 0.02**2) / 2)
    assert post["phase_ratio_rms"] == pytest.approx(rms)
    assert post["converged"] == 0.5 and post["divergences"] == 4 and post["with_div"] == 1
    assert tab["baseline", "posterior"]["phase_ratio"] == pytest.approx(1.0)


@pytest.mark.slow
def test_posterior_covers_the_truth_on_baseline_data():
    """Three baseline datasets (25 × 25 maps) through the default fit and posterior: every
    run converges without divergences, and the 90 % intervals hold the truth for at least
    75 % of the ~60 free K (0.90 expected; binomial se 0.039 over 60, so 0.75 is 3.9 se
    below: a calibrated posterior fails it with p < 1e-4, one as narrow as the noise-only
    intervals under misfit (0.3-0.7) passes it with p < 0.05)."""
    study = _study()
    args = types.SimpleNamespace(n_grid=25, snr=300.0, seed=11, order=None, sample_seed=0)
    rows = [r for i in range(3) for r in study.one("baseline", i, args)]
    assert all("n" in r for r in rows), [r.get("error") for r in rows]
    assert all(r["converged"] for r in rows), [r["problems"] for r in rows]
    assert sum(r["divergences"] or 0 for r in rows) == 0
    k, n = sum(r["inside90"] for r in rows), sum(r["n"] for r in rows)
    assert k / n >= 0.75, (k, n)
    # the posterior mean's phase error within 1.5x of the quick fit's on the same data
    for r in rows:
        assert r["phase_err"] <= 1.5 * r["quick_phase_err"], r
