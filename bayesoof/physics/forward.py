"""The forward model: Zernike phase + illumination + blockage + defocus -> beam maps.

One PyTensor graph, used by simulation, the MAP fit, NUTS and emcee.  It knows nothing
of PyMC: :meth:`ForwardModel.power` takes tensors (or anything ``pt.as_tensor`` accepts)
and returns a tensor.

For map i with sub-reflector offset d_z,i:

    E_i = B · E_a · exp(i [2π W + (2π/λ) δ(d_z,i) + 2π (u_i x + v_i y)/λ])
    P_i(u, v) = |Σ E_i exp(-2πi (u x + v y)/λ) dx²|² / (π R²)²

with W = Σ K_nl U_n^l(r/R, θ) in waves and (u_i, v_i) an optional per-map pointing
offset (rad) that moves the beam centre to (u_i, v_i).  The normalisation makes the
peak of a uniformly illuminated, unblocked, unaberrated dish equal to 1.

Nuisance inputs (all optional tensors; left out, the graph is today's, with the
defocus path and the blockage as constants):

* ``d_z`` (n_maps,), m: the *effective* sub-reflector offset of each map, replacing the
  commanded one in δ.  The telescope's path is a polynomial in d_z, δ = Σ_p d_z^p G_p(x, y)
  (p = 1 for the on-axis formula, p = 1..3 with the SRT residual path), so the phase is a
  smooth function of it.  How d_z,eff is parametrised (commanded + a per-map focus offset)
  is the parameter space's business (:mod:`bayesoof.inference.params`); the forward model
  only takes the effective values.
* ``blockage`` {'leg_half_width' m, 'shade_half_angle' deg}: the uncertain leg geometry,
  for the names given at construction in ``free_blockage`` (with bounds), through the
  differentiable anti-aliased coverage :class:`~bayesoof.physics.leg_coverage.LegCoverage`.
* ``aperture_error`` (J_a,): a smooth relative error of the aperture amplitude,
  ``A → A (1 + Σ_b a_b U_b(r/R, θ))`` over the Zernike modes b = 1..J_a (OSA order, piston
  left out: it is the map amplitude); the model-error term of
  :mod:`bayesoof.inference.model_error`.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesoof.data.containers import BeamMaps
from bayesoof.physics import illumination as illum_mod
from bayesoof.physics import zernike
from bayesoof.physics.aperture import ApertureGrid, default_sampling
from bayesoof.physics.leg_coverage import LegCoverage
from bayesoof.physics.telescope import Telescope, get_telescope
from bayesoof.physics.transforms import TWO_PI, FFTBox, fast_size, select_transform

__all__ = ["ForwardModel", "METHODS"]

METHODS = ("auto", "direct", "nufft", "fft")


class ForwardModel:
    """Forward model of a set of beam maps for one telescope and Zernike order.

    Parameters
    ----------
    data : BeamMaps
        Supplies the sample positions (u, v in rad), d_z (m) and wavelength (m); the beam
        values are kept as ``observed`` for the likelihood.
    telescope : Telescope or str
        Preset name, TOML path or Telescope.
    order : int
        Largest Zernike order n (>= 1).
    illumination : {'parabolic', 'gaussian'}
    method : {'auto', 'direct', 'nufft', 'fft'}
        'direct' evaluates the DFT exactly at the samples; 'nufft' on a fine lattice read
        by kernel interpolation (:class:`~bayesoof.physics.transforms.NUFFT`, ~1e-7 of the
        peak); 'fft' uses a zero-padded FFT2.  'auto' picks, map by map, the cheapest of
        'direct' and 'nufft' by the measured cost model
        (:func:`~bayesoof.physics.transforms.select_transform`).
    sampling : ApertureGrid, optional
        Aperture pixels; by default chosen from the defocus phase slope and the map extent
        (:func:`bayesoof.physics.aperture.default_sampling`).  With method 'fft' on lattice maps
        the pixel is adjusted so that FFT bins fall exactly on the samples.
    fft_oversample : int
        With 'fft' on scattered samples: box size >= this × the aperture (interpolation
        accuracy grows with it).
    free_blockage : dict, optional
        ``{name: (lower, upper)}`` for the leg dimensions that :meth:`power` may take as
        tensors ('leg_half_width' m, 'shade_half_angle' deg); values are clipped to the
        bounds.  Only the pixels these can change are recomputed in the graph.
    d_z_extent : float, optional
        Largest |effective d_z| (m) the graph will be evaluated at, when larger than the
        commanded ones (free focus offsets); the default sampling resolves its phase slope.
    """

    def __init__(
        self,
        data: BeamMaps,
        telescope: Telescope | str,
        order: int,
        illumination: str = "parabolic",
        method: str = "auto",
        sampling: ApertureGrid | None = None,
        fft_oversample: int = 3,
        free_blockage: dict | None = None,
        d_z_extent: float | None = None,
    ):
        if int(order) != order or order < 1:
            raise ValueError(f"Zernike order must be an integer >= 1, got {order!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        illum_mod.illumination_params(illumination)  # validates the name
        data.validate()
        self.data = data
        self.telescope = get_telescope(telescope)
        data.check_extent(self.telescope.radius)
        self.order = int(order)
        self.illumination = illumination
        self.wavelength = data.wavelength
        self.nl = zernike.nl_list(self.order)
        self.d_z_extent = d_z_extent
        grids = [m.grid() for m in data.maps]
        self.method = method

        R, lam = self.telescope.radius, self.wavelength
        exact_fft = False
        if sampling is None:
            sampling = self._default_sampling()
            if method == "fft":
                sampling, exact_fft = self._fft_aligned_sampling(sampling, grids)
        elif method == "fft":
            exact_fft = self._fft_aligned(sampling, grids)
        self.sampling = sampling

        x = sampling.x
        X, Y = sampling.coords()
        self.x = x
        self.block = sampling.coverage(self.telescope)  # (n, n) in [0, 1]
        rho = np.hypot(X, Y) / R
        theta = np.arctan2(Y, X)
        n = x.size
        self.zernike_basis = zernike.zernike_basis(self.order, rho, theta).reshape(n * n, -1)
        self._separable_basis(x / R)
        self.defocus_phase = np.stack(
            [TWO_PI / lam * self.telescope.opd(X, Y, m.d_z) for m in data.maps]
        )
        terms = self.telescope.opd_terms(X, Y)
        # phase per unit d_z^p, rad / m^p: δ(d_z) = Σ_p d_z^p G_p
        self.defocus_terms = None if terms is None else {
            p: TWO_PI / lam * g for p, g in sorted(terms.items())}
        self.leg_coverage = (
            LegCoverage(sampling, self.telescope, free_blockage) if free_blockage else None
        )
        self._X, self._Y = X, Y
        # pixel area over the dish area: F normalised to 1 for a uniform unblocked dish
        self.field_scale = sampling.dx**2 / (np.pi * R**2)

        if method != "fft":
            self._fft = None
            chosen = [select_transform(x, lam, m.u, m.v, g, method)
                      for m, g in zip(data.maps, grids, strict=True)]
            self._direct = [t for t, _ in chosen]
            self.predicted_seconds = sum(sec for _, sec in chosen)
            if method == "auto":
                kinds = {t.kind for t in self._direct}
                self.method = kinds.pop() if len(kinds) == 1 else "mixed"
        else:
            self._direct = None
            if exact_fft:
                box = self._aligned_box(grids)
            else:
                size = fast_size(max(fft_oversample * n, n + 8))
                box = (size, size)
            self._fft = FFTBox(
                x, lam, [(m.u, m.v, g) for m, g in zip(data.maps, grids, strict=True)],
                box, exact=exact_fft,
            )
        self.exact_fft = exact_fft

        sizes = [m.size for m in data.maps]
        self.map_index = np.repeat(np.arange(data.n_maps), sizes)
        ends = np.cumsum(sizes)
        self.map_slices = [slice(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]
        self.observed = np.concatenate([m.beam for m in data.maps])
        sig = [m.sigma for m in data.maps]
        self.sigma = None if any(s is None for s in sig) else np.concatenate(sig)

    # ------------------------------------------------------------------ sampling
    def _max_phase_slope(self) -> float:
        """Largest |dφ/dr| of the defocus path over the dish, rad/m."""
        R = self.telescope.radius
        r = np.linspace(0, R, 2001)
        dz = float(np.max(np.abs(self.data.d_z)))
        if self.d_z_extent is not None:
            dz = max(dz, float(self.d_z_extent))
        if dz == 0:
            return 0.0
        path = self.telescope.opd(r, np.zeros_like(r), dz)
        return float(np.max(np.abs(np.gradient(path, r)))) * TWO_PI / self.wavelength

    def _default_sampling(self) -> ApertureGrid:
        u_ext = max(float(np.max(np.abs(np.r_[m.u, m.v]))) for m in self.data.maps)
        return default_sampling(
            self.telescope.radius, self.wavelength, self._max_phase_slope(), u_ext
        )

    def _fft_aligned(self, sampling: ApertureGrid, grids) -> bool:
        """Whether every lattice step is an integer FFT bin for this pixel size."""
        if any(g is None or not g.uniform for g in grids):
            return False
        for g in grids:
            for step in (g.du, g.dv):
                size = self.wavelength / (step * sampling.dx)
                if abs(size - round(size)) > 1e-6 * size or round(size) < sampling.n:
                    return False
        return True

    def _aligned_box(self, grids) -> tuple[int, int]:
        g = grids[0]
        dx = self.sampling.dx
        return (round(self.wavelength / (g.du * dx)), round(self.wavelength / (g.dv * dx)))

    def _fft_aligned_sampling(self, sampling: ApertureGrid, grids):
        """Shrink the pixel so the FFT bins fall on the lattice samples, when possible.

        Needs all maps on uniform lattices with one common step in u and v (to 1e-6).
        """
        if any(g is None or not g.uniform for g in grids):
            return sampling, False
        steps = np.array([[g.du, g.dv] for g in grids]).ravel()
        if np.ptp(steps) > 1e-6 * steps.mean():
            return sampling, False
        span = self.wavelength / steps.mean()  # box length N dx, m
        size = fast_size(int(np.ceil(span / sampling.dx)))
        aligned = ApertureGrid(sampling.radius, span / size, sampling.supersample)
        return aligned, self._fft_aligned(aligned, grids)

    # ------------------------------------------------------------------ graph
    def coverage(self, blockage: dict | None = None):
        """Open fraction of each aperture pixel: the constant ``block``, or a tensor (n, n).

        ``blockage`` {name: scalar} holds leg dimensions declared in ``free_blockage``.
        """
        if not blockage:
            return self.block
        if self.leg_coverage is None:
            raise ValueError(
                f"blockage inputs {sorted(blockage)} need free_blockage bounds at construction"
            )
        unknown = sorted(set(blockage) - set(self.leg_coverage.bounds))
        if unknown:
            raise ValueError(
                f"blockage inputs {unknown} are not free here; free: "
                f"{sorted(self.leg_coverage.bounds)}"
            )
        return self.leg_coverage(blockage)

    def amplitude_error_basis(self, n_terms: int) -> np.ndarray:
        """Zernike modes 1..n_terms (OSA, no piston) on the aperture grid, (n², n_terms)."""
        have = getattr(self, "_amp_error_basis", None)
        if have is None or have.shape[1] < n_terms:
            X, Y, R = self._X, self._Y, self.telescope.radius
            order = 0
            while zernike.n_coeffs(order) < n_terms + 1:
                order += 1
            basis = zernike.zernike_basis(order, np.hypot(X, Y) / R, np.arctan2(Y, X))
            self._amp_error_basis = basis.reshape(X.size, -1)[:, 1:]
        return self._amp_error_basis[:, :n_terms]

    def illumination_amplitude(self, illum: dict, blockage: dict | None = None,
                               aperture_error=None):
        """Blockage × illumination (× the relative aperture error) on the grid, (n, n) tensor."""
        # float64 throughout: pytensor makes a Python float such as -14.5 a float32
        # constant, and 10 ** (c_dB / 20) would then be evaluated in float32 (1e-8 error)
        coeffs = {k: pt.cast(pt.as_tensor_variable(v), "float64") for k, v in illum.items()}
        amp = self.coverage(blockage) * illum_mod.evaluate(
            self.illumination, self._X, self._Y, self.telescope.radius, coeffs
        )
        if aperture_error is None or (isinstance(aperture_error, np.ndarray)
                                      and not np.any(aperture_error)):
            return amp  # (a fixed zero error: the graph without it)
        a = pt.cast(pt.as_tensor_variable(aperture_error), "float64")
        if a.ndim != 1 or a.type.shape[0] is None:
            raise ValueError("aperture_error must be a vector of static length (a NumPy "
                             f"array or pt.vector(shape=(J,))), got {a.type}")
        basis = self.amplitude_error_basis(int(a.type.shape[0]))
        n = self.x.size
        return amp * (1.0 + pt.dot(basis, a).reshape((n, n)))

    def defocus(self, i: int, d_z=None):
        """Defocus phase (rad) of map ``i``: the constant one, or at the effective d_z[i] (m)."""
        if d_z is None:
            return self.defocus_phase[i]
        if self.defocus_terms is None:
            raise ValueError(
                "an effective d_z needs declarative optics (a polynomial path in d_z); "
                "this telescope has a custom opd callable"
            )
        dz = pt.cast(pt.as_tensor_variable(d_z), "float64")[i]
        phase = 0.0
        for p, g in self.defocus_terms.items():
            phase = phase + (dz if p == 1 else dz**p) * g
        return phase

    def _separable_basis(self, t: np.ndarray) -> None:
        """Zernike modes as sums of Chebyshev products T_a(x/R) T_b(y/R), when exact.

        Every U_n^l is a polynomial of degree n in x and y, so with m = order + 1 the modes
        are ``Tx C_j Txᵀ`` for (m, m) matrices C_j (``self.cheb_coeffs`` (m², J), solved by
        least squares and checked); W is then two small products instead of the
        (n², J) basis times K (a 1.5 MB operand at 98² pixels and order 5).
        """
        m = self.order + 1
        self.cheb_x = np.polynomial.chebyshev.chebvander(t, self.order)  # (n, m)
        prod = np.kron(self.cheb_x, self.cheb_x)  # (n², m²), row ix*n + iy, column a*m + b
        coef = np.linalg.lstsq(prod, self.zernike_basis, rcond=None)[0]
        err = np.max(np.abs(prod @ coef - self.zernike_basis))
        scale = np.max(np.abs(self.zernike_basis))
        self.cheb_coeffs = coef if err <= 1e-12 * scale and m < t.size else None

    def wavefront(self, K):
        """W(x, y) = Σ K_nl U_n^l in waves on the aperture grid, shape (n, n) tensor."""
        K = pt.as_tensor_variable(K)
        n = self.x.size
        if self.cheb_coeffs is None:
            return pt.dot(self.zernike_basis, K).reshape((n, n))
        m = self.cheb_x.shape[1]  # order + 1
        c = pt.dot(self.cheb_coeffs, K).reshape((m, m))
        return pt.dot(pt.dot(self.cheb_x, c), self.cheb_x.T)

    def aperture_fields(self, K, illum: dict, pointing=None, d_z=None, blockage=None,
                        aperture_error=None):
        """Real and imaginary aperture fields of every map: two lists of (n, n) tensors."""
        amp = self.illumination_amplitude(illum, blockage, aperture_error)
        base = TWO_PI * self.wavefront(K)
        ers, eis = [], []
        for i in range(self.data.n_maps):
            phase = base + self.defocus(i, d_z)
            if self._fft is not None and self._fft.phase_shift[i] is not None:
                phase = phase + self._fft.phase_shift[i]
            if pointing is not None:
                p = pt.as_tensor_variable(pointing)
                phase = phase + TWO_PI / self.wavelength * (p[i, 0] * self._X + p[i, 1] * self._Y)
            ers.append(amp * pt.cos(phase))
            eis.append(amp * pt.sin(phase))
        return ers, eis

    def fields(self, K, illum: dict, pointing=None, d_z=None, blockage=None,
               aperture_error=None):
        """Far field (Fr, Fi) at each map's samples (normalised), list of tensor pairs."""
        ers, eis = self.aperture_fields(K, illum, pointing, d_z, blockage, aperture_error)
        if self._direct is not None:
            out = [t(er, ei) for t, er, ei in zip(self._direct, ers, eis, strict=True)]
        else:
            out = self._fft(ers, eis)
        s = self.field_scale
        return [(fr * s, fi * s) for fr, fi in out]

    def power(self, K, illum: dict, pointing=None, d_z=None, blockage=None,
              aperture_error=None):
        """Power pattern at every sample of every map, concatenated in map order.

        Parameters
        ----------
        K : tensor (J,)
            Zernike coefficients in waves, OSA order (``self.nl``).
        illum : dict of scalars
            Illumination coefficients (``illumination_params``): c_dB [dB], q, x0, y0 [m].
        pointing : tensor (n_maps, 2), optional
            Beam-centre offsets (u, v) of each map, rad.
        d_z : tensor (n_maps,), optional
            Effective sub-reflector offset of each map, m (default: the commanded ones,
            as constants).
        blockage : dict of scalars, optional
            Leg dimensions among those freed at construction ('leg_half_width' m,
            'shade_half_angle' deg); the others stay the preset's.
        aperture_error : tensor (J_a,), optional
            Relative aperture-amplitude error in Zernike modes 1..J_a (no piston), the
            model-error term (:mod:`bayesoof.inference.model_error`); its length must be
            static (a NumPy array or a vector of known shape).

        Returns
        -------
        tensor (n_samples,)
            Normalised power (1 = peak of a perfect uniform unblocked dish).
        """
        parts = [fr**2 + fi**2 for fr, fi in
                 self.fields(K, illum, pointing, d_z, blockage, aperture_error)]
        return pt.concatenate(parts) if len(parts) > 1 else parts[0]

    def describe(self) -> str:
        """One line on the discretisation chosen."""
        s = self.sampling
        extra = ""
        if self._direct is not None and self.method != "direct":
            extra = "; " + ", ".join(
                t.describe() if t.kind == "nufft" else t.kind for t in self._direct
            )
        if self._fft is not None:
            extra = f", FFT box {self._fft.box[0]}x{self._fft.box[1]}" + (
                " (bins on the samples)" if self.exact_fft else " (windowed-sinc interpolation)"
            )
        if self.leg_coverage is not None:  # (part of the fit's cache key: keep the bounds)
            free = ", ".join(f"{k} in [{lo:g}, {hi:g}]"
                             for k, (lo, hi) in sorted(self.leg_coverage.bounds.items()))
            extra += f"; free legs: {free} ({self.leg_coverage.n_pixels} pixels in the graph)"
        return (
            f"{self.method} transform, {s.n} x {s.n} aperture pixels of {s.dx:.4g} m"
            f" ({self.zernike_basis.shape[1]} Zernike terms{extra})"
        )
