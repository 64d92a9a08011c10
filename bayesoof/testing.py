"""Seeded data factories, independent NumPy references and comparators for the tests.

Nothing here is used by the fits.  The reference forward model deliberately shares only
the *constants* of a :class:`~bayesoof.physics.forward.ForwardModel` that are not under test:
the pixel centres (``sampling.coords()``), the pixel coverage ``fm.block``, the
telescope OPD and the wavelength / d_z / sample positions of the data.  Everything the
forward graph computes (Zernike phase, illumination, pointing phase, far-field
transform, normalisation, sample ordering) is recomputed here in complex128 NumPy from
the formulas of ``shared/PHYSICS.md``:

    E_p    = B_p E_a(x_p, y_p) exp(i [2π W_p + (2π/λ) δ_p + (2π/λ)(u_0 x_p + v_0 y_p)])
    F(u_k, v_k) = Σ_p E_p exp(-2πi (u_k x_p + v_k y_p)/λ) · dx² / (π R²)
    P      = |F|²

Units: lengths m, directions rad, K in waves, c_dB in dB.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesoof.data.containers import BeamMap, BeamMaps
from bayesoof.physics import zernike
from bayesoof.physics.telescope import Telescope, get_telescope

#: root of the source checkout (the package is installed editable from it)
REPO_ROOT = Path(__file__).resolve().parents[1]



def bench_script(name: str):
    """The bench script ``bench/<name>.py`` of this checkout as a module.

    Tests use its functions; the calling test is skipped (pytest) when the checkout has
    no such script.
    """
    import importlib.util

    path = REPO_ROOT / "bench" / f"{name}.py"
    if not path.is_file():
        import pytest

        pytest.skip(f"bench/{name}.py not in this checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_dir() -> Path:
    """The project's shared material: ``$BAYESOOF_SHARED`` or ``../shared`` beside the checkout.

    Tests that need it skip when the folder is absent.
    """
    return Path(os.environ.get("BAYESOOF_SHARED", REPO_ROOT.parent / "shared"))

__all__ = [
    "ASYMMETRIC_ILLUMINATION",
    "Residual",
    "SimCase",
    "assert_close_maps",
    "asymmetric_coefficients",
    "compile_power",
    "grd_field",
    "make_case",
    "one_leg_telescope",
    "reference_aperture_fields",
    "reference_coverage",
    "reference_far_fields",
    "reference_illumination",
    "reference_peak",
    "reference_power",
    "worst_residual",
    "write_grd",
]

#: Illumination with an offset centre (m) for a 50 m dish: breaks the x -> -x, y -> -y
#: and x <-> y symmetries of the aperture amplitude.
ASYMMETRIC_ILLUMINATION = {"c_dB": -12.0, "q": 1.3, "x0": 3.0, "y0": -1.7}


# ------------------------------------------------------------------ factories
def asymmetric_coefficients(order: int = 3, scale: float = 0.06, seed: int = 11) -> np.ndarray:
    """Seeded K (waves, OSA order) with piston 0 and every other term non-zero.

    All odd-l terms (coma, trefoil, ...) are forced to at least ``scale / 2`` in size, so
    that the phase has no point symmetry: a conjugation (φ -> -φ) or an axis flip
    changes the far field.
    """
    rng = np.random.default_rng(seed)
    nl = zernike.nl_list(order)
    K = np.array([rng.normal(0.0, scale) / zernike.mode_rms(n, m) for n, m in nl])
    for j, (_n, m) in enumerate(nl):
        if m % 2 and abs(K[j]) < scale / 2:
            K[j] = np.copysign(scale / 2, K[j] if K[j] else 1.0)
    K[0] = 0.0
    return K


def one_leg_telescope(base: str | Telescope = "effelsberg") -> Telescope:
    """Return ``base`` with a custom asymmetric blockage: sub-reflector, ONE leg, a patch.

    Open where ``sr < r < R``, except a leg of half-width 1 m along +x from the centre to
    the rim and a rectangular patch 10 m < x < 16 m, 20 m < y < 24 m (both scaled by
    R / 50 m).  No reflection or transposition maps this mask onto itself.
    """
    tel = get_telescope(base)
    R = tel.radius
    s = R / 50.0
    sr = tel.blockage.sub_reflector_radius or 3.25 * s

    def one_leg(x, y):
        r = np.hypot(x, y)
        open_ = (r < R) & (r > sr)
        leg = (x > 0) & (np.abs(y) < 1.0 * s)
        patch = (x > 10 * s) & (x < 16 * s) & (y > 20 * s) & (y < 24 * s)
        return (open_ & ~leg & ~patch).astype(float)

    return Telescope(
        name=f"{tel.name}-one-leg",
        radius=R,
        optics=tel.optics,
        description="test telescope with an asymmetric blockage",
        blockage_func=one_leg,
    )


@dataclass
class SimCase:
    """A seeded simulated data set and the truth it was made from.

    ``pointing`` is (n_maps, 2) rad; ``illumination`` the coefficient dict (m, dB).
    """

    maps: BeamMaps
    telescope: Telescope
    K: np.ndarray
    illumination: dict
    pointing: np.ndarray
    illumination_kind: str = "parabolic"
    settings: dict = field(default_factory=dict)

    @property
    def order(self) -> int:
        """Zernike order of ``K``."""
        return zernike.j_to_nl(self.K.size - 1)[0]


def make_case(
    telescope: str | Telescope = "effelsberg",
    order: int = 3,
    scatter: bool = False,
    n_grid: int = 21,
    extent: float = 6.0,
    wavelength: float = 0.009,
    d_z=(-0.022, 0.0, 0.022),
    illumination: dict | None = None,
    illumination_kind: str = "parabolic",
    pointing=None,
    snr: float | None = None,
    seed: int = 3,
    sampling=None,
    values: bool = True,
) -> SimCase:
    """Small asymmetric simulated maps (odd-l K, offset illumination, non-zero pointing).

    ``n_grid``² samples per map over ±``extent`` beam widths λ/(2R): a lattice (u
    varying fastest), or with ``scatter`` uniformly random positions drawn from
    ``seed``.  Default illumination: :data:`ASYMMETRIC_ILLUMINATION` with x0, y0 scaled by
    R / 50 m; default pointing: a different (u, v) offset of a fraction of a beam width
    in each map.  The beam values come from :func:`bayesoof.simulate.simulate` (``snr``
    None: noise-free); with ``values=False`` they are zeros (σ = 1) and nothing is
    compiled -- for tests that only need the sample geometry.
    """
    from bayesoof.physics.illumination import get_illumination
    from bayesoof.simulate import beam_grid, simulate

    tel = get_telescope(telescope)
    K = asymmetric_coefficients(order, seed=seed + 8)
    if illumination is None:  # the offset centre scaled to the dish
        scale = tel.radius / 50.0
        illum = dict(ASYMMETRIC_ILLUMINATION)
        illum["x0"] *= scale
        illum["y0"] *= scale
    else:
        illum = dict(illumination)
    start = get_illumination(illumination_kind).start_values(tel.radius)
    illum = {n: illum.get(n, start[n]) for n in start}
    dz = np.atleast_1d(np.asarray(d_z, float))
    nm = dz.size
    beam = wavelength / (2.0 * tel.radius)
    if pointing is None:
        base = np.array([[0.31, -0.17], [0.12, 0.23], [-0.21, 0.08]])
        pointing = beam * np.resize(base, (nm, 2))
    pointing = np.asarray(pointing, float)
    if scatter:
        rng = np.random.default_rng([seed, 1])
        half = extent * beam
        u = [rng.uniform(-half, half, n_grid * n_grid) for _ in range(nm)]
        v = [rng.uniform(-half, half, n_grid * n_grid) for _ in range(nm)]
    else:
        gu, gv = beam_grid(wavelength, tel.radius, n_grid, extent)
        u, v = [gu] * nm, [gv] * nm
    if values:
        maps = simulate(
            tel, K, wavelength, dz, illumination=illum, illumination_kind=illumination_kind,
            u=u, v=v, pointing=pointing, snr=snr, seed=seed, sampling=sampling,
        )
    else:
        maps = BeamMaps(
            tuple(
                BeamMap(u[i], v[i], np.zeros(u[i].size), dz[i], np.ones(u[i].size), f"map{i}")
                for i in range(nm)
            ),
            wavelength,
        )
        maps.validate()
    return SimCase(
        maps, tel, K, illum, pointing, illumination_kind,
        dict(scatter=scatter, n_grid=n_grid, extent=extent, seed=seed, snr=snr),
    )


def grd_field(nx: int = 5, ny: int = 4, seed: int = 0) -> np.ndarray:
    """Seeded complex co/cross-polar field (ny, nx, 2) for synthetic GRASP files."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(ny, nx, 2)) + 1j * rng.normal(size=(ny, nx, 2))


