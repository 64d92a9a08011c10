"""Cosine-squared taper on a pedestal (a textbook feed pattern, e.g. Baars 2007, ch. 4)."""

from __future__ import annotations

import numpy as np

from bayesoof.physics.illumination import (
    EDGE_TAPER,
    OFFSET_CENTRE,
    Illumination,
    register,
    tensor_module,
)

__all__ = ["cosine_squared"]


def cosine_squared(x, y, radius, c_dB, x0=0.0, y0=0.0, module=None):
    """Cosine-squared taper on a pedestal: C + (1 - C) cos²(π r' / (2R)), C = 10^(c_dB/20).

    x, y (aperture coordinates), radius R and the centre offset x0, y0 in m; c_dB in dB
    (the amplitude at r' = R is C, as for the parabolic taper); r' is the distance from
    (x0, y0).  r'/R is clipped at 1 so that points of an offset illumination beyond
    R' = R keep the edge value instead of rising again (cos² is periodic).
    """
    module = tensor_module() if module is None else module
    edge = 10.0 ** (c_dB / 20.0)
    r = module.sqrt((x - x0) ** 2 + (y - y0) ** 2) / radius
    r = module.minimum(r, 1.0)
    return edge + (1.0 - edge) * module.cos(0.5 * np.pi * r) ** 2


register(Illumination("cosine_squared", cosine_squared, (EDGE_TAPER, *OFFSET_CENTRE),
                      description="cosine-squared taper on a pedestal, "
                                  "C + (1 - C) cos^2(pi r' / 2R)"))
