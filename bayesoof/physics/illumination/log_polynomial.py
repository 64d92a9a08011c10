"""Log-polynomial taper: a Gaussian with two more radial shape terms (shaped optics).

A shaped dual reflector (the SRT's Gregorian) is designed for a flat aperture illumination
with a steep roll-off at the rim, which no one-parameter taper follows: fitted to the TICRA
GRASP physical-optics far fields of the SRT (``shared/data/grasp_srt``, bench/grasp_srt.py)
the Gaussian leaves 1.5-1.7 % of the defocused peaks as residual, this taper 0.8 %
(bench/RESULTS.md, "GRASP SRT").  With ``b2 = b3 = 0`` it is a Gaussian whose amplitude at
the rim is the edge taper ``c_dB`` (unlike :mod:`~bayesoof.physics.illumination.gaussian`,
pyoof's form, whose ``c_dB`` sets the width σ = 10^(c_dB/20) R).
"""

from __future__ import annotations

import math

from bayesoof.physics.illumination import (
    EDGE_TAPER,
    OFFSET_CENTRE,
    Coefficient,
    Illumination,
    register,
    tensor_module,
)

__all__ = ["SHAPE_BOUND", "log_polynomial"]

#: bound of the shape coefficients b2, b3 (nepers of log-amplitude): the GRASP SRT fit
#: gives b2 = -5.1, b3 = +2.6; at |b| = 10 the amplitude inside the rim already varies by
#: e^(±2.5) from these terms alone, far beyond any feed pattern
SHAPE_BOUND = 10.0
_SHAPE_PRIOR = {"dist": "uniform", "lower": -SHAPE_BOUND, "upper": SHAPE_BOUND}
SHAPE = tuple(
    Coefficient(name, "", 0.0, (-SHAPE_BOUND, SHAPE_BOUND), _SHAPE_PRIOR,
                f"log-amplitude shape term {name} x rho^2 (rho^{2 * k - 2} - 1), nepers")
    for k, name in ((2, "b2"), (3, "b3"))
)


def log_polynomial(x, y, radius, c_dB, b2, b3, x0=0.0, y0=0.0, module=None):
    """Log-polynomial taper: exp(ln(C) ρ² + b2 ρ² (ρ² - 1) + b3 ρ² (ρ⁴ - 1)), C = 10^(c_dB/20).

    Parameters
    ----------
    x, y : array or tensor
        Aperture coordinates, m.
    radius : float
        Primary radius R, m.
    c_dB : scalar
        Edge taper, dB: the amplitude at ρ = 1 is C whatever b2, b3.
    b2, b3 : scalar
        Shape of the log-amplitude inside the rim, nepers (0, 0: a Gaussian).
    x0, y0 : scalar
        Illumination centre offset, m; ρ = |(x - x0, y - y0)| / R.

    Notes
    -----
    The amplitude is 1 at the centre; every term vanishes there and the shape terms vanish
    at the rim too, so c_dB keeps its meaning as the edge taper.  b2 < 0 with b3 > 0 flattens
    the top and steepens the roll-off (the SRT's shaped optics).
    """
    module = tensor_module() if module is None else module
    rr = ((x - x0) ** 2 + (y - y0) ** 2) / radius**2
    log_edge = c_dB * (math.log(10.0) / 20.0)
    return module.exp(rr * (log_edge + b2 * (rr - 1.0) + b3 * (rr**2 - 1.0)))


register(Illumination("log_polynomial", log_polynomial, (EDGE_TAPER, *SHAPE, *OFFSET_CENTRE),
                      fit_free=("c_dB", "b2", "b3"), model_free=("c_dB", "b2", "b3"),
                      description="log-polynomial taper (shaped optics), "
                                  "exp(ln C rho^2 + b2 rho^2 (rho^2 - 1) + b3 rho^2 (rho^4 - 1))"))
