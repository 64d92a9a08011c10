"""Far-field transforms in PyTensor: aperture field -> field at the observed (u, v).

All transforms evaluate F(u, v) = Σ_xy E(x, y) exp(-2πi (u x + v y)/λ) (the kernel of
PHYSICS.md) at the samples of one map, in the map's sample order, with real arithmetic:
the aperture field comes in as ``(Er, Ei)`` arrays indexed ``[ix, iy]`` and the field
goes out as ``(Fr, Fi)`` vectors.  The pixel area is not included (the caller scales).

* :class:`DirectGrid` — samples on a rectangular lattice: F = C_u E C_vᵀ, exact.
* :class:`DirectScatter` — scattered samples: row-factored exact DFT, cost n²·M.
* :class:`FFTBox` — zero-padded FFT2 of all maps at once (pytensor's RFFT Op), read at
  the samples either exactly (lattice aligned with the FFT bins) or by separable
  Kaiser-windowed sinc interpolation of the complex field on an oversampled box.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.fft import rfft

from bayesoof.data.containers import RegularGrid
from bayesoof.physics.parity_fold import ParityFold

__all__ = ["DirectGrid", "DirectScatter", "FFTBox", "LatticeDFT", "NUFFT", "fast_size",
           "select_transform"]

TWO_PI = 2.0 * np.pi


def _cos_sin(freq: np.ndarray, x: np.ndarray, wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    arg = TWO_PI / wavelength * np.outer(freq, x)
    return np.cos(arg), np.sin(arg)


class LatticeDFT:
    """Exact DFT on the lattice ``u_axis × v_axis``: two real matrix products per map.

    The pixel centres ``x`` are symmetric about 0 (as :class:`ApertureGrid`'s are), so
    cos(2π u x/λ) is even and sin(2π u x/λ) odd in x: each contraction over an aperture
    axis runs over the even part E(x) + E(-x) against the cosines and the odd part
    E(x) - E(-x) against the sines, on half the pixels.  Both products therefore have
    the aperture's n as their inner dimension for the real *and* imaginary parts
    together, half the multiply-adds of the complex product written as a real block
    matrix (exact: the same sum, regrouped).  Asymmetric ``x`` (or weights) falls back
    to the unfolded block product.

    Parameters
    ----------
    x : ndarray
        Pixel-centre coordinates (m), shared by both aperture axes.
    wavelength : float
        m.
    u_axis, v_axis : ndarray
        Lattice abscissae (rad).
    pixel_weight : ndarray, optional
        Factor applied to the aperture field along each axis (one value per pixel of
        ``x``): the field summed is E(x, y) w(x) w(y).  Folded into the matrices, free.
    """

    def __init__(self, x, wavelength, u_axis, v_axis, pixel_weight=None):
        x = np.asarray(x, float)
        weight = np.ones_like(x) if pixel_weight is None else np.asarray(pixel_weight, float)
        self.nu, self.nv, self.n = len(u_axis), len(v_axis), len(x)
        scale = np.max(np.abs(x))
        self.folded = bool(np.allclose(x, -x[::-1], rtol=0, atol=1e-12 * scale)
                           and np.allclose(weight, weight[::-1], rtol=1e-12, atol=0))
        if self.folded:
            n, half = self.n, self.n // 2
            ne = n - half  # even part: the pixel pairs (x, -x), and x = 0 when n is odd
            # [Gr; Gi] = [[Er_e, Ei_o], [Ei_e, -Er_o]] @ Mv      Mv = [Cvc_eᵀ; Cvs_oᵀ] (n, nv)
            # [Fr, Fi] = Mu @ [[Gr_e, Gi_e], [Gi_o, -Gr_o]]      Mu = [Cuc_e, Cus_o]   (nu, n)
            # (_e: columns/rows of the even part, the half x <= 0; _o: the odd part)
            cu, su = _cos_sin(u_axis, x[:ne], wavelength)
            cv, sv = _cos_sin(v_axis, x[:ne], wavelength)
            w = weight[:ne]
            self.mu = np.hstack([cu * w, (su * w)[:, :half]])
            self.mv = np.hstack([cv * w, (sv * w)[:, :half]]).T.copy()
        else:
            cuc, cus = _cos_sin(u_axis, x, wavelength)  # (nu, n)
            cvc, cvs = _cos_sin(v_axis, x, wavelength)  # (nv, n)
            cuc, cus, cvc, cvs = (c * weight for c in (cuc, cus, cvc, cvs))
            # [Gr Gi] = [Er Ei] @ Mv  with Mv = [[Cvcᵀ, -Cvsᵀ], [Cvsᵀ, Cvcᵀ]]   (2n, 2nv)
            self.mv = np.block([[cvc.T, -cvs.T], [cvs.T, cvc.T]])
            # [Fr; Fi] = Mu @ [Gr; Gi]  with Mu = [[Cuc, Cus], [-Cus, Cuc]]       (2nu, 2n)
            self.mu = np.block([[cuc, cus], [-cus, cuc]])

    def __call__(self, er, ei):
        """(Fr, Fi) on the lattice, two (nu, nv) tensors; ``er, ei`` of shape (n, n).

        (Stacking several maps' fields into one product per stage was measured slower:
        the larger operands leave the core's cache.)
        """
        if not self.folded:
            g = pt.dot(pt.concatenate([er, ei], axis=1), self.mv)  # (n, 2nv)
            n_v = self.nv
            g = pt.concatenate([g[:, :n_v], g[:, n_v:]], axis=0)  # (2n, nv) = [Gr; Gi]
            f = pt.dot(self.mu, g)  # (2nu, nv)
            return f[: self.nu], f[self.nu :]
        # the even/odd parts of (er, ei) along x, then of (Gr, Gi) along y, each in one
        # pass (parity_fold.py): [[Er_e, Ei_o], [Ei_e, -Er_o]] and [[Gr_e, Gi_e], [Gi_o, -Gr_o]]
        g = pt.dot(ParityFold("cols")(er, ei), self.mv)  # (2n, nv) = [Gr; Gi]
        n = self.n
        f = pt.dot(self.mu, ParityFold("rows")(g[:n], g[n:]))  # (nu, 2nv) = [Fr, Fi]
        return f[:, : self.nv], f[:, self.nv :]

    @staticmethod
    def count_macs(n: int, nu: int, nv: int) -> int:
        """Multiply-adds of one evaluation (the gradient costs twice as many)."""
        return 2 * n * nv * (n + nu)


class DirectGrid:
    """Exact DFT at lattice samples: F = C_u E C_vᵀ, then the samples in their order.

    Samples in u-major or v-major lattice order are read off F or Fᵀ as they lie; any
    other order (or a partial lattice) takes a gather.

    Parameters
    ----------
    x, wavelength
        As in :class:`LatticeDFT`.
    grid : RegularGrid
        Lattice of the samples (rad) with their indices.
    """

    kind = "direct"

    def __init__(self, x: np.ndarray, wavelength: float, grid: RegularGrid):
        self.nu, self.nv = grid.nu, grid.nv
        every = np.arange(self.nu * self.nv)
        flat = grid.iu * grid.nv + grid.iv
        # samples in v-major order (u varying fastest, as pyoof writes them): the lattice of
        # Fᵀ = C_v Eᵀ C_uᵀ is in their order, so no gather is needed
        self.transposed = (not np.array_equal(flat, every)
                           and np.array_equal(grid.iv * grid.nu + grid.iu, every))
        if self.transposed:
            self.dft = LatticeDFT(x, wavelength, grid.v, grid.u)
            self.flat = None
        else:
            self.dft = LatticeDFT(x, wavelength, grid.u, grid.v)
            self.flat = None if np.array_equal(flat, every) else flat

    def __call__(self, er, ei):
        """Field (Fr, Fi) at the samples; ``er, ei`` of shape (n, n)."""
        if self.transposed:  # Fᵀ[v, u] = Σ Eᵀ[y, x] exp(-2πi (v y + u x)/λ)
            er, ei = pt.swapaxes(er, -1, -2), pt.swapaxes(ei, -1, -2)
        fr, fi = self.dft(er, ei)
        fr, fi = fr.ravel(), fi.ravel()
        if self.flat is not None:
            fr, fi = fr[self.flat], fi[self.flat]
        return fr, fi

    @staticmethod
    def predict(n: int, grid: RegularGrid, costs: dict) -> float:
        """Predicted seconds per value + gradient for n × n pixels."""
        return 3 * LatticeDFT.count_macs(n, grid.nu, grid.nv) * costs["gemm_mac"] + costs["call"]


class DirectScatter:
    """Exact DFT at scattered samples: G = E C_vᵀ for every sample, then Σ_x C_u ⊙ G."""

    kind = "direct"

    def __init__(self, x: np.ndarray, wavelength: float, u: np.ndarray, v: np.ndarray):
        cuc, cus = _cos_sin(u, x, wavelength)  # (M, n)
        cvc, cvs = _cos_sin(v, x, wavelength)
        self.mv = np.block([[cvc.T, -cvs.T], [cvs.T, cvc.T]])  # (2n, 2M)
        self.cuc, self.cus = cuc.T.copy(), cus.T.copy()  # (n, M)
        self.m = u.size

    def __call__(self, er, ei):
        """Field (Fr, Fi) at the samples; ``er, ei`` of shape (n, n)."""
        g = pt.dot(pt.concatenate([er, ei], axis=1), self.mv)  # (n, 2M)
        gr, gi = g[:, : self.m], g[:, self.m :]
        fr = pt.sum(self.cuc * gr + self.cus * gi, axis=0)
        fi = pt.sum(self.cuc * gi - self.cus * gr, axis=0)
        return fr, fi

    @staticmethod
    def predict(n: int, m: int, costs: dict) -> float:
        """Predicted seconds per value + gradient for n × n pixels and m samples."""
        return (3 * (4 * n * n * m * costs["gemm_mac"] + 6 * n * m * costs["elementwise"])
                + costs["call"])


# Width w (lattice steps) of the ES kernel for each oversampling σ of the NUFFT lattice:
# the smallest w whose interpolation error stays below ~1e-7 of the peak power on the
# asymmetric test beams (tests/physics/test_transforms.py), ten times under the 1e-6 goal.
NUFFT_WIDTHS = {2: 7}


class NUFFT:
    """Type-2 non-uniform DFT at scattered samples: fine lattice plus kernel interpolation.

    The aperture field, divided by the kernel's Fourier transform along each axis, is
    transformed exactly (:class:`LatticeDFT`) onto a lattice of step h = λ/(σ n dx) that
    covers only the samples' (u, v) box, and read at the samples by the ES kernel
    (:mod:`bayesoof.physics.gridding`): F(u, v) = Σ_ab φ(u/h - a) φ(v/h - b) G[a, b].
    The interpolation is a gather whose transpose (the gradient) is a scatter-add; no
    samples × pixels matrix is formed.  The error is the kernel's aliasing,
    ~10^-(w-1) of Σ|E| at σ = 2.

    Parameters
    ----------
    x : ndarray
        Pixel-centre coordinates (m), shared by both aperture axes.
    wavelength : float
        m.
    u, v : ndarray (M,)
        Sample directions, rad.
    oversample : int
        σ: lattice step relative to the Nyquist step λ/(n dx) of the aperture.
    width : int, optional
        Kernel width w in lattice steps (default :data:`NUFFT_WIDTHS` [σ]).
    """

    kind = "nufft"

    def __init__(self, x, wavelength, u, v, oversample=2, width=None):
        from bayesoof.physics import gridding

        self.oversample = int(oversample)
        self.width = int(width or NUFFT_WIDTHS[self.oversample])
        self.step = self.lattice_step(x, wavelength, self.oversample)  # h, rad
        beta = gridding.kernel_beta(self.width, self.oversample)
        ku, self.wu = gridding.kernel_taps(np.asarray(u) / self.step, self.width, beta)
        kv, self.wv = gridding.kernel_taps(np.asarray(v) / self.step, self.width, beta)
        u0, v0 = int(ku.min()), int(kv.min())
        self.ku, self.kv = ku - u0, kv - v0
        nu, nv = int(self.ku.max()) + self.width, int(self.kv.max()) + self.width
        # field × 1/φ̂ per axis, φ̂ at the pixel's phase advance per lattice step (h x / λ)
        deconvolve = 1.0 / gridding.es_kernel_ft(self.step * x / wavelength, self.width, beta)
        self.dft = LatticeDFT(
            x, wavelength, (u0 + np.arange(nu)) * self.step, (v0 + np.arange(nv)) * self.step,
            pixel_weight=deconvolve,
        )
        self.gather = gridding.KernelGather(nu, nv, self.width)
        self.m = np.asarray(u).size

    @staticmethod
    def lattice_step(x: np.ndarray, wavelength: float, oversample: int) -> float:
        """Lattice step h = λ / (σ n dx), rad."""
        return wavelength / (oversample * x.size * float(x[1] - x[0]))

    @classmethod
    def lattice_shape(cls, x, wavelength, u, v, oversample, width=None) -> tuple[int, int]:
        """(nu, nv) of the lattice covering the samples' kernel footprints."""
        w = int(width or NUFFT_WIDTHS[int(oversample)])
        h = cls.lattice_step(x, wavelength, oversample)
        span = [int(np.ceil(c.max() / h - 0.5 * w) - np.ceil(c.min() / h - 0.5 * w)) + w
                for c in (np.asarray(u), np.asarray(v))]
        return span[0], span[1]

    @classmethod
    def predict(cls, x, wavelength, u, v, oversample, costs: dict) -> float:
        """Predicted seconds per value + gradient (``costs``: see :data:`COSTS`)."""
        w = NUFFT_WIDTHS[int(oversample)]
        nu, nv = cls.lattice_shape(x, wavelength, u, v, oversample)
        taps = 4 * np.asarray(u).size * w * w  # gather + spread, two components each
        return (3 * LatticeDFT.count_macs(x.size, nu, nv) * costs["gemm_mac"]
                + taps * costs["kernel_tap"] + costs["call"])

    def __call__(self, er, ei):
        """Field (Fr, Fi) at the samples; ``er, ei`` of shape (n, n)."""
        lattice = pt.stack(self.dft(er, ei))  # (2, nu, nv)
        out = self.gather(lattice, self.ku, self.kv, self.wu, self.wv)  # (2, M)
        return out[0], out[1]

    def describe(self) -> str:
        """Short label: oversampling, kernel width, lattice."""
        return f"nufft σ={self.oversample} w={self.width} on {self.dft.nu}x{self.dft.nv}"


# Seconds per unit of work on one core, for choosing the transform of each map (see
# :func:`select_transform`): a multiply-add inside a BLAS matrix product, one kernel tap of
# the gather or spread (C loop), one element of an elementwise tensor operation, and the
# fixed cost of one transform (its Ops' calls).  Fitted to CPU times of value + gradient
# by ``python bench/bench_forward.py --calibrate`` (non-negative least squares over
# sizes; 2-core AMD EPYC, AVX-512).  Only their ratios decide.
COSTS = {"gemm_mac": 3.75e-11, "kernel_tap": 3.16e-10, "elementwise": 2.36e-10, "call": 2.75e-4}


def select_transform(x, wavelength, u, v, grid, method="auto", costs=None):
    """The transform of one map: the cheapest by :data:`COSTS` among those ``method`` allows.

    Parameters
    ----------
    x : ndarray
        Pixel-centre coordinates, m.
    wavelength : float
        m.
    u, v : ndarray
        Sample directions, rad.
    grid : RegularGrid or None
        The samples' lattice, when they lie on one.
    method : {'auto', 'direct', 'nufft'}
        'direct': the exact DFT (lattice or scattered); 'nufft': :class:`NUFFT` at the
        cheapest oversampling; 'auto': the cheapest of all.

    Returns
    -------
    (transform, predicted seconds per value + gradient)
    """
    costs = costs or COSTS
    options = []
    if method in ("auto", "direct"):
        if grid is not None:
            options.append((DirectGrid.predict(x.size, grid, costs),
                            lambda: DirectGrid(x, wavelength, grid)))
        else:
            options.append((DirectScatter.predict(x.size, np.asarray(u).size, costs),
                            lambda: DirectScatter(x, wavelength, u, v)))
    if method in ("auto", "nufft"):
        for sigma in NUFFT_WIDTHS:
            options.append((NUFFT.predict(x, wavelength, u, v, sigma, costs),
                            lambda s=sigma: NUFFT(x, wavelength, u, v, s)))
    if not options:
        raise ValueError(f"select_transform: unknown method {method!r}")
    seconds, build = min(options, key=lambda o: o[0])
    return build(), seconds


def fast_size(n: int) -> int:
    """Smallest even 2^a 3^b 5^c >= n (sizes pocketfft transforms fastest)."""
    best = None
    p2 = 2
    while p2 < 2 * n:
        p3 = p2
        while p3 < 2 * n:
            p5 = p3
            while p5 < 2 * n:
                if p5 >= n and (best is None or p5 < best):
                    best = p5
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return best


def _kaiser_sinc(t: np.ndarray, a: int, beta: float) -> np.ndarray:
    """Kaiser-windowed sinc of half-width ``a`` bins (interpolation weights)."""
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / a) ** 2, 0.0, 1.0))) / np.i0(beta)
    return np.where(np.abs(t) < a, np.sinc(t) * window, 0.0)


