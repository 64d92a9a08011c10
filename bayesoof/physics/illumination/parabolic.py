"""Parabolic taper on a pedestal (pyoof's illum_parab)."""

from __future__ import annotations

from bayesoof.physics.illumination import (
    EDGE_TAPER,
    OFFSET_CENTRE,
    TAPER_ORDER,
    Illumination,
    register,
    tensor_module,
)

__all__ = ["parabolic"]


def parabolic(x, y, radius, c_dB, q, x0=0.0, y0=0.0, module=None):
    """Parabolic taper on a pedestal: C + (1 - C) (1 - (r'/R)²)^q, C = 10^(c_dB/20).

    Parameters
    ----------
    x, y : array or tensor
        Aperture coordinates, m.
    radius : float
        Primary radius R, m.
    c_dB : scalar
        Edge taper, dB (pyoof default -14.5; physical range [-25, -1]).
    q : scalar
        Taper order, dimensionless (range [1, 2]).
    x0, y0 : scalar
        Illumination centre offset, m.

    Notes
    -----
    ``1 - (r'/R)²`` is clipped at 0 so that points of an offset illumination that fall
    beyond R' = R stay finite (the power of a negative base is undefined).
    """
    module = tensor_module() if module is None else module
    edge = 10.0 ** (c_dB / 20.0)
    rr = ((x - x0) ** 2 + (y - y0) ** 2) / radius**2
    base = module.maximum(1.0 - rr, 0.0)
    return edge + (1.0 - edge) * base**q


register(Illumination("parabolic", parabolic, (EDGE_TAPER, TAPER_ORDER, *OFFSET_CENTRE),
                      model_free=("c_dB", "q"),
                      description="parabolic taper on a pedestal, C + (1 - C)(1 - r'^2/R^2)^q"))
