"""Nuisances of real observations: per-map focus offsets, drifts, pointing, taper, legs.

Each nuisance is a block of the one parameter space, so the quick fit, the PyMC model and
emcee all take it through the one mapping (:meth:`ParameterSpace.unpack` →
:func:`~bayesoof.inference.likelihood.predict` → :meth:`ForwardModel.power`).  The focus
offsets and the leg geometry are added here (``[focus]``, ``[legs]`` of the fit
configuration ``bayesoof/presets/fit/default.toml``; priors in ``[focus_offset]`` and
``[legs.*]`` of ``bayesoof/presets/priors/default.toml``); pointing and the illumination
taper/centre are standard blocks of :mod:`bayesoof.inference.params` (``[pointing]``,
``[illumination.*]``).

Defaults (issue 9: on wherever the data identify them and the cost is affordable)
--------------------------------------------------------------------------------
=================  =======  ===========================================================
nuisance           default  identification (Fisher sd at the truth, Effelsberg 9 mm,
                            order 5, 41 × 41 samples over ±8 λ/D, SNR 200)
=================  =======  ===========================================================
focus offsets      ON       defocused maps 0.05 mm each (in-focus map fixed, below)
pointing           ON       tied to the tilts: the in-focus map's pointing fixed (below)
centre x0, y0      ON       x0 0.11 m, y0 0.10 m
baseline drift c   ON       0.02-0.05 data units = 0.002-0.005 % of the peak (study maps:
                            31 × 31 over ±9.5 λ/D, SNR 300, peak ~1000): the ±0.5 %
                            ramps of the study's drift setting at > 50 sd
gain drift g       off      NOT identified on such maps: sd 0.03-0.25 (3 datasets), i.e.
                            at or above the size of a real gain drift (a few %), its
                            correlation with y0 up to 0.88, with K(1,±1)/pointing up to
                            0.9 (below); the study's ±3 % gain ramps cost nothing with it
                            off (11 drift datasets: coverage 0.87 with c alone, 0.89 with
                            g and c; phase error 1.01× the baseline's with either);
                            ``[drift] gain_free = true`` turns it on
taper order q      ON       quick fit: sd 0.02-0.08 (31 × 31 maps, SNR 300), 0.03 (41 ×
                            41, SNR 200); misspec study (q = 1.8 data, 48 datasets):
                            coverage 0.780 -> 0.895, phase error 1.42× -> 1.03× the
                            baseline's.  POSTERIOR: sampled only where sd <= 0.02 and
                            >= 5 sd inside [1, 2], else held at the quick fit's value
                            (model.Q_SAMPLE_SD, ModelInfo.held): NUTS diverges on the
                            curved q-c_dB ridge (below); a held q is marginalised linearly
                            after sampling (held_marginal.py)
leg width, shade   ON       half-width 0.03 m, shade 0.17°: identified (noise-free
                            recovery 1e-16 waves with them free); on where the telescope
                            has legs (a shade angle where it has a shade), bounds 0.5-2.0
                            × the preset's half-width and its shade angle ± 10°, prior
                            uniform over them.  Cost: the coverage's derivatives are
                            written out analytically and only the pixels an edge crosses
                            are integrated (session 6,
                            :class:`~bayesoof.physics.leg_coverage.LegCoverage`); a warm
                            fit of the study's 3 × 41 × 41 maps takes 1.19 s CPU against
                            0.72 s with them fixed (min of 3, load 7.5; session 5: 2.2-2.6
                            against 1.0-1.1 s; before that 11 s, PyTensor's chain rule
                            through the sub-pixel graph).  Misspecification study (50
                            datasets, 48 paired, 31 × 31 maps; shade 12° data, preset 20°):
                            coverage 0.746 -> 0.890, phase error 3.91× -> 0.78× the
                            baseline's (baseline 0.892, 1.00); 'all' 0.793 / 4.26× ->
                            0.840 / 0.85×; coarse 0.619 / 2.59× -> 0.818 / 1.07× (median;
                            width at its 1.5 m bound); with the upper bound 2.0 ×
                            (session 6, 48 paired): coarse 0.854 / 0.99×, 'all'
                            0.850 / 0.84×, baseline 0.892.  ``[legs] free = false``
                            fixes them
=================  =======  ===========================================================

The pyoof preset keeps pyoof's set (no focus offsets, pointing or legs; q free at every
order, x0, y0 fixed).  ``[illumination.q] free = false`` fixes q in the default one.
Otherwise every nuisance but the drifts (free at every order, like the per-map amplitude
and offset they extend) is free at the last order only (``fit.nuisances_last_order_only``,
:func:`hold_below_last_order`): the lower orders only start the next one, and there the
nuisances soak up the orders still missing.

Blocks added here
-----------------
``baseline_drift`` (n_maps,), data units; ``gain_drift`` (n_maps,), relative
    Per-map drifts along the scan: ``beam_i = a_i (1 + g_i t) P_i + b_i + c_i t`` with
    t ∈ [-1/2, 1/2] the scan time of the sample (:func:`scan_time`).  The beam-map
    container carries no time column, so t is the ORDER OF THE SAMPLES IN THE FILE (a
    raster or on-the-fly scan writes its samples in time order); ``summary.json`` says so
    per map (``scan_time``).  A file whose samples are not in time order must not use
    them.  Both enter linearly after the far field (a_i g_i, b_i, c_i are linear
    coefficients): the quick fit's Jacobian along them costs no transform and its start
    solves a_i, g_i, b_i, c_i by one weighted linear least squares per map
    (:func:`bayesoof.inference.fit.solve_linear`).  Priors (PyMC model):
    g ~ Normal(0, 0.05) (a 5 % gain change across a map at 1 sd), c ~ Normal(0, 0.01 ×
    the data peak) (``[drift]`` gain_prior_sd, baseline_prior_sd); fit bounds |g| ≤ 0.5
    (``gain_limit``: the gain stays positive), c unbounded.  Free at every order, like
    a_i and b_i.  NUTS with the defaults (``bayesoof sample``, 4 × 750 draws) on dataset 0
    of bench/misspec_study.py, 31 × 31 maps, order 5: drift setting 0 divergences, R-hat
    max 1.008, c = 1.590 ± 0.018, 2.017 ± 0.016, 2.712 ± 0.017 (the ramps written by row,
    ≈ 1.61, 2.01, 2.73 in the sample-order t); baseline setting 0 divergences, R-hat 1.007,
    c within 1.3 sd of 0.
``focus_offset`` (n_maps,), m
    Effective sub-reflector offset of map i: ``d_z,i + focus_offset[i]``.  Shaped optics,
    asymmetric ±d_z maps, drifts and an effective d_z that differs from the commanded one
    (Nikolic's studies: defocus errors of 0–10 mm) all appear as such an offset.
    Prior Normal(0, 5 mm), bounds ±10 mm.  A *scale* (d_z,eff = s d_z) is not offered: with
    one offset per map it is redundant (one number per map either way).
``leg_half_width`` (), m and ``shade_half_angle`` (), deg
    The support legs' half-width and the half-angle of their shade (pyoof's Effelsberg
    shade), through the differentiable coverage of
    :class:`~bayesoof.physics.leg_coverage.LegCoverage`.  Present only when the telescope has
    legs (a shade); prior uniform over the bounds (by default 0.5–2.0 × the preset's
    half-width, the preset's shade angle ± 10°).

Aperture sampling
-----------------
The forward model's pixels are chosen for the commanded d_z (as without offsets; 0.35 rad
of defocus phase per pixel).  When the fitted offsets take some |d_z + offset| more than
:data:`RESAMPLE_EXCESS` (10 %) beyond that, the fit refits the last order on pixels that
resolve it (:func:`resampling_extent`).  (Choosing the pixels for the whole ±10 mm box up
front took Effelsberg at d_z = ±22 mm from 98 to 140 pixels across: 2× the cost of every
fit, and the simulator's and the fit's samplings no longer matched, which is what moved
the noise-free recovery of tests/inference/test_fit.py to 3.5e-4 waves.)

Degeneracies and how they are handled
-------------------------------------
* A focus offset common to all maps is (nearly) degenerate with K(2,0): the defocus path is
  d_z [(1-a²)/(1+a²) + ...], mostly ρ², which is what U_2^0 = 2ρ² - 1 is.  The in-focus
  map's offset is therefore fixed at 0 by default (``focus.in_focus_free = false``): K(2,0)
  carries the focus error at the time of the in-focus map, and the defocused maps' offsets
  are relative to it.  Measured: all three offsets free, sd 1.2 mm each (the common mode
  is only held by the non-ρ² part of the path); in-focus fixed, sd 0.05 mm.
* Offset vs scale: see above (a scale is not a separate parameter).
* Pointing vs tilts: a tilt K(1,±1) is a linear aperture phase, which shifts every beam
  alike, so a pointing offset common to all maps IS a tilt (exactly degenerate).  With the
  tilts free the in-focus map's pointing is fixed at 0 (the tilts carry it) and the other
  maps' pointing is relative to it (:func:`~bayesoof.inference.params.pointing_reference`);
  with the tilts fixed (``zernike.fixed``) every map's pointing is free.  Tilts are left
  out of phase maps and rms anyway.
* Gain drift vs pointing (and the illumination centre, tilts): near the beam peak a gain
  ramp along the scan, ``(1 + g t) P``, is ``P + g t P``, and a pointing shift δ along
  the same axis is ``P - δ ∂P/∂v``; for a beam ∝ exp(-v²/2s²) ``∂P/∂v = -v P / s²`` ∝
  t P: the two are the same function near the peak.  Only the wings (where P is no
  longer Gaussian and t spans more than the main lobe) tell them apart, and a map spans
  tens of beam widths while the main lobe is ~1/20 of the scan: g is weakly identified
  (sd 0.03-0.25 on 31 × 31 maps over ±9.5 λ/D; 0.1-0.15 even on maps of ±3 λ/D),
  correlated with y0 (|r| ≤ 0.88), with the in-focus map's tilt K(1,-1) (0.92) and with
  the pointing along v.  Hence off by default; the baseline drift c (a ramp under the
  whole map, not only the beam) is identified and on.  Last session the freed pointing
  absorbed the unmodelled drift and biased K (phase error 2.8× the baseline's): with c
  free the drift setting's phase error is the baseline's (1.02×, 10 datasets).
* Taper order q vs c_dB: strongly correlated (both set the edge fall-off) but identified
  by the beam's sidelobes; free in the quick fit by default (session 4), which the
  misspecification study's q = 1.8 setting needs (above).  Why NUTS diverges with q
  free where q is weakly identified (sessions 3 and 4, measured): the ridge is curved
  and narrows along itself.  Profile on order-3 data from the model (31 × 31, SNR 200,
  q = 1.4): the best c_dB at fixed q runs -17.2, -15.8, -14.7, -13.9, -13.2, -12.7,
  -12.3 dB for q = 1.1 ... 1.7 and its conditional sd shrinks 0.60 → 0.27 dB (2.2×),
  with the amplitudes moving 12 % along it.  The samplers whiten with the Laplace
  covariance at the MAP, which removes the correlation but not the bend: at profile
  points q = 1.15 / 1.65 (-3.0 / +2.6 sd) the ridge lies 6.2 / 3.3 conditional sd
  (Mahalanobis, all parameters) off the MAP's Laplace line, bent mostly in c_dB (or the
  pedestal C) and the log-amplitudes, and the whitened curvature there is 13-18×
  the MAP's (scale 0.23-0.28).  Counts with the ``sample`` defaults (nutpie, 4 chains until
  converged), data seed 1001: 3 divergences in 4 × 400 draws with PyMC's logit
  coordinates, 11 in 4 × 600 with c_dB moved as its linear pedestal C = 10^(c_dB/20),
  7 in 4 × 500 with C and q both moved linearly with soft bounds
  (:class:`~bayesoof.inference.priors.SoftBoundsTransform`; R-hat ≤ 1.009 in all three;
  0 with q fixed).  A per-coordinate transform cannot straighten a ridge that bends in
  several coordinates together; the mean illumination C + (1 - C)/(q + 1), nearly
  constant along the ridge (0.548 → 0.524), would need a joint (c_dB, q) coordinate,
  not built.  Also near a bound: study taper dataset 0 (31 × 31, order 5, q = 1.885 ±
  0.048) gave 9 divergences, all at q 1.94-1.98 of the bound 2.  Where q is well
  identified the ridge is locally Gaussian: 63 × 63 maps, order 5, SNR 300 (q = 1.807 ±
  0.012, truth 1.8): 0 divergences, R-hat 1.007.  Hence the posterior samples q only
  where its Laplace sd ≤ 0.02 and it lies ≥ 5 sd inside its bounds
  (:data:`bayesoof.inference.model.Q_SAMPLE_SD`), and otherwise holds it at the quick
  fit's value and says so (``ModelInfo.held``): the draws are then conditional on q̂,
  and are carried over q linearly after sampling with the quick fit's Laplace covariance
  (:mod:`bayesoof.inference.held_marginal`: q drawn from its marginal, every sampled
  parameter shifted by its regression on q), so c_dB, the legs and the amplitudes carry
  q's uncertainty (conditional, c_dB held its truth in 72 % of its 90 % intervals).  The
  linear coordinates can be chosen in the priors preset (``coordinate = "pedestal"`` /
  ``"soft"``, :mod:`bayesoof.inference.priors`).  x0, y0 vs the odd K (coma):
  correlated, identified.
* Leg half-width vs per-map amplitude: the legs' area scales the beam peak, which the
  amplitudes a_i absorb (correlation 0.6–0.8); the sidelobe pattern identifies the width.
  Measured again with the legs free by default (session 5, quick-fit covariance on the
  study's 31 × 31 maps, legs and coarse datasets 0-1): width vs a_i +0.64 to +0.83, vs q
  +0.46 to +0.51 (both reduce the open area's weight at the rim); shade angle vs width
  -0.26 to -0.48, vs a_i -0.3 to -0.4, vs K(1,1), K(5,5), K(3,1) |r| <= 0.28.  All
  identified (width sd 0.02-0.05 m, shade 0.1-0.25 deg); nothing is fixed for them.
* Shade angle: correlated with high-order K (|r| < 0.35).
* On pyoof-like data (a point-sampled aperture of 60 pixels across, the study's coarse
  setting) the half-width ran to its upper bound 1.5 m (47 of 48 datasets, session 5):
  the staircase legs block ~1.67 m each side (two 1.67-m pixel rows), and the free width
  absorbs most of that (phase error ratio ~1.0 instead of 2.6 with the legs fixed).  Since
  session 6 the upper bound is 2.0 × the preset's: there the width settles inside, at
  1.49-1.79 m (48 of 48 datasets inside), and q (fitted 1.25-1.39 against the true 1.4 at
  the bound, median over the study 1.381 now) moves towards the truth; the fit costs the
  same.  Misspecification study (50 datasets, 48 paired): coarse coverage 0.818 -> 0.854,
  'all' 0.840 -> 0.850, baseline 0.892 (unchanged).  A spherical-wave leg shadow is wider
  than the leg, so a bound at 1.5 × was too tight for an *effective* width anyway.  The
  rest of the coarse deficit is the point-sampled rim and blockage, absorbed by c_dB, q
  and K without a trace in the residuals (reduced χ² 0.86-1.07; Δχ² against the
  generator's own aperture 55-140 of 2883 samples), so the adequacy test cannot flag it.
"""