class FFTBox:
    """One zero-padded FFT2 box shared by all maps.

    The aperture (n × n pixels of side dx) sits in an (Nu, Nv) box; bin k holds F at
    k λ/(N dx).  Read exactly, the aperture sits in the box's corner (a phase factor the
    power does not see); interpolated, it is centred on index 0 (circularly), so the
    field has no phase ramp across the bins.  Per map, ``phase_shift`` gives the aperture
    phase (rad) that moves the map's lattice origin onto bin 0 when the map is read exactly.

    Parameters
    ----------
    x : ndarray
        Pixel-centre coordinates, m.
    wavelength : float
        m.
    maps : sequence of (u, v, grid) with grid a RegularGrid or None
    box : (int, int)
        FFT size (Nu, Nv), each >= n.
    exact : bool
        Read lattice maps exactly; requires every map's lattice step to equal the bin size.
    taps : int
        Interpolation half-width a (2a × 2a taps per sample).  A Kaiser-windowed sinc
        (β = 2a) on a 4× oversampled box interpolates a band-limited field to ~1e-6 of its
        peak for a = 6 (plain Lanczos-4 only reaches ~3e-3).
    """

    def __init__(self, x, wavelength, maps, box, exact, taps=6):
        self.n = x.size
        self.box = tuple(int(b) for b in box)
        dx = float(x[1] - x[0])
        self.bin = (wavelength / (self.box[0] * dx), wavelength / (self.box[1] * dx))
        self.centred = not exact
        self.phase_shift = []
        self.reads = []
        X, Y = np.meshgrid(x, x, indexing="ij")
        for u, v, grid in maps:
            if exact:
                self.phase_shift.append(-TWO_PI / wavelength * (grid.u0 * X + grid.v0 * Y))
                ku, kv = grid.iu[:, None], grid.iv[:, None]
                w = np.ones((u.size, 1))
            else:
                self.phase_shift.append(None)
                fu, fv = u / self.bin[0], v / self.bin[1]
                off = np.arange(-taps + 1, taps + 1)
                ku0, kv0 = np.floor(fu).astype(int), np.floor(fv).astype(int)
                tu = ku0[:, None] + off[None, :]  # (M, 2a)
                tv = kv0[:, None] + off[None, :]
                wu = _kaiser_sinc(fu[:, None] - tu, taps, 2.0 * taps)
                wv = _kaiser_sinc(fv[:, None] - tv, taps, 2.0 * taps)
                ku = np.repeat(tu, tv.shape[1], axis=1)
                kv = np.tile(tv, (1, tu.shape[1]))
                w = (wu[:, :, None] * wv[:, None, :]).reshape(u.size, -1)
            self.reads.append(self._hermitian(ku, kv) + (w,))

    def _hermitian(self, ku, kv):
        """Flat rfft indices and the sign of the imaginary part for bins (ku, kv)."""
        nu, nv = self.box
        ku, kv = np.mod(ku, nu), np.mod(kv, nv)
        half = nv // 2 + 1
        conj = kv >= half
        ku = np.where(conj, np.mod(-ku, nu), ku)
        kv = np.where(conj, nv - kv, kv)
        return ku * half + kv, np.where(conj, -1.0, 1.0)

    def __call__(self, er_list, ei_list):
        """Fields (Fr, Fi) at each map's samples from per-map (n, n) aperture fields."""
        n, (nu, nv) = self.n, self.box
        nm = len(er_list)
        stack = pt.stack(list(er_list) + list(ei_list))  # (2 nm, n, n)
        padded = pt.zeros((2 * nm, nu, nv), dtype=stack.dtype)
        padded = pt.set_subtensor(padded[:, :n, :n], stack)
        if self.centred:
            # aperture centre on index 0 (circularly): no phase ramp across the bins, so
            # the interpolated field is band-limited around 0, where the kernel is flattest
            padded = pt.roll(pt.roll(padded, -(n // 2), axis=1), -(n // 2), axis=2)
        spec = rfft(padded)  # (2 nm, nu, nv//2+1, 2)
        spec = spec.reshape((2 * nm, nu * (nv // 2 + 1), 2))
        out = []
        for i, (idx, sign, w) in enumerate(self.reads):
            a, b = spec[i], spec[nm + i]  # transforms of Er and Ei
            ar, ai = a[idx, 0], a[idx, 1] * sign
            br, bi = b[idx, 0], b[idx, 1] * sign
            # FFT(Er + i Ei) = A + i B
            fr = pt.sum(w * (ar - bi), axis=1)
            fi = pt.sum(w * (ai + br), axis=1)
            out.append((fr, fi))
        return out
