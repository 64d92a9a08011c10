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
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from bayesoof.data.containers import BeamMaps
from bayesoof.physics import illumination as illum_mod
from bayesoof.physics import zernike
from bayesoof.physics.aperture import ApertureGrid, default_sampling
from bayesoof.physics.telescope import Telescope, get_telescope
from bayesoof.physics.transforms import TWO_PI, DirectGrid, DirectScatter, FFTBox, fast_size

__all__ = ["ForwardModel", "METHODS"]

METHODS = ("auto", "direct", "fft")


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
    method : {'auto', 'direct', 'fft'}
        'direct' evaluates the DFT exactly at the samples; 'fft' uses a zero-padded FFT2.
        'auto' picks 'direct', the faster of the two in ``bench/bench_forward.py`` (on
        lattice maps by ~5x; on scattered maps on par in C and ~3x faster with JAX).
    sampling : ApertureGrid, optional
        Aperture pixels; by default chosen from the defocus phase slope and the map extent
        (:func:`bayesoof.physics.aperture.default_sampling`).  With method 'fft' on lattice maps
        the pixel is adjusted so that FFT bins fall exactly on the samples.
    fft_oversample : int
        With 'fft' on scattered samples: box size >= this × the aperture (interpolation
        accuracy grows with it).
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
    ):
        if int(order) != order or order < 1:
            raise ValueError(f"Zernike order must be an integer >= 1, got {order!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        illum_mod.illumination_params(illumination)  # validates the name
        data.validate()
        self.data = data
        self.telescope = get_telescope(telescope)
        self.order = int(order)
        self.illumination = illumination
        self.wavelength = data.wavelength
        self.nl = zernike.nl_list(self.order)
        grids = [m.grid() for m in data.maps]
        if method == "auto":
            method = "direct"
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
        self.defocus_phase = np.stack(
            [TWO_PI / lam * self.telescope.opd(X, Y, m.d_z) for m in data.maps]
        )
        self._X, self._Y = X, Y
        # pixel area over the dish area: F normalised to 1 for a uniform unblocked dish
        self.field_scale = sampling.dx**2 / (np.pi * R**2)

        if method == "direct":
            self._fft = None
            self._direct = [
                DirectGrid(x, lam, g) if g is not None else DirectScatter(x, lam, m.u, m.v)
                for m, g in zip(data.maps, grids, strict=True)
            ]
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
        if any(g is None for g in grids):
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

        Needs all maps on lattices with one common step in u and v (to 1e-6).
        """
        if any(g is None for g in grids):
            return sampling, False
        steps = np.array([[g.du, g.dv] for g in grids]).ravel()
        if np.ptp(steps) > 1e-6 * steps.mean():
            return sampling, False
        span = self.wavelength / steps.mean()  # box length N dx, m
        size = fast_size(int(np.ceil(span / sampling.dx)))
        aligned = ApertureGrid(sampling.radius, span / size, sampling.supersample)
        return aligned, self._fft_aligned(aligned, grids)

    # ------------------------------------------------------------------ graph
    def illumination_amplitude(self, illum: dict):
        """Blockage × illumination on the aperture grid, shape (n, n) tensor."""
        # float64 throughout: pytensor makes a Python float such as -14.5 a float32
        # constant, and 10 ** (c_dB / 20) would then be evaluated in float32 (1e-8 error)
        coeffs = {k: pt.cast(pt.as_tensor_variable(v), "float64") for k, v in illum.items()}
        return self.block * illum_mod.evaluate(
            self.illumination, self._X, self._Y, self.telescope.radius, coeffs
        )

    def wavefront(self, K):
        """W(x, y) = Σ K_nl U_n^l in waves on the aperture grid, shape (n, n) tensor."""
        K = pt.as_tensor_variable(K)
        n = self.x.size
        return pt.dot(self.zernike_basis, K).reshape((n, n))

    def aperture_fields(self, K, illum: dict, pointing=None):
        """Real and imaginary aperture fields of every map: two lists of (n, n) tensors."""
        amp = self.illumination_amplitude(illum)
        base = TWO_PI * self.wavefront(K)
        ers, eis = [], []
        for i in range(self.data.n_maps):
            phase = base + self.defocus_phase[i]
            if self._fft is not None and self._fft.phase_shift[i] is not None:
                phase = phase + self._fft.phase_shift[i]
            if pointing is not None:
                p = pt.as_tensor_variable(pointing)
                phase = phase + TWO_PI / self.wavelength * (p[i, 0] * self._X + p[i, 1] * self._Y)
            ers.append(amp * pt.cos(phase))
            eis.append(amp * pt.sin(phase))
        return ers, eis

    def fields(self, K, illum: dict, pointing=None):
        """Far field (Fr, Fi) at each map's samples (normalised), list of tensor pairs."""
        ers, eis = self.aperture_fields(K, illum, pointing)
        if self._direct is not None:
            out = [t(er, ei) for t, er, ei in zip(self._direct, ers, eis, strict=True)]
        else:
            out = self._fft(ers, eis)
        s = self.field_scale
        return [(fr * s, fi * s) for fr, fi in out]

    def power(self, K, illum: dict, pointing=None):
        """Power pattern at every sample of every map, concatenated in map order.

        Parameters
        ----------
        K : tensor (J,)
            Zernike coefficients in waves, OSA order (``self.nl``).
        illum : dict of scalars
            Illumination coefficients (``illumination_params``): c_dB [dB], q, x0, y0 [m].
        pointing : tensor (n_maps, 2), optional
            Beam-centre offsets (u, v) of each map, rad.

        Returns
        -------
        tensor (n_samples,)
            Normalised power (1 = peak of a perfect uniform unblocked dish).
        """
        parts = [fr**2 + fi**2 for fr, fi in self.fields(K, illum, pointing)]
        return pt.concatenate(parts) if len(parts) > 1 else parts[0]

    def describe(self) -> str:
        """One line on the discretisation chosen."""
        s = self.sampling
        extra = ""
        if self._fft is not None:
            extra = f", FFT box {self._fft.box[0]}x{self._fft.box[1]}" + (
                " (bins on the samples)" if self.exact_fft else " (windowed-sinc interpolation)"
            )
        return (
            f"{self.method} transform, {s.n} x {s.n} aperture pixels of {s.dx:.4g} m"
            f" ({self.zernike_basis.shape[1]} Zernike terms{extra})"
        )