from __future__ import annotations

import numpy as np

from bayesoof.inference.params import Block, FitConfigError, ParameterSpace

__all__ = [
    "DRIFT", "FOCUS", "LEGS", "SCAN_TIME_SOURCE", "add_nuisance_blocks", "effective_extent",
    "forward_options", "hold_below_last_order", "resampling_extent", "resolve_illumination",
    "scan_time",
]

FOCUS = "focus_offset"
LEGS = ("leg_half_width", "shade_half_angle")
DRIFT = ("gain_drift", "baseline_drift")
#: where the scan time of the drift nuisance comes from (reported in the fit's output)
SCAN_TIME_SOURCE = ("sample order in the file (samples written in time order, as a raster/"
                    "on-the-fly scan does), normalised to [-1/2, 1/2] per map")
LEG_UNITS = {"leg_half_width": "m", "shade_half_angle": "deg"}
# the shade half-angle's lower bound: at least this fraction of the preset's (a shade > 0;
# with 0.5 the 'all' setting of bench/misspec_posterior.py, shade 12 deg data on a 20 deg
# preset, piled its posterior against 10 deg and 2 of 10 runs ended unconverged at the cap)
SHADE_LOWER_FRACTION = 0.25


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
            out["shade_half_angle"] = (max(a - d, SHADE_LOWER_FRACTION * a), min(a + d, 60.0))
    return out


