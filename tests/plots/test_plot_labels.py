"""Trace and rank plots say what they show and why, with units, and ticks that do not overlap."""

from __future__ import annotations

import arviz as az
import numpy as np

from bayesoof.plots import diagnostics as F


def _idata():
    rng = np.random.default_rng(0)
    labels = ["K(2,-2)", "K(2,0)", "K(2,2)"]
    return az.from_dict(
        posterior={"K": rng.normal(0.05, 1e-3, (2, 50, 3)),
                   "c_dB": rng.normal(-14.5, 0.3, (2, 50))},
        coords={"zernike": labels}, dims={"K": ["zernike"]},
    ), labels


def _overlap(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 > b.x0 + 1e-6 for a, b in zip(boxes, boxes[1:], strict=False))


def test_trace_and_rank_say_what_why_and_units():
    idata, labels = _idata()
    for maker in (F.plot_trace, F.plot_rank):
        fig = maker(idata, var_names=["K", "c_dB"], coords={"zernike": labels[:2]})
        F._explain(fig, "trace: K(2,-2), K(2,0), c_dB", "the 2 of 3 free Zernike terms with "
                   "the largest |mean| / sd")
        sup = fig._suptitle.get_text()
        assert "K(2,-2), K(2,0), c_dB" in sup and "largest |mean| / sd" in sup
        assert "K in waves" in sup
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles and all("[waves]" in t or "[dB]" in t for t in titles), titles
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)  # the figures are detached from pyplot
        canvas.draw()
        renderer = canvas.get_renderer()
        for ax in fig.axes:
            boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()
                     if t.get_text() and t.get_visible()]
            assert not _overlap(boxes), (ax.get_title(), [t.get_text()
                                                           for t in ax.get_xticklabels()])
