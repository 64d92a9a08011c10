"""Gaussian taper (pyoof's illum_gauss)."""

from __future__ import annotations

from bayesoof.physics.illumination import (
    EDGE_TAPER,
    OFFSET_CENTRE,
    Illumination,
    register,
    tensor_module,
)

__all__ = ["gaussian"]


def gaussian(x, y, radius, c_dB, x0=0.0, y0=0.0, module=None):
    """Gaussian taper: exp(-r'² / (2 (σ R)²)), σ = 10^(c_dB/20) (pyoof's illum_gauss).

    x, y, x0, y0 and radius in m, c_dB in dB.
    """
    module = tensor_module() if module is None else module
    sigma = 10.0 ** (c_dB / 20.0) * radius
    return module.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2.0 * sigma**2))


register(Illumination("gaussian", gaussian, (EDGE_TAPER, *OFFSET_CENTRE),
                      description="Gaussian taper, exp(-r'^2 / (2 sigma^2 R^2)), "
                                  "sigma = 10^(c_dB/20)"))