def add_nuisance_blocks(space: ParameterSpace, cfg: dict, telescope, d_z) -> ParameterSpace:
    """Append the focus-offset, drift and leg blocks configured in ``cfg`` to ``space``.

    ``d_z`` (m, one per map) are the commanded offsets (the in-focus map is d_z = 0).
    Returns ``space``.
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
    _add_drift_blocks(space, cfg, n, source)
    for name, (lo, hi) in _leg_bounds(cfg, telescope, source).items():
        start = getattr(telescope.blockage, name)
        space.add_block(
            Block(name, (), LEG_UNITS[name], (name,), arg="blockage", key=name,
                  prior=f"legs.{name}",
                  default_prior={"dist": "uniform", "lower": lo, "upper": hi}),
            value=start, lower=lo, upper=hi, free=True,
        )
    return space


def scan_time(data) -> np.ndarray:
    """Scan time t of every sample (map order, as ``ForwardModel.observed``), in [-1/2, 1/2].

    The beam-map container carries no time column, so t is the order of the samples in
    the file: a raster or on-the-fly scan writes its samples in time order.  Per map,
    sample k of n has ``t = k / (n - 1) - 1/2`` (0 for a one-sample map).
    """
    parts = []
    for m in data.maps:
        n = m.size
        parts.append(np.arange(n) / (n - 1) - 0.5 if n > 1 else np.zeros(n))
    return np.concatenate(parts)


def _add_drift_blocks(space: ParameterSpace, cfg: dict, n: int, source: str) -> None:
    """Append the per-map gain and baseline drift blocks (``[drift]``), each when free."""
    drift = cfg["drift"]
    if not (drift["gain_free"] or drift["baseline_free"]) or cfg["fit"]["residual"] == "pyoof":
        return  # (pyoof's min-max normalised residual removes each map's scale and offset)
    lim = float(drift["gain_limit"])
    if not 0 < lim <= 2:
        raise FitConfigError(f"{source}: 'drift.gain_limit' must be in (0, 2] (the gain "
                             f"1 + g t stays positive for |t| <= 1/2), got {lim}")
    for key in ("gain_prior_sd", "baseline_prior_sd"):
        if not float(drift[key]) > 0:
            raise FitConfigError(f"{source}: 'drift.{key}' must be > 0, got {drift[key]}")
    amp = space.block("amp")
    per_map = {k: amp.coords[k] for k in ("map", "d_z")}
    if drift["gain_free"]:
        space.add_block(
            Block("gain_drift", (n,), "", tuple(f"gain_drift[{i}]" for i in range(n)),
                  ("map",), per_map, arg="gain_drift", linear=True, prior="drift.gain",
                  default_prior={"dist": "normal", "mu": 0.0,
                                 "sigma": float(drift["gain_prior_sd"])}),
            value=0.0, lower=-lim, upper=lim, free=True,
        )
    if drift["baseline_free"]:
        space.add_block(
            Block("baseline_drift", (n,), "data",
                  tuple(f"baseline_drift[{i}]" for i in range(n)), ("map",), per_map,
                  arg="baseline_drift", linear=True, prior="drift.baseline",
                  default_prior={"dist": "normal", "mu": 0.0,
                                 "sigma": float(drift["baseline_prior_sd"]), "per": "data"}),
            value=0.0, free=True,
        )


def forward_options(space: ParameterSpace) -> dict:
    """Keyword arguments of :class:`ForwardModel` that the nuisance blocks need.

    ``free_blockage``: the bounds of the leg blocks.  The aperture sampling is chosen for
    the commanded d_z, as for a fit without focus offsets (its phase step, 0.35 rad per
    pixel, has room for offsets of a few per cent); :func:`resampling_extent` tells the
    fit when the fitted offsets need a finer one.
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
    return out


