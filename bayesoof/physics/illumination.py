"""Feed illumination (taper) models as pure tensor functions.

Each function takes aperture coordinates ``x, y`` (m, NumPy arrays or tensors), the
primary radius ``radius`` (m) and the illumination coefficients as scalars or tensors,
and returns the real amplitude E_a(x, y) (relative units, 1 at the illumination centre
for an untapered pedestal).  They know nothing of PyMC; with NumPy inputs use
``module=np``.
"""

from __future__ import annotations

import pytensor.tensor as pt

__all__ = ["ILLUMINATIONS", "gaussian", "illumination_params", "parabolic"]


def parabolic(x, y, radius, c_dB, q, x0=0.0, y0=0.0, module=pt):
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
    edge = 10.0 ** (c_dB / 20.0)
    rr = ((x - x0) ** 2 + (y - y0) ** 2) / radius**2
    base = module.maximum(1.0 - rr, 0.0)
    return edge + (1.0 - edge) * base**q


def gaussian(x, y, radius, c_dB, x0=0.0, y0=0.0, module=pt):
    """Gaussian taper: exp(-r'² / (2 (σ R)²)), σ = 10^(c_dB/20) (pyoof's illum_gauss).

    x, y, x0, y0 and radius in m, c_dB in dB.
    """
    sigma = 10.0 ** (c_dB / 20.0) * radius
    return module.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2.0 * sigma**2))


ILLUMINATIONS = {"parabolic": parabolic, "gaussian": gaussian}


def illumination_params(kind: str) -> tuple[str, ...]:
    """Names of the shape coefficients of an illumination model (amplitude excluded)."""
    if kind == "parabolic":
        return ("c_dB", "q", "x0", "y0")
    if kind == "gaussian":
        return ("c_dB", "x0", "y0")
    raise ValueError(f"unknown illumination {kind!r}; expected one of {sorted(ILLUMINATIONS)}")


def evaluate(kind: str, x, y, radius: float, coeffs: dict, module=pt):
    """Evaluate illumination ``kind`` with coefficients from the dict ``coeffs``."""
    names = illumination_params(kind)
    missing = [n for n in names if n not in coeffs]
    if missing:
        raise ValueError(f"illumination {kind!r} needs coefficients {missing}")
    args = [coeffs[n] for n in names]
    return ILLUMINATIONS[kind](x, y, radius, *args, module=module)
