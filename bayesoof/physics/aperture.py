"""Aperture sampling: the pixel grid across the dish on which the forward model is summed.

Pixels are squares of side ``dx`` (m) centred at ``(i - (n - 1)/2) dx``, ``i = 0..n-1``,
covering the dish diameter.  The blockage is integrated over each pixel by
``supersample``² sub-pixels, so rim, sub-reflector and leg edges enter as fractional
coverage rather than a staircase: the far-field sum converges much faster with ``dx``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FREE_BLOCKAGE", "ApertureGrid", "LegCoverage", "default_sampling"]


@dataclass(frozen=True)
class ApertureGrid:
    """Square pixel grid over a dish of radius ``radius`` (m), pixel side ``dx`` (m)."""

    radius: float
    dx: float
    supersample: int = 8

    def __post_init__(self) -> None:
        if self.dx <= 0 or self.radius <= 0:
            raise ValueError(f"aperture grid needs dx > 0 and radius > 0 m, got {self}")
        if self.supersample < 1:
            raise ValueError("supersample must be >= 1")

    @classmethod
    def across(cls, radius: float, n: int, supersample: int = 8) -> ApertureGrid:
        """Grid with exactly ``n`` pixels across the diameter 2R."""
        return cls(radius, 2.0 * radius / int(n), supersample)

    @property
    def n(self) -> int:
        """Pixels along each axis (covering the diameter)."""
        return int(np.ceil(2.0 * self.radius / self.dx - 1e-9))

    @property
    def x(self) -> np.ndarray:
        """Pixel-centre abscissae, m (also the ordinates)."""
        return (np.arange(self.n) - (self.n - 1) / 2.0) * self.dx

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """2-d pixel centres ``X[ix, iy]``, ``Y[ix, iy]`` (first index along x), m."""
        return np.meshgrid(self.x, self.x, indexing="ij")

    def coverage(self, telescope) -> np.ndarray:
        """Fraction of each pixel that is open, in [0, 1].

        Each pixel is split into ``supersample``² sub-pixels.  For a declarative blockage
        every sub-pixel is anti-aliased with the signed distance d to the nearest edge
        (open fraction clip(1/2 + d/h, 0, 1), h the sub-pixel side), which integrates a
        straight edge to second order; a custom ``blockage(x, y)`` is point-sampled.
        """
        s = self.supersample
        h = self.dx / s
        sub = ((np.arange(s) + 0.5) / s - 0.5) * self.dx
        X, Y = self.coords()
        acc = np.zeros_like(X)
        for ox in sub:
            for oy in sub:
                dist = telescope.open_distance(X + ox, Y + oy)
                if dist is None:
                    acc += telescope.block(X + ox, Y + oy)
                else:
                    acc += np.clip(0.5 + dist / h, 0.0, 1.0)
        return acc / s**2


def default_sampling(
    radius: float,
    wavelength: float,
    max_phase_slope: float,
    u_extent: float,
    min_pixels: int = 96,
    phase_step: float = 0.35,
) -> ApertureGrid:
    """Pixel size that keeps the aperture sum accurate for the maps at hand.

    Parameters
    ----------
    radius : float
        Primary radius, m.
    wavelength : float
        m.
    max_phase_slope : float
        Largest |d phase / d r| of the defocus path over the dish, rad m^-1.
    u_extent : float
        Largest |u| or |v| of the observed samples, rad.
    min_pixels : int
        Never fewer pixels across the diameter.
    phase_step : float
        Largest phase change per pixel, rad.  With the defaults the power differs from a
        converged (4x finer) sum by ~1e-4 of the peak for Effelsberg at 9 mm, about 3 % of
        the noise at SNR 200 (tests/test_forward.py::test_default_sampling_is_converged).

    The pixel also resolves the highest observed direction: the alias period λ/dx is kept
    above 4 |u|_max.
    """
    dx = 2.0 * radius / min_pixels
    if max_phase_slope > 0:
        dx = min(dx, phase_step / max_phase_slope)
    if u_extent > 0:
        dx = min(dx, wavelength / (4.0 * u_extent))
    n = int(np.ceil(2.0 * radius / dx))
    n += n % 2
    return ApertureGrid.across(radius, n)


# ------------------------------------------------------------------ free leg geometry
#: Blockage dimensions the forward model can take as tensor inputs, with their units.
FREE_BLOCKAGE = {"leg_half_width": "m", "shade_half_angle": "deg"}


def _flag(condition):
    """A boolean tensor as float64 0/1."""
    import pytensor.tensor as pt

    return pt.cast(condition, "float64")


class LegCoverage:
    """Pixel coverage as a differentiable function of the leg half-width and shade angle.

    The coverage is the same anti-aliased sub-pixel average as :meth:`ApertureGrid.coverage`
    (open fraction ``clip(1/2 + d/h, 0, 1)`` of each of the ``supersample``² sub-pixels, d
    the signed distance to the nearest edge, h the sub-pixel side), written as a PyTensor
    graph of ``leg_half_width`` (m) and ``shade_half_angle`` (deg).  It is therefore equal
    to the NumPy coverage of the telescope with those dimensions (to rounding), and
    piecewise linear in them: each sub-pixel's open fraction is linear while a leg or shade
    edge crosses it, so the derivative is exact between kinks spaced ~h / supersample.

    Only pixels whose coverage can change are evaluated in the graph: the blocked set grows
    monotonically with both dimensions, so these are the pixels whose coverage differs
    between the smallest and the largest dimensions of ``bounds`` (dilated by one pixel);
    the others keep the NumPy coverage.  Inputs are clipped to ``bounds``.

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
        self._x = X[:, None] + ox[None, :]  # (n_pixels, s²) sub-pixel centres, m
        self._y = Y[:, None] + oy[None, :]
        self._h = grid.dx / s

    def _with(self, values: dict):
        from dataclasses import replace

        return replace(self.telescope, blockage=replace(self.blockage, **values))

    def _check_shade(self, blk) -> None:
        """The widest shade must still start beyond the leg's end (else it is undefined)."""
        xl = np.array([0.0])
        d = blk._shade_distance(xl, xl, self.telescope.radius)
        if np.isinf(d).all():
            raise ValueError(f"shade_half_angle {blk.shade_half_angle} deg is too wide for the "
                             "legs of this telescope (the shade would end inside the leg)")

    @property
    def n_pixels(self) -> int:
        """Pixels evaluated in the graph."""
        return int(self.index.size)

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
        evaluation (81 ms against 6 ms for the value at 3488 pixels × 64 sub-pixels,
        measured; /work/notes/s5-legs.md).  Second derivatives are zero: the coverage is
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

    def _coverage_and_slopes(self, free: dict):
        """Coverage of the graph's pixels (n_pixels,) and its derivative for each free name.

        Every edge distance is carried with its derivatives with respect to the leg
        half-width a (m) and the shade half-angle α (deg) ("dual numbers": value, ∂/∂a,
        ∂/∂α); min/max pass on the derivative of the branch taken, as their gradient does.
        """
        import pytensor
        import pytensor.tensor as pt

        blk, R = self.blockage, self.telescope.radius
        a = free.get("leg_half_width", blk.leg_half_width)
        alpha_deg = free.get("shade_half_angle", blk.shade_half_angle)
        x, y = self._x, self._y
        r = np.hypot(x, y)
        const = np.minimum(R - r, r - blk.sub_reflector_radius) \
            if blk.sub_reflector_radius > 0 else R - r
        zero = np.zeros_like(x)
        dist, d_a, d_al = pt.as_tensor_variable(const), zero, zero  # the rim: constant

        def take(cond, u, v):
            """min/max of two duals: the branch ``cond`` selects (u where true)."""
            return tuple(pt.switch(cond, ui, vi) for ui, vi in zip(u, v, strict=True))

        end = blk.sub_reflector_radius + blk.leg_length
        shade = blk.shade_half_angle > 0
        if shade:
            alpha = alpha_deg * (np.pi / 180.0)
            csc2 = pt.sin(alpha) ** -2
            d = (-a + pt.sqrt(a**2 - (a**2 - R**2) * csc2)) / csc2
            slope = d / (d / pt.tan(alpha) - end)  # (half_rim - a) / (x_rim - x_end)
            norm = pt.sqrt(1.0 + slope**2)
            # scalar derivatives of the edge's slope and normaliser (cheap scalar graphs)
            wrt = [v for v in (a, alpha_deg) if isinstance(v, pytensor.graph.basic.Variable)]
            grads = dict(zip(map(id, wrt), pt.grad(slope, wrt), strict=True)) if wrt else {}
            s_a = grads.get(id(a), 0.0)
            s_al = grads.get(id(alpha_deg), 0.0)
            n_a, n_al = slope * s_a / norm, slope * s_al / norm
        for ang in np.deg2rad(blk.leg_angles):
            xl = x * np.cos(ang) + y * np.sin(ang)  # along the leg (constant)
            yl = np.abs(-x * np.sin(ang) + y * np.cos(ang))  # across it (constant)
            qx = np.abs(xl - end / 2) - end / 2  # beyond the leg's ends (constant)
            qy = yl - a  # ∂/∂a = -1
            out = qx > 0  # constant mask; the sqrt argument stays >= qx² > 0 there
            ry = pt.maximum(qy, 0.0)
            corner = pt.sqrt(np.where(out, qx, 1.0) ** 2 + ry**2)
            inside = pt.minimum(pt.maximum(qx, qy), 0.0)  # ∂/∂a: -1 where qy > qx, qy < 0
            box = pt.switch(out, corner, ry) + inside
            box_a = pt.switch(out, -ry / corner, -_flag(pt.gt(qy, 0.0))) \
                - _flag(pt.and_(pt.gt(qy, qx), pt.lt(qy, 0.0)))
            dist, d_a, d_al = take(pt.le(dist, box), (dist, d_a, d_al), (box, box_a, zero))
            if shade:
                lever = xl - end  # (constant)
                across = (yl - a - lever * slope) / norm
                across_a = (-1.0 - lever * s_a) / norm - across * n_a / norm
                across_al = -lever * s_al / norm - across * n_al / norm
                beyond = pt.gt(across, end - xl)  # max(end - xl, across) takes across
                sh = (pt.maximum(end - xl, across), pt.switch(beyond, across_a, 0.0),
                      pt.switch(beyond, across_al, 0.0))
                dist, d_a, d_al = take(pt.le(dist, sh[0]), (dist, d_a, d_al), sh)
        h = self._h
        ramp = 0.5 + dist / h
        active = _flag(pt.and_(pt.gt(ramp, 0.0), pt.lt(ramp, 1.0))) / h  # ∂clip/∂dist
        cov = pt.mean(pt.clip(ramp, 0.0, 1.0), axis=1)
        slopes = {"leg_half_width": pt.mean(active * d_a, axis=1),
                  "shade_half_angle": pt.mean(active * d_al, axis=1)}
        return cov, {k: v for k, v in slopes.items() if k in free}