#: Relative excess of the fitted over the resolved |effective d_z| that triggers resampling:
#: 10 % raises the phase step per pixel from 0.35 to 0.385 rad (the sum's error grows ~20 %).
RESAMPLE_EXCESS = 0.10


def effective_extent(space: ParameterSpace, d_z) -> float:
    """Largest |d_z + focus offset| (m) at the space's values; max |d_z| without offsets."""
    d_z = np.abs(np.asarray(d_z, float))
    if FOCUS not in {b.name for b in space.blocks}:
        return float(d_z.max())
    return float(np.max(np.abs(np.asarray(d_z, float) + space.values[space.slice_of(FOCUS)])))


def resampling_extent(space: ParameterSpace, forward, d_z) -> float | None:
    """|effective d_z| (m) a finer aperture sampling must resolve, or None if it is resolved.

    The forward model's sampling resolves the phase slope at ``forward.d_z_extent`` (or the
    commanded max |d_z|).  When the fitted offsets take the effective d_z more than
    :data:`RESAMPLE_EXCESS` beyond it, the fit refits its last order with a sampling that
    resolves the fitted extent plus that margin.
    """
    resolved = max(float(np.max(np.abs(np.asarray(d_z, float)))), forward.d_z_extent or 0.0)
    fitted = effective_extent(space, d_z)
    if resolved == 0.0 or fitted <= (1.0 + RESAMPLE_EXCESS) * resolved:
        return None
    return (1.0 + RESAMPLE_EXCESS) * fitted


