"""Where the cold start's iterates lie: the measurement behind SameBasinStop's thresholds.

    python bench/cold_start_basin.py [--datasets 10 18] [--n-grid 41]

For pyoof's example (``shared/data/pyoof_example0.fits``, default fit, where the
continuation is right and the cold start loses) and for datasets of bench/misspec_study.py
(setting "baseline" and "all", seed 2026, where the continuation is trapped in another
basin and the cold start wins) it runs the default fit with the basin stop disarmed, so the
cold start runs to its ftol, and prints, per cold-start iteration, what
:class:`bayesoof.inference.stopping.SameBasinStop` sees: the iterate's χ² excess over the
continuation's (in units of the continuation's χ²) and the error of the Gauss-Newton
prediction of that excess about the continuation's point (in units of the excess).  The
stop fires when 0 < excess ≤ SAME_BASIN_EXCESS and error ≤ SAME_BASIN_MISMATCH; the table
shows which iterates would have fired it and whether that dataset's cold start won.
"""

from __future__ import annotations

import argparse
import types
import warnings

from bayesoof.inference import stopping
from bayesoof.testing import bench_script, shared_dir


def _recording(log: list):
    """SameBasinStop.__call__ replaced: record (excess / chi2, error / excess), never stop."""

    def call(self, intermediate_result):
        m = self.measure(intermediate_result)
        if m is not None:
            excess, error = m
            log.append((excess / self.chi2, error / abs(excess or 1.0), excess > 0))

    return call


def _cases(a):
    """(label, BeamMaps) to fit: pyoof's example, then the study's datasets."""
    from bayesoof.data.fitsio import read_beam_maps

    pyoof = shared_dir() / "data" / "pyoof_example0.fits"
    if pyoof.is_file():
        yield "pyoof example", read_beam_maps(pyoof)
    study = bench_script("misspec_study")
    args = types.SimpleNamespace(n_grid=a.n_grid, snr=300.0, seed=2026, order=None)
    for setting in a.settings:
        for i in a.datasets:
            yield f"{setting} {i}", study.make_data(setting, i, args)[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", type=int, nargs="+", default=[10, 18])
    p.add_argument("--settings", nargs="+", default=["baseline", "all"])
    p.add_argument("--n-grid", type=int, default=41)
    a = p.parse_args(argv)
    from bayesoof.inference.fit import fit

    original = stopping.SameBasinStop.__call__
    print(f"fires when 0 < excess <= {stopping.SAME_BASIN_EXCESS:g} chi2 and "
          f"error <= {stopping.SAME_BASIN_MISMATCH:.3g} excess")
    print(f"{'data':>16} {'cold start':>10} {'iterate':>7} {'excess/chi2':>12} "
          f"{'error/excess':>12} {'fires':>5}")
    try:
        for label, data in _cases(a):
            log: list = []
            stopping.SameBasinStop.__call__ = _recording(log)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = fit(data, "effelsberg")
            last = res.plain_last or res.last
            for n, (excess, error, positive) in enumerate(log, 1):
                fires = (positive and excess <= stopping.SAME_BASIN_EXCESS
                         and error <= stopping.SAME_BASIN_MISMATCH)
                print(f"{label:>16} {last.cold_start or 'not run':>10} {n:7d} "
                      f"{excess:12.4g} {error:12.3g} {'yes' if fires else '':>5}")
            if not log:
                print(f"{label:>16} {last.cold_start or 'not run':>10}")
    finally:
        stopping.SameBasinStop.__call__ = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
