"""Order selection by the Laplace evidence (bayesoof.campaign.order)."""

import warnings

import numpy as np
import pytest

from bayesoof.campaign.order import fit_auto, laplace_evidence
from bayesoof.simulate import random_coefficients, simulate


def _maps(truth_order: int, snr: float = 300.0, K=None, seed=None):
    if K is None:
        K = random_coefficients(truth_order, 0.05, seed=truth_order)
    return simulate("effelsberg", K, n_grid=31, extent=7.0, snr=snr,
                    seed=truth_order if seed is None else seed)


@pytest.mark.parametrize("truth", [3, pytest.param(4, marks=pytest.mark.slow),
                                   pytest.param(5, marks=pytest.mark.slow)])
def test_auto_picks_the_truths_order_at_snr_300(truth):
    # candidates 1..truth+1: the order above the truth must lose on its Occam factor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, sel = fit_auto(_maps(truth), max_order=truth + 1)
    assert sel.selected_order == truth, sel.lines()
    assert sel.indistinguishable == [truth]
    assert res.order == truth
    summ = res.summary()
    assert summ["selected_order"] == truth
    crit = [r["log_evidence"] for r in summ["order_selection"]["per_order"]]
    assert len(crit) == truth + 1 and np.argmax(crit) == truth - 1


def test_evidence_matches_gaussian_closed_form():
    """For a linear-Gaussian problem the Laplace evidence is exact: compare with the
    marginal likelihood N(y; 0, σ²I + A D Aᵀ) over the K terms (no nuisance terms)."""
    from bayesoof.campaign.order import _prior_sd
    from bayesoof.physics import zernike

    rng = np.random.default_rng(1)
    nl = zernike.nl_list(2)
    A = rng.normal(size=(40, 5)) * 30.0  # posterior sd ~0.005 wave ≪ prior sd ~0.2
    theta_true = rng.normal(size=5) * 0.05
    y = A @ theta_true + rng.normal(size=40)  # σ = 1 (standardised residuals)

    class Space:
        pass

    sp = Space()
    sp.nl = nl
    sp.free_index = np.arange(1, 6)
    sd0 = _prior_sd(nl, 0.1, 0.1)[1:]
    # least squares point
    th = np.linalg.lstsq(A, y, rcond=None)[0]
    sp.values = np.r_[0.0, th]

    class OrderStub:
        pass

    o = OrderStub()
    o.space, o.jacobian = sp, A
    o.chi2 = float(np.sum((y - A @ th) ** 2))
    lz = laplace_evidence(o)
    # exact marginal likelihood, without the σ normalisation (dropped by the criterion too)
    C = np.eye(40) + A @ np.diag(sd0**2) @ A.T
    sign, ld = np.linalg.slogdet(C)
    exact = -0.5 * y @ np.linalg.solve(C, y) - 0.5 * ld
    # The criterion evaluates the prior at the least-squares point instead of the posterior
    # mode; with prior sd ≫ posterior sd the error is ~ ½ Σ (K̂/s)² · (sd/s)² ≪ 0.01 nat.
    assert lz == pytest.approx(exact, abs=0.01)


def test_says_when_orders_cannot_be_told_apart():
    """Order-4 terms at the evidence's detection threshold: orders 3 and 4 tie.

    Truth: order 3 plus the five order-4 terms at ±TIE waves (their Laplace sd here is
    0.002-0.007 waves).  TIE was found once for this noise seed by scanning the amplitude:
    at 0.0060 waves order 3 wins by 3.0 nats, at 0.0066 the two are within 0.9 nat, at
    0.0072 order 4 wins by 5.3 nats.  The selection must name both and choose the lower.
    """
    K = random_coefficients(4, 0.05, seed=4)
    K[10:15] = np.sign(K[10:15]) * TIE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, sel = fit_auto(_maps(4, K=K, seed=4), max_order=4, orders=[3, 4],
                            config=WITHOUT_NUISANCES)
    assert sel.indistinguishable == [3, 4], sel.lines()
    assert sel.selected_order == 3
    assert res.order == 3
    assert any("cannot be told apart" in line for line in sel.lines())


TIE = 0.0066  # waves
# TIE was scanned with the free set before issue 9 made the focus offsets, pointing and the
# taper q, x0, y0 (and session 3 the baseline drift) default nuisances (each adds an Occam
# factor and moves the tie): the test of the criterion keeps that free set
WITHOUT_NUISANCES = {"focus": {"free": False}, "pointing": {"free": False},
                     "drift": {"baseline_free": False},
                     "illumination": {n: {"free": False} for n in ("q", "x0", "y0")}}


@pytest.mark.slow  # the CLI layer over fit_auto (tested above); a simulate and two compiles
def test_cli_fit_order_auto_prints_the_criterion_and_writes_selected_order(tmp_path, capsys):
    import json

    from bayesoof.cli.app import main

    fits = tmp_path / "obs.fits"
    assert main(["simulate", str(fits), "--order", "2", "--n-grid", "21", "--extent", "6",
                 "--snr", "300", "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["fit", str(fits), "--order", "auto", "--max-order", "3", "--out",
                 str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ln Z" in out and "selected order 2" in out
    run = next((tmp_path / "runs").iterdir())
    summ = json.loads((run / "summary.json").read_text())
    assert summ["selected_order"] == 2 and summ["order"] == 2
    assert [r["order"] for r in summ["order_selection"]["per_order"]] == [1, 2, 3]
