"""Aperture coverage as a differentiable function of the support legs' width and shade angle.

:class:`LegCoverage` gives the same anti-aliased sub-pixel coverage as
:meth:`~bayesoof.physics.aperture.ApertureGrid.coverage` of a telescope whose leg half-width
(m) and shade half-angle (deg) are tensors, with exact first derivatives, at a cost that
follows the length of the leg edges rather than the area they can sweep:

* only the pixels whose coverage can change within the bounds are in the graph (the others
  keep the NumPy coverage);
* of those, only the ones an edge actually crosses at the current dimensions (a few hundred)
  are integrated over their sub-pixels; the rest are wholly open or wholly blocked by the
  legs, which the distance at the pixel centre proves (the signed distance is 1-Lipschitz);
* each pixel meets the edges of one leg (of two at most, near a junction), found once at
  construction; the others are never evaluated for it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bayesoof.physics.aperture import ApertureGrid

__all__ = ["FREE_BLOCKAGE", "LegCoverage"]

#: Blockage dimensions the forward model can take as tensor inputs, with their units.
FREE_BLOCKAGE = {"leg_half_width": "m", "shade_half_angle": "deg"}

#: Points per bound of the (width, angle) grid on which the construction counts the pixels
#: an edge can cross.
_CHECK_POINTS = 17
#: Margin on the largest number of edge-crossed pixels seen on that grid: the count varies
#: with the edges' length, smoothly and by < 5 % between neighbouring grid points (measured
#: on the Effelsberg and SRT presets), so 25 % and 16 pixels cannot be exceeded in between.
_EDGE_MARGIN = 1.25
_EDGE_EXTRA = 16


def _flag(condition):
    """A boolean tensor as float64 0/1."""
    import pytensor.tensor as pt

    return pt.cast(condition, "float64")


class LegCoverage:
    """Pixel coverage as a differentiable function of the leg half-width and shade angle.

    The coverage is the anti-aliased sub-pixel average of :meth:`ApertureGrid.coverage`
    (open fraction ``clip(1/2 + d/h, 0, 1)`` of each of the ``supersample``² sub-pixels, d
    the signed distance to the nearest edge, h the sub-pixel side), written as a PyTensor
    graph of ``leg_half_width`` (m) and ``shade_half_angle`` (deg).  It equals the NumPy
    coverage of the telescope with those dimensions (to rounding) and is piecewise linear
    in them: each sub-pixel's open fraction is linear while a leg or shade edge crosses it.

    Which pixels are computed, and how (see the module docstring): ``index`` are the pixels
    whose coverage differs between the smallest and the largest dimensions of ``bounds``
    (dilated by one pixel; the blocked set grows monotonically with both dimensions); at
    each evaluation the ``n_edge`` of them nearest an edge (by the legs' signed distance at
    the pixel centre) are integrated; every other one is then at least
    ``ρ + h/2`` from every leg edge (ρ the largest centre-to-sub-pixel offset), so all its
    sub-pixels are on one side: blocked (coverage 0) or open (the rim-only coverage).
    ``n_edge`` is the largest number of such pixels on a grid over the bounds, with a
    margin.  Inputs are clipped to ``bounds``.

    Parameters
    ----------
    grid : ApertureGrid
    telescope : Telescope
        With a declarative :class:`~bayesoof.physics.telescope.Blockage` (legs > 0; a free
        shade angle needs a shade > 0).
    bounds : dict
        ``{name: (lower, upper)}`` for the free names among :data:`FREE_BLOCKAGE`.
    """

    def __init__(self, grid: ApertureGrid, telescope, bounds: dict):
        blk = telescope.blockage
        if telescope.blockage_func is not None:
            raise ValueError("free blockage dimensions need a declarative blockage, not a callable")
        unknown = sorted(set(bounds) - set(FREE_BLOCKAGE))
        if unknown:
            raise ValueError(f"unknown free blockage dimension(s) {unknown}; "
                             f"expected some of {sorted(FREE_BLOCKAGE)}")
        if blk.leg_half_width <= 0 or blk.leg_length <= 0:
            raise ValueError(f"telescope {telescope.name!r} has no support legs to free")
        if "shade_half_angle" in bounds and blk.shade_half_angle <= 0:
            raise ValueError(f"telescope {telescope.name!r} has no leg shade (shade_half_angle"
                             " = 0): its angle cannot be free")
        self.bounds = {k: (float(lo), float(hi)) for k, (lo, hi) in bounds.items()}
        for k, (lo, hi) in self.bounds.items():
            if not 0 < lo < hi or (k == "shade_half_angle" and hi >= 90):
                raise ValueError(f"bounds of {k} must satisfy 0 < lower < upper, got {lo, hi}")
        self.grid, self.telescope, self.blockage = grid, telescope, blk
        small = self._with({k: lo for k, (lo, hi) in self.bounds.items()})
        large = self._with({k: hi for k, (lo, hi) in self.bounds.items()})
        if large.blockage.shade_half_angle > 0:
            self._check_shade(large.blockage)
        cov_small, cov_large = grid.coverage(small), grid.coverage(large)
        changed = cov_small != cov_large
        grow = changed.copy()  # dilate by one pixel (guards the monotonicity argument)
        grow[1:] |= changed[:-1]
        grow[:-1] |= changed[1:]
        grow[:, 1:] |= changed[:, :-1]
        grow[:, :-1] |= changed[:, 1:]
        self.fixed = cov_small.ravel()
        self.index = np.flatnonzero(grow)
        s = grid.supersample
        sub = ((np.arange(s) + 0.5) / s - 0.5) * grid.dx
        ox, oy = (o.ravel() for o in np.meshgrid(sub, sub, indexing="ij"))
        X, Y = (c.ravel()[self.index] for c in grid.coords())
        self._cx, self._cy = X, Y  # pixel centres, m
        self._x = X[:, None] + ox[None, :]  # (n_pixels, s²) sub-pixel centres, m
        self._y = Y[:, None] + oy[None, :]
        self._h = grid.dx / s
        # a sub-pixel centre is at most rho from its pixel's centre
        self._reach = np.hypot(ox, oy).max() + self._h / 2
        r = np.hypot(self._x, self._y)
        self._rim = np.minimum(telescope.radius - r, r - blk.sub_reflector_radius) \
            if blk.sub_reflector_radius > 0 else telescope.radius - r  # (n_pixels, s²), m
        self._rim_open = np.clip(0.5 + self._rim / self._h, 0.0, 1.0).mean(axis=1)
        self._legs = self._pixel_legs()  # (n_pixels, n_slots) leg angles, rad
        one_leg = (self._legs == self._legs[:, :1]).all(axis=1)
        self._single = np.flatnonzero(one_leg)  # selected per evaluation, one leg each
        self._multi = np.flatnonzero(~one_leg)  # near a junction: always integrated
        self.n_edge = self._edge_count()

    # ---------------------------------------------------------------- construction
    def _with(self, values: dict):
        return replace(self.telescope, blockage=replace(self.blockage, **values))

    def _check_shade(self, blk) -> None:
        """The widest shade must still start beyond the leg's end (else it is undefined)."""
        xl = np.array([0.0])
        d = blk._shade_distance(xl, xl, self.telescope.radius)
        if np.isinf(d).all():
            raise ValueError(f"shade_half_angle {blk.shade_half_angle} deg is too wide for the "
                             "legs of this telescope (the shade would end inside the leg)")

    def _check_values(self):
        """(width, angle) dicts on a grid over the bounds (the preset's value if not free)."""
        axes = [np.linspace(*self.bounds[k], _CHECK_POINTS) if k in self.bounds
                else np.array([getattr(self.blockage, k)]) for k in FREE_BLOCKAGE]
        return [dict(zip(FREE_BLOCKAGE, (float(a), float(b)), strict=True))
                for a in axes[0] for b in axes[1]]

    def _leg_distance(self, blk, x, y, angle) -> np.ndarray:
        """NumPy signed distance (m) outside one leg and its shade, at points (x, y) m."""
        end = blk.sub_reflector_radius + blk.leg_length
        xl = x * np.cos(angle) + y * np.sin(angle)
        yl = np.abs(-x * np.sin(angle) + y * np.cos(angle))
        qx, qy = np.abs(xl - end / 2) - end / 2, yl - blk.leg_half_width
        d = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
        if blk.shade_half_angle > 0:
            d = np.minimum(d, blk._shade_distance(xl, yl, self.telescope.radius))
        return d

    def _pixel_legs(self) -> np.ndarray:
        """The legs each pixel's sub-pixels can meet: (n_pixels, n_slots) angles, rad.

        A leg counts for a pixel when, at the largest dimensions (where every leg's blocked
        area, hence its reach, is largest), its signed distance at the pixel centre is
        below ``ρ + 3h/2``: a sub-pixel is then possibly within 3h/2 of its edge, one
        sub-pixel of margin beyond the h/2 at which a leg stops changing the open fraction.
        No leg counts where the rim or sub-reflector blocks every sub-pixel.  Slots of
        pixels that meet fewer legs repeat their first leg (a harmless duplicate in the
        minimum).
        """
        angles = np.deg2rad(np.asarray(self.blockage.leg_angles, float))
        large = self._with({k: hi for k, (lo, hi) in self.bounds.items()}).blockage
        near = np.stack([self._leg_distance(large, self._cx, self._cy, ang) for ang in angles],
                        axis=1) < self._reach + self._h
        near[self._rim.max(axis=1) <= -self._h / 2] = False  # the rim blocks it whole
        first = np.where(near.any(axis=1), near.argmax(axis=1), 0)
        n_slots = max(int(near.sum(axis=1).max()), 1)
        slots = np.repeat(first[:, None], n_slots, axis=1)
        for p in np.flatnonzero(near.sum(axis=1) > 1):
            legs = np.flatnonzero(near[p])
            slots[p, : legs.size] = legs
        return angles[slots]

    def _edge_count(self) -> int:
        """Pixels integrated per evaluation among those meeting one leg.

        The most that are within reach of an edge on the check grid, with margin (all of
        them, when that is not much fewer).
        """
        single = self._single
        worst = 0
        for v in self._check_values():
            blk = self._with(v).blockage
            d = self._leg_distance(blk, self._cx[single], self._cy[single], self._legs[single, 0])
            worst = max(worst, int(np.count_nonzero(np.abs(d) < self._reach)))
        return min(int(np.ceil(_EDGE_MARGIN * worst)) + _EDGE_EXTRA, int(single.size))

    @property
    def n_pixels(self) -> int:
        """Pixels whose coverage is a function of the free dimensions."""
        return int(self.index.size)

    # ---------------------------------------------------------------- graph
    def __call__(self, values: dict):
        """Coverage (n, n) tensor for ``values`` {name: scalar tensor} (others: the preset's).

        The value is the sub-pixel average described above; its first derivatives with
        respect to the free dimensions are written out analytically (sub-pixel by
        sub-pixel, then averaged per pixel) and attached to the value by the linearisation
        ``c + ∂c/∂a (a - ā) + ∂c/∂α (α - ᾱ)`` with c, ∂c and ā, ᾱ held out of
        differentiation (:func:`pytensor.gradient.disconnected_grad`).  So the value and every
        first derivative (gradient, forward-mode Jacobian) are exact, while a derivative
        costs one (n_pixels,) vector per dimension: PyTensor's own chain rule through the
        sub-pixel graph kept ~40 intermediate (n_pixels, supersample²) arrays per
        evaluation (/work/notes/s5-legs.md).  Second derivatives are zero: the coverage is
        piecewise linear in the dimensions up to the slow curvature of the shade edge's
        slope, and nothing in bayesoof takes them (the fit's Jacobian, NUTS' gradient and
        the Laplace covariance JᵀJ are first order).
        """
        import pytensor.tensor as pt  # the plotting code imports this module without PyTensor
        from pytensor.gradient import disconnected_grad

        free = {}
        for name in FREE_BLOCKAGE:
            if name in values:
                lo, hi = self.bounds[name]
                free[name] = pt.clip(pt.cast(pt.as_tensor_variable(values[name]), "float64"),
                                     lo, hi)
        cov, slopes = self._coverage_and_slopes(free)
        out = disconnected_grad(cov)
        for name, x in free.items():
            out = out + disconnected_grad(slopes[name]) * (x - disconnected_grad(x))
        n = self.grid.n
        full = pt.set_subtensor(pt.as_tensor_variable(self.fixed)[self.index], out)
        return full.reshape((n, n))

    def _shade_edge(self, a, alpha_deg):
        """The shade edge's slope and ∂slope/∂a, ∂slope/∂α (scalar graphs; None: no shade)."""
        import pytensor
        import pytensor.tensor as pt

        blk, R = self.blockage, self.telescope.radius
        if blk.shade_half_angle <= 0:
            return None
        end = blk.sub_reflector_radius + blk.leg_length
        alpha = alpha_deg * (np.pi / 180.0)
        csc2 = pt.sin(alpha) ** -2
        d = (-a + pt.sqrt(a**2 - (a**2 - R**2) * csc2)) / csc2
        slope = d / (d / pt.tan(alpha) - end)  # (half_rim - a) / (x_rim - x_end)
        wrt = [v for v in (a, alpha_deg) if isinstance(v, pytensor.graph.basic.Variable)]
        grads = dict(zip(map(id, wrt), pt.grad(slope, wrt), strict=True)) if wrt else {}
        return slope, grads.get(id(a), 0.0), grads.get(id(alpha_deg), 0.0)

    def _centre_distance(self, a, edge, pixels):
        """Signed distance (m) to the edges of each pixel's first leg, at its centre."""
        import pytensor.tensor as pt

        end = self.blockage.sub_reflector_radius + self.blockage.leg_length
        cx, cy, ang = self._cx[pixels], self._cy[pixels], self._legs[pixels, 0]
        xl = cx * np.cos(ang) + cy * np.sin(ang)  # (constants)
        yl = np.abs(-cx * np.sin(ang) + cy * np.cos(ang))
        qx = np.abs(xl - end / 2) - end / 2
        qy = yl - a
        d = pt.sqrt(np.maximum(qx, 0.0) ** 2 + pt.maximum(qy, 0.0) ** 2) \
            + pt.minimum(pt.maximum(qx, qy), 0.0)
        if edge is not None:
            slope = edge[0]
            across = (yl - a - (xl - end) * slope) / pt.sqrt(1.0 + slope**2)
            d = pt.minimum(d, pt.maximum(end - xl, across))
        return d

    def _coverage_and_slopes(self, free: dict):
        """Coverage of the graph's pixels (n_pixels,) and its derivative for each free name.

        Pixels near a junction of legs are always integrated; of the others, the
        ``n_edge`` nearest their leg's edges; the rest are wholly open (rim-only coverage)
        or wholly blocked, with zero derivatives.
        """
        import pytensor.tensor as pt

        blk = self.blockage
        a = free.get("leg_half_width", blk.leg_half_width)
        edge = self._shade_edge(a, free.get("shade_half_angle", blk.shade_half_angle))
        single = self._single
        centre = self._centre_distance(a, edge, single)
        cov = pt.as_tensor_variable(np.zeros(self.n_pixels))
        cov = pt.set_subtensor(cov[single], pt.switch(pt.gt(centre, 0.0),
                                                      self._rim_open[single], 0.0))
        slope_a = slope_al = pt.zeros(self.n_pixels)
        if self.n_edge < single.size:  # the pixels the edges can cross now
            pick = pt.as_tensor_variable(single)[pt.argsort(pt.abs(centre))[: self.n_edge]]
        else:
            pick = pt.as_tensor_variable(single)
        # a picked pixel meets one leg (its slots repeat it): one slot; near a junction, all
        for pixels, slots in ((pick, 1), (pt.as_tensor_variable(self._multi), None)):
            c, d_a, d_al = self._integrate(pixels, a, edge, slots)
            cov = pt.set_subtensor(cov[pixels], c)
            slope_a = pt.set_subtensor(slope_a[pixels], d_a)
            slope_al = pt.set_subtensor(slope_al[pixels], d_al)
        slopes = {"leg_half_width": slope_a, "shade_half_angle": slope_al}
        return cov, {k: v for k, v in slopes.items() if k in free}

    def _integrate(self, pixels, a, edge, slots=None):
        """Sub-pixel average of the open fraction of ``pixels`` and its two derivatives.

        Every edge distance is carried with its derivatives with respect to the leg
        half-width a (m) and the shade half-angle α (deg) ("dual numbers": value, ∂/∂a,
        ∂/∂α); min/max pass on the derivative of the branch taken, as their gradient does.
        ``slots``: how many of the pixels' leg slots to take (None: all; 1 for pixels that
        meet one leg, whose slots all repeat it: the same minimum at a third of the work,
        measured 6.51 -> 2.99 ms per posterior gradient on a 21² order-2 case).
        """
        import pytensor.tensor as pt

        blk = self.blockage
        x, y = pt.as_tensor_variable(self._x)[pixels], pt.as_tensor_variable(self._y)[pixels]
        legs = pt.as_tensor_variable(self._legs)[pixels]
        dist, d_a, d_al = pt.as_tensor_variable(self._rim)[pixels], 0.0, 0.0  # the rim
        end = blk.sub_reflector_radius + blk.leg_length
        if edge is not None:
            slope, s_a, s_al = edge
            norm = pt.sqrt(1.0 + slope**2)
            n_a, n_al = slope * s_a / norm, slope * s_al / norm

        def take_min(cond, u, v):
            """min of two duals: the branch ``cond`` selects (u where true)."""
            return tuple(pt.switch(cond, ui, vi) for ui, vi in zip(u, v, strict=True))

        for k in range(self._legs.shape[1] if slots is None else slots):
            cos, sin = pt.cos(legs[:, k:k + 1]), pt.sin(legs[:, k:k + 1])
            xl = x * cos + y * sin  # along the leg
            yl = pt.abs(-x * sin + y * cos)  # across it
            qx = pt.abs(xl - end / 2) - end / 2  # beyond the leg's ends
            qy = yl - a  # ∂/∂a = -1
            out = pt.gt(qx, 0.0)  # the sqrt argument stays >= qx² > 0 there
            ry = pt.maximum(qy, 0.0)
            corner = pt.sqrt(pt.switch(out, qx, 1.0) ** 2 + ry**2)
            inside = pt.minimum(pt.maximum(qx, qy), 0.0)  # ∂/∂a: -1 where qy > qx, qy < 0
            box = pt.switch(out, corner, ry) + inside
            box_a = pt.switch(out, -ry / corner, -_flag(pt.gt(qy, 0.0))) \
                - _flag(pt.and_(pt.gt(qy, qx), pt.lt(qy, 0.0)))
            dist, d_a, d_al = take_min(pt.le(dist, box), (dist, d_a, d_al), (box, box_a, 0.0))
            if edge is not None:
                lever = xl - end
                across = (yl - a - lever * slope) / norm
                across_a = (-1.0 - lever * s_a) / norm - across * n_a / norm
                across_al = -lever * s_al / norm - across * n_al / norm
                beyond = pt.gt(across, end - xl)  # max(end - xl, across) takes across
                sh = (pt.maximum(end - xl, across), pt.switch(beyond, across_a, 0.0),
                      pt.switch(beyond, across_al, 0.0))
                dist, d_a, d_al = take_min(pt.le(dist, sh[0]), (dist, d_a, d_al), sh)
        h = self._h
        ramp = 0.5 + dist / h
        active = _flag(pt.and_(pt.gt(ramp, 0.0), pt.lt(ramp, 1.0))) / h  # ∂clip/∂dist
        return (pt.mean(pt.clip(ramp, 0.0, 1.0), axis=1), pt.mean(active * d_a, axis=1),
                pt.mean(active * d_al, axis=1))