#: Illumination coefficients that are nuisances (held below the last order with the blocks).
ILLUMINATION_NUISANCES = ("q", "x0", "y0")


def hold_below_last_order(space: ParameterSpace) -> ParameterSpace:
    """Copy with the nuisances fixed at their current values (``fit.nuisances_last_order_only``).

    The nuisances are the focus offsets, the leg geometry, pointing and the illumination's
    q, x0, y0.  The orders below the last only start the next one; there, with the
    nuisances free, they absorb the higher orders the model still lacks: measured on
    tests/inference/test_fit.py's noise-free data, order 1 took x0 and y0 to their ±0.2 R
    bounds, q to 2 and c_dB to -25 dB, the pointing to its 2-beam bounds, and the last
    order did not recover (K off by 0.9 waves); with the focus offsets free, order 4 ran
    into max_nfev (200 evaluations instead of 55).
    """
    out = space.copy()
    for name in (FOCUS, *LEGS, "pointing", *ILLUMINATION_NUISANCES):
        if out.has(name):
            out.free[out.slice_of(name)] = False
    return out


def resolve_illumination(cfg: dict, telescope) -> dict:
    """The telescope's declared illumination, unless the configuration chose one.

    When ``cfg["illumination_from"]`` is "default" (neither the configuration nor the
    arguments named ``fit.illumination``) and the telescope declares a model (the SRT: the
    log-polynomial taper, edge taper c_dB in [-25, -5] dB), that model and its taper start
    and bounds replace ``fit.illumination`` and ``illumination.c_dB``.  Returns a copy.
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
