"""Nuisance blocks of real observations: per-map focus offsets and the uncertain leg geometry.

Each nuisance is one :class:`~bayesoof.inference.params.Block` of the parameter space, so
the quick fit, the PyMC model and emcee all take it through the one mapping
(:meth:`ParameterSpace.unpack` → :func:`~bayesoof.inference.likelihood.predict` →
:meth:`ForwardModel.power`).  Configured in the ``[focus]`` and ``[legs]`` tables of the
fit configuration (``bayesoof/presets/fit/default.toml``); priors in the ``[focus_offset]``
and ``[legs.*]`` tables of ``bayesoof/presets/priors/default.toml``.

Blocks
------
``focus_offset`` (n_maps,), m
    Effective sub-reflector offset of map i: ``d_z,i + focus_offset[i]``.  Shaped optics,
    asymmetric ±d_z maps, drifts and an effective d_z that differs from the commanded one
    (Nikolic's studies: defocus errors of 0–10 mm) all appear as such an offset.
    Prior Normal(0, 5 mm), bounds ±10 mm.  A *scale* (d_z,eff = s d_z) is not offered: with
    one offset per map it is redundant (one number per map either way).
``leg_half_width`` (), m and ``shade_half_angle`` (), deg
    The support legs' half-width and the half-angle of their shade (pyoof's Effelsberg
    shade), through the differentiable coverage of
    :class:`~bayesoof.physics.aperture.LegCoverage`.  Present only when the telescope has
    legs (a shade); prior uniform over the bounds (by default 0.5–1.5 × the preset's
    half-width, the preset's shade angle ± 10°).

Defaults: both off for now (``[focus] free = true``, ``[legs] free = true`` turn them on;
the in-focus offset stays fixed).  Both are identified (below), but with the focus offsets
free the noise-free recovery test of the quick fit (tests/inference/test_fit.py) degrades
from < 1e-4 to 3.5e-4 waves, and the legs' cost over the suite is not yet measured.

Degeneracies and how they are handled
-------------------------------------
* A focus offset common to all maps is (nearly) degenerate with K(2,0): the defocus path is
  d_z [(1-a²)/(1+a²) + ...], mostly ρ², which is what U_2^0 = 2ρ² - 1 is.  The in-focus
  map's offset is therefore fixed at 0 by default (``focus.in_focus_free = false``): K(2,0)
  carries the focus error at the time of the in-focus map, and the defocused maps' offsets
  are relative to it.  Measured (``bench``-style Fisher check, Effelsberg order 5, 41 × 41
  samples over ±8 beam widths, SNR 200): all three offsets free, sd 1.2 mm each (the common
  mode is only held by the non-ρ² part of the path); in-focus fixed, sd 0.05 mm.
* Offset vs scale: see above (a scale is not a separate parameter).
* Leg half-width vs per-map amplitude: the legs' area scales the beam peak, which the
  amplitudes a_i absorb (correlation 0.6–0.8); the sidelobe pattern identifies the width
  (sd 0.03 m on Effelsberg at SNR 200, against a prior range of 1 m).
* Shade angle: correlated with high-order K (|r| < 0.35); sd 0.17° at SNR 200.
* Tilts vs pointing: handled by the pointing block (tilts fixed when pointing is free).
"""

from __future__ import annotations

import numpy as np

from bayesoof.inference.params import Block, FitConfigError, ParameterSpace

__all__ = ["FOCUS", "LEGS", "add_nuisance_blocks", "forward_options", "resolve_illumination"]

FOCUS = "focus_offset"
LEGS = ("leg_half_width", "shade_half_angle")
LEG_UNITS = {"leg_half_width": "m", "shade_half_angle": "deg"}


def _leg_bounds(cfg: dict, telescope, source: str) -> dict:
    """{name: (lower, upper)} of the free leg dimensions this telescope has."""
    legs = cfg["legs"]
    blk = telescope.blockage
    if not legs["free"] or telescope.blockage_func is not None:
        return {}
    out = {}
    if blk.leg_half_width > 0 and blk.leg_length > 0:
        lo, hi = legs["width_range"]
        if not 0 < lo < 1 < hi:
            raise FitConfigError(
                f"{source}: 'legs.width_range' must be [lower, upper] with 0 < lower < 1 < "
                f"upper (fractions of the preset's half-width), got {[lo, hi]}"
            )
        out["leg_half_width"] = (lo * blk.leg_half_width, hi * blk.leg_half_width)
        if blk.shade_half_angle > 0:
            d = legs["shade_range"]
            if not d > 0:
                raise FitConfigError(f"{source}: 'legs.shade_range' must be > 0 deg, got {d}")
            a = blk.shade_half_angle
            out["shade_half_angle"] = (max(a - d, 0.5 * a), min(a + d, 60.0))
    return out


