"""Gaussian taper (pyoof's illum_gauss)."""

from __future__ import annotations

from bayesoof.physics.illumination import Illumination, register, tensor_module
from bayesoof.physics.illumination.parabolic import CENTRE_PRIOR

__all__ = ["gaussian"]


def gaussian(x, y, radius, c_dB, x0=0.0, y0=0.0, module=None):
    """Gaussian taper: exp(-r'² / (2 (σ R)²)), σ = 10^(c_dB/20) (pyoof's illum_gauss).

    x, y, x0, y0 and radius in m, c_dB in dB.
    """
    module = tensor_module() if module is None else module
    sigma = 10.0 ** (c_dB / 20.0) * radius
    return module.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2.0 * sigma**2))


register(Illumination(
    "gaussian", gaussian, ("c_dB", "x0", "y0"),
    units={"c_dB": "dB", "x0": "m", "y0": "m"},
    start={"c_dB": -14.5, "x0": 0.0, "y0": 0.0},
    bounds={"c_dB": (-25.0, -1.0), "x0": (-1.0, 1.0), "y0": (-1.0, 1.0)},
    fit_free=("c_dB",), model_free=("c_dB",),
    priors={"c_dB": {"dist": "uniform", "lower": -25.0, "upper": -1.0},
            "x0": CENTRE_PRIOR, "y0": CENTRE_PRIOR},
    description="Gaussian taper, exp(-r'^2 / (2 sigma^2 R^2)), sigma = 10^(c_dB/20)",
))