def write_raw_fits(path, primary: dict, tables: list, float_format: str = "E") -> Path:
    """Write a FITS file with astropy directly (independent of bayesoof's writers).

    ``tables``: (EXTNAME or None, header cards, {column: array or (TFORM, array)}); plain
    arrays become float columns of ``float_format`` ("E" float32, "D" float64), vector
    columns for 2-D arrays.
    """
    from astropy.io import fits

    dtype = {"E": np.float32, "D": np.float64}[float_format]
    hdr = fits.Header()
    for key, val in primary.items():
        hdr[key] = val
    hdus: list = [fits.PrimaryHDU(header=hdr)]
    for name, cards, cols in tables:
        fcols = []
        for cname, arr in cols.items():
            if isinstance(arr, tuple):
                fcols.append(fits.Column(name=cname, format=arr[0], array=arr[1]))
                continue
            arr = np.asarray(arr, dtype=dtype)
            fmt = float_format if arr.ndim == 1 else f"{arr.shape[1]}{float_format}"
            fcols.append(fits.Column(name=cname, format=fmt, array=arr))
        hdu = fits.BinTableHDU.from_columns(fcols, name=name)
        for key, val in cards.items():
            hdu.header[key] = val
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return Path(path)


def write_grd(path, field, limits=(-1e-3, -2e-3, 1e-3, 2e-3), centre=(0, 0), freq="26.0 GHz",
              head=("1", "1   3   2   1"), nxny=None, klimit=0) -> Path:
    """Write a TICRA .grd file (the layout of ``shared/data/grasp_srt/README.md``).

    ``field`` (ny, nx, 2) complex: co- and cross-polar components, u varying fastest in the
    file; ``limits`` (XS, YS, XE, YE) rad; the other arguments write the header lines as
    given (the tests use them to make malformed files).
    """
    ny, nx = field.shape[:2]
    nx_, ny_ = nxny or (nx, ny)
    lines = ["VERSION: TICRA-EM-FIELD-V0.1", "HEADER: synthetic", f"FREQUENCY:  {freq},", "++++",
             head[0], head[1], f"{centre[0]} {centre[1]}",
             " ".join(f"{v:.10E}" for v in limits), f"{nx_} {ny_} {klimit}"]
    for j in range(ny):
        for i in range(nx):
            co, cx = field[j, i]
            lines.append(f"{co.real:.10E} {co.imag:.10E} {cx.real:.10E} {cx.imag:.10E}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ compiled forward
def compile_power(fm, mode=None, with_pointing: bool = True, grad: bool = False):
    """Compile ``fm.power`` with symbolic K, illumination and pointing inputs.

    Returns ``f(K, illum, pointing=None) -> power`` (NumPy); with ``grad`` it returns
    ``(power, dS/dK, {name: dS/dname}, dS/dpointing)`` for S = Σ w_k P_k with a fixed
    seeded weight vector ``w`` (a random projection, so every sample contributes).
    One compilation serves every parameter value, which keeps the tests fast.
    """
    import pytensor
    import pytensor.tensor as pt

    from bayesoof.physics.illumination import illumination_params

    K = pt.dvector("K")
    names = illumination_params(fm.illumination)
    ill = {n: pt.dscalar(n) for n in names}
    p = pt.dmatrix("pointing") if with_pointing else None
    power = fm.power(K, ill, p)
    inputs = [K, *ill.values()] + ([p] if with_pointing else [])
    outputs = [power]
    if grad:
        w = np.random.default_rng(5).normal(size=fm.observed.size)
        s = pt.sum(w * power)
        outputs += pytensor.grad(s, inputs)
    f = pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")

    def call(Kv, illum, pointing=None):
        args = [np.asarray(Kv, float)] + [np.asarray(illum[n], float) for n in names]
        if with_pointing:
            pv = np.zeros((fm.data.n_maps, 2)) if pointing is None else pointing
            args.append(np.asarray(pv, float))
        out = [np.asarray(o) for o in f(*args)]
        if not grad:
            return out[0]
        gK = out[1]
        gill = dict(zip(names, out[2 : 2 + len(names)], strict=True))
        gp = out[2 + len(names)] if with_pointing else None
        return out[0], gK, gill, gp

    call.function = f
    return call


# ------------------------------------------------------------------ NumPy reference
def reference_illumination(kind: str, x, y, radius: float, coeffs: dict) -> np.ndarray:
    """Illumination amplitude from the PHYSICS.md formulas, plain NumPy.

    parabolic: C + (1 - C)(1 - (r'/R)²)^q with C = 10^(c_dB/20), (1 - (r'/R)²) taken
    as 0 beyond r' = R; gaussian: exp(-r'² / (2 (σ R)²)), σ = 10^(c_dB/20); r' measured
    from (x0, y0).  x, y, x0, y0, radius in m.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    r2 = (x - coeffs["x0"]) ** 2 + (y - coeffs["y0"]) ** 2
    if kind == "parabolic":
        c = 10.0 ** (coeffs["c_dB"] / 20.0)
        t = np.clip(1.0 - r2 / radius**2, 0.0, None)
        return c + (1.0 - c) * t ** coeffs["q"]
    if kind == "gaussian":
        s = 10.0 ** (coeffs["c_dB"] / 20.0) * radius
        return np.exp(-r2 / (2.0 * s * s))
    raise ValueError(f"unknown illumination {kind!r}")


def reference_coverage(fm, blockage: dict | None = None) -> np.ndarray:
    """Pixel coverage of ``fm``'s grid: ``fm.block``, or with other leg dimensions.

    ``blockage`` {'leg_half_width' m, 'shade_half_angle' deg} replaces those fields of the
    telescope's declarative Blockage; the coverage is then the NumPy anti-aliased
    sub-pixel average (:meth:`ApertureGrid.coverage`) of that telescope.
    """
    if not blockage:
        return np.asarray(fm.block, float)
    tel = fm.telescope
    blk = dataclasses.replace(tel.blockage, **{k: float(v) for k, v in blockage.items()})
    return fm.sampling.coverage(dataclasses.replace(tel, blockage=blk))


def reference_aperture_fields(
    fm, K, illum: dict, pointing=None, d_z=None, blockage=None
) -> list[np.ndarray]:
    """Complex aperture field E (n, n) of every map of ``fm``, complex128.

    ``d_z`` (n_maps,) m: effective offsets used in the telescope's OPD instead of the
    commanded ones; ``blockage``: see :func:`reference_coverage`.
    """
    X, Y = fm.sampling.coords()
    R, lam = fm.telescope.radius, fm.wavelength
    K = np.asarray(K, float)
    basis = zernike.zernike_basis(fm.order, np.hypot(X, Y) / R, np.arctan2(Y, X))
    W = basis @ K  # waves
    amp = reference_coverage(fm, blockage) * reference_illumination(
        fm.illumination, X, Y, R, illum)
    out = []
    for i, m in enumerate(fm.data.maps):
        dz = m.d_z if d_z is None else float(d_z[i])
        phase = 2 * np.pi * W + 2 * np.pi / lam * fm.telescope.opd(X, Y, dz)
        if pointing is not None:
            phase = phase + 2 * np.pi / lam * (pointing[i][0] * X + pointing[i][1] * Y)
        out.append(amp * np.exp(1j * phase))
    return out


def _dft(E: np.ndarray, X: np.ndarray, Y: np.ndarray, u, v, lam: float, chunk=256):
    """Brute-force Σ_p E_p exp(-2πi (u x_p + v y_p)/λ) at every (u_k, v_k), complex128."""
    e, x, y = E.ravel(), X.ravel(), Y.ravel()
    keep = e != 0  # blocked pixels contribute nothing
    e, x, y = e[keep], x[keep], y[keep]
    out = np.empty(len(u), complex)
    for a in range(0, len(u), chunk):
        ph = np.outer(u[a : a + chunk], x) + np.outer(v[a : a + chunk], y)
        out[a : a + chunk] = np.exp(-2j * np.pi / lam * ph) @ e
    return out


def reference_far_fields(
    fm, K, illum: dict, pointing=None, mutate=None, d_z=None, blockage=None
) -> list[np.ndarray]:
    """Normalised far field F at every sample of every map (in the maps' sample order).

    ``mutate(E) -> E'`` optionally alters each aperture field before the transform (e.g.
    ``np.conj``, ``lambda E: E[::-1]``, ``np.transpose``): the tests use it to show that
    the comparison would catch a conjugation, an axis flip or a transposition.
    """
    X, Y = fm.sampling.coords()
    scale = fm.sampling.dx**2 / (np.pi * fm.telescope.radius**2)
    fields = reference_aperture_fields(fm, K, illum, pointing, d_z, blockage)
    if mutate is not None:
        fields = [mutate(E) for E in fields]
    return [
        scale * _dft(E, X, Y, m.u, m.v, fm.wavelength)
        for E, m in zip(fields, fm.data.maps, strict=True)
    ]


def reference_peak(fm, K, illum: dict, pointing=None, n: int = 15) -> float:
    """Largest |F|² near each map's beam centre (the pointing offset), normalised.

    Evaluated on an n × n grid over ±1 beam width λ/(2R) around each map's pointing
    (the sampled maximum of a scattered map may miss the peak by far).  The scale for
    "fraction of the peak" tolerances.
    """
    X, Y = fm.sampling.coords()
    scale = fm.sampling.dx**2 / (np.pi * fm.telescope.radius**2)
    beam = fm.wavelength / (2.0 * fm.telescope.radius)
    g = np.linspace(-beam, beam, n)
    gu, gv = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    fields = reference_aperture_fields(fm, K, illum, pointing)
    best = 0.0
    for i, E in enumerate(fields):
        u0, v0 = (0.0, 0.0) if pointing is None else pointing[i]
        f = scale * _dft(E, X, Y, gu + u0, gv + v0, fm.wavelength)
        best = max(best, float(np.max(np.abs(f) ** 2)))
    return best


def reference_power(
    fm, K, illum: dict, pointing=None, mutate=None, d_z=None, blockage=None
) -> np.ndarray:
    """|F|² at every sample, concatenated in map order (as ``fm.power``)."""
    fields = reference_far_fields(fm, K, illum, pointing, mutate, d_z, blockage)
    return np.concatenate([np.abs(f) ** 2 for f in fields])


# ------------------------------------------------------------------ comparators
@dataclass(frozen=True)
class Residual:
    """Where the largest |actual - desired| is: sample index, map, (u, v) rad, values."""

    index: int
    map: int
    u: float
    v: float
    actual: float
    desired: float
    error: float
    scale: float

    @property
    def relative(self) -> float:
        """Largest error in units of ``scale`` (e.g. the peak)."""
        return self.error / self.scale

    def __str__(self) -> str:
        return (
            f"worst residual {self.error:.3e} (= {self.relative:.3e} x scale {self.scale:.4g}) "
            f"at sample {self.index} of map {self.map}, u = {self.u:.6e} rad, "
            f"v = {self.v:.6e} rad: actual {self.actual:.10g}, desired {self.desired:.10g}"
        )


def worst_residual(actual, desired, maps: BeamMaps | None = None, scale=None) -> Residual:
    """Locate the largest absolute difference of two concatenated sample vectors.

    ``maps`` (the BeamMaps the samples come from) supplies map number and (u, v);
    ``scale`` defaults to max |desired| (the peak).
    """
    actual = np.asarray(actual, float).ravel()
    desired = np.asarray(desired, float).ravel()
    if actual.shape != desired.shape:
        raise AssertionError(f"shape mismatch: actual {actual.shape}, desired {desired.shape}")
    err = np.abs(actual - desired)
    bad = ~np.isfinite(actual)
    k = int(np.flatnonzero(bad)[0]) if bad.any() else int(np.argmax(err))
    if maps is not None:
        sizes = [m.size for m in maps.maps]
        mi = int(np.searchsorted(np.cumsum(sizes), k, side="right"))
        local = k - int(np.sum(sizes[:mi]))
        u, v = maps.maps[mi].u[local], maps.maps[mi].v[local]
    else:
        mi, u, v = 0, np.nan, np.nan
    s = float(np.max(np.abs(desired))) if scale is None else float(scale)
    e = np.inf if bad.any() else float(err[k])
    return Residual(k, mi, float(u), float(v), float(actual[k]), float(desired[k]), e, s)


def assert_close_maps(
    actual, desired, maps: BeamMaps | None = None, rtol_peak: float = 1e-10, scale=None,
    what: str = "",
) -> Residual:
    """Assert |actual - desired| <= rtol_peak × scale at every sample (scale: the peak).

    The assertion message names the worst sample (index, map, u, v, values).  Returns
    the :class:`Residual` so a test can report the measured accuracy.
    """
    res = worst_residual(actual, desired, maps, scale)
    if not res.error <= rtol_peak * res.scale:
        raise AssertionError(
            f"{what + ': ' if what else ''}|actual - desired| exceeds "
            f"{rtol_peak:.1e} x scale; {res}"
        )
    return res