def add_nuisance_blocks(space: ParameterSpace, cfg: dict, telescope, d_z) -> ParameterSpace:
    """Append the focus-offset and leg blocks configured in ``cfg`` to ``space``; return it.

    ``d_z`` (m, one per map) are the commanded offsets (the in-focus map is d_z = 0).
    """
    source = cfg.get("source", "config")
    d_z = np.asarray(d_z, float)
    n = d_z.size
    focus = cfg["focus"]
    lim = float(focus["limit"])
    if not lim > 0:
        raise FitConfigError(f"{source}: 'focus.limit' must be > 0 m, got {lim}")
    if focus["free"] or focus["in_focus_free"]:
        if telescope.opd_func is not None:
            raise FitConfigError(
                f"{source}: [focus] free needs a telescope with declarative optics (its path "
                "polynomial in d_z); this one has a custom opd callable: set focus.free = "
                "false and focus.in_focus_free = false"
            )
        free = np.where(d_z == 0.0, bool(focus["in_focus_free"]), bool(focus["free"]))
        labels = tuple(f"focus_offset[{i}]" for i in range(n))
        space.add_block(
            Block(FOCUS, (n,), "m", labels, ("map",), {"d_z": tuple(d_z)}, arg=FOCUS,
                  prior=FOCUS,
                  default_prior={"dist": "truncated_normal", "mu": 0.0,
                                 "sigma": float(focus["prior_sd"]), "lower": -lim,
                                 "upper": lim}),
            value=0.0, lower=-lim, upper=lim, free=free,
        )
    for name, (lo, hi) in _leg_bounds(cfg, telescope, source).items():
        start = getattr(telescope.blockage, name)
        space.add_block(
            Block(name, (), LEG_UNITS[name], (name,), arg="blockage", key=name,
                  prior=f"legs.{name}",
                  default_prior={"dist": "uniform", "lower": lo, "upper": hi}),
            value=start, lower=lo, upper=hi, free=True,
        )
    return space


def forward_options(space: ParameterSpace, d_z=None) -> dict:
    """Keyword arguments of :class:`ForwardModel` that the nuisance blocks need.

    ``free_blockage``: the bounds of the leg blocks; ``d_z_extent``: the largest |d_z +
    offset| the focus block allows (``d_z``: the commanded offsets, m), so that the default
    aperture sampling resolves its phase slope.
    """
    names = {b.name for b in space.blocks}
    out: dict = {}
    legs = {}
    for n in LEGS:
        if n in names:
            sl = space.slice_of(n)
            legs[n] = (float(space.lower[sl][0]), float(space.upper[sl][0]))
    if legs:
        out["free_blockage"] = legs
    if FOCUS in names and d_z is not None:
        sl = space.slice_of(FOCUS)
        free = space.free[sl]
        if free.any():
            reach = np.abs(np.asarray(d_z, float)) + np.where(
                free, np.maximum(np.abs(space.lower[sl]), np.abs(space.upper[sl])), 0.0)
            out["d_z_extent"] = float(reach.max())
    return out


def resolve_illumination(cfg: dict, telescope) -> dict:
    """The telescope's declared illumination, unless the configuration chose one.

    When ``cfg["illumination_from"]`` is "default" (neither the configuration nor the
    arguments named ``fit.illumination``) and the telescope declares a model (the SRT: a
    Gaussian taper, c_dB in [-25, -8] dB), that model and its taper start and bounds
    replace ``fit.illumination`` and ``illumination.c_dB``.  Returns a copy.
    """
    import copy

    out = copy.deepcopy(cfg)
    decl = telescope.illumination
    if out.get("illumination_from", "config") != "default" or not decl.model:
        return out
    out["fit"]["illumination"] = decl.model
    out["illumination_from"] = f"telescope {telescope.name}"
    c = out["illumination"]["c_dB"]
    if decl.taper_bounds is not None:
        c["lower"], c["upper"] = decl.taper_bounds
    if decl.taper is not None:
        c["value"] = decl.taper
    c["value"] = float(np.clip(c["value"], c["lower"], c["upper"]))
    return out
