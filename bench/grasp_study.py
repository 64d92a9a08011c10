"""What limits the GRASP SRT residuals: a NumPy least-squares fitter of model variants.

    python bench/grasp_study.py '{"illum": "logpoly", "poly_m": 3, "tag": "lp3"}'
    python bench/grasp_study.py --sign-evidence
    python bench/grasp_study.py --aperture [FIT.npy]
    python bench/grasp_study.py --transfer [FIT.npy]
    OMP_NUM_THREADS=1 python bench/grasp_study.py --freeform [ITERATIONS]

An independent implementation of the forward model (exact separable DFT on the files'
101 x 101 (u, v) lattice, analytic Jacobian, scipy ``least_squares``) that only borrows the
preset's NumPy aperture mask and defocus path; it fits the three maps of
``shared/data/grasp_srt`` with order-N Zernike phase, per-map amplitude and offset, the
focus offsets of the defocused maps, and whatever variant the JSON options switch on:

* ``illum``: a bayesoof illumination model, or ``logpoly`` (exp(Σ_k c_k ρ^2k), ``poly_m``
  terms: the general form of ``log_polynomial``), or ``table`` (the in-focus file's own
  aperture amplitude |E_in|, recovered as in ``--aperture``: every fine structure the
  in-focus field has, shared by the three maps); ``permap_illum``: one per map;
* ``order``; ``pz_order`` (+ ``pz_radial_only``): extra Zernike phase per defocused map (a
  free defocus-path shape); ``lateral``: per-map lateral sub-reflector offset (Ruze's path);
  ``pointing``: per-map pointing (tilts fixed);
* ``n``, ``ss``: aperture pixels across and supersampling; ``sub_r``, ``legw``,
  ``leg_angles``, ``nolegs``: blockage; ``no_residual``: the classical path only;
* ``sign``: -1 puts ``ffmap_+out`` at -11.53 mm; ``start``/``save``: parameter files (.npy).

Session-7 hypotheses (the d_z-dependent physics the defocused maps might need):

* ``illum_scale``: per defocused map, the illumination's radial coordinate scaled by
  (1 + s_i) (a d_z-dependent magnification / spill-over); ``"dz"`` ties s_i = s · d_z,i / λ;
* ``amp_zern``: N — a log-amplitude Zernike expansion exp(Σ α_j Z_j) of order N on the
  illumination (j ≥ 1; the taper keeps the radial part unless ``amp_zern_all``), shared;
  ``amp_zern_mode``: ``"shared"`` (default), ``"dz"`` (α_j · d_z,i / λ: an amplitude change
  linear in d_z, zero in focus), ``"permap"`` (own α_j for each defocused map);
  ``amp_zern_odd``: only the terms odd in u (cos of odd m: the feed-pattern asymmetry);
* ``dz_phase``: N — phase Zernike terms of order ≤ N proportional to d_z (β_j · d_z,i / λ,
  shared by the two defocused maps with opposite sign: a feed / phase-centre offset makes an
  axial sub-reflector move produce tilt and coma); ``dz_phase_odd``: only terms odd in u;
* ``dz_centre``: the illumination centre moves with d_z (x0 + γ_x d_z,i / λ, y0 likewise);

It prints one JSON line: the residual rms per map in % of its peak, the effective d_z (mm)
and the nuisance values.  ``--sign-evidence`` prints the model's minus/plus peak ratio and
the beam-centre phases for both d_z signs beside the files' (bench/RESULTS.md, "GRASP SRT").
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
from scipy.optimize import least_squares

from bayesoof.data.grasp import read_grd
from bayesoof.physics import zernike
from bayesoof.physics.aperture import ApertureGrid
from bayesoof.physics.illumination import get_illumination
from bayesoof.physics.telescope import get_telescope
from bayesoof.testing import shared_dir

D = str(shared_dir() / "data" / "grasp_srt") + "/"
FILES = ("ffmap_-out.grd", "ffmap_in.grd", "ffmap_+out.grd")
DZ = 0.01153


def logpoly(x, y, R, *c, module=np):
    """exp(sum_k c_k rho^(2k)) about centre (c[-2], c[-1])."""
    *cs, x0, y0 = c
    rr = ((x - x0) ** 2 + (y - y0) ** 2) / R**2
    s = 0.0
    for k, ck in enumerate(cs):
        s = s + ck * rr ** (k + 1)
    return np.exp(s)


class Fit:
    def __init__(self, o):
        self.o = o
        tel = get_telescope(o.get("tel", "sardinia"))
        if (o.get("sub_r") is not None or o.get("legw") is not None or o.get("nolegs")
                or o.get("leg_angles") or o.get("leg_len") is not None
                or o.get("shade") is not None):
            import dataclasses
            b = tel.blockage
            kw = {}
            if o.get("sub_r") is not None:
                kw["sub_reflector_radius"] = o["sub_r"]
            if o.get("legw") is not None:
                kw["leg_half_width"] = o["legw"]
            if o.get("leg_angles"):
                kw["leg_angles"] = tuple(o["leg_angles"])
            if o.get("shade") is not None:
                kw["shade_half_angle"] = o["shade"]
            if o.get("leg_len") is not None:
                kw["leg_length"] = o["leg_len"]
            if o.get("nolegs"):
                kw["leg_half_width"] = 0.0
            tel = dataclasses.replace(tel, blockage=dataclasses.replace(b, **kw))
        self.tel = tel
        R = tel.radius
        self.R = R
        g = [read_grd(D + f) for f in FILES]
        self.lam = 299792458.0 / g[0]["frequency"]
        ny, nx = g[0]["shape"]
        self.gu = g[0]["u"].reshape(ny, nx)[0]
        self.gv = g[0]["v"].reshape(ny, nx)[:, 0]
        self.obs = [np.abs(gi["e_co"]).reshape(ny, nx) ** 2 for gi in g]
        self.peak = [float(p.max()) for p in self.obs]
        self.sig = [1e-4 * p for p in self.peak]
        sign = o.get("sign", 1.0)
        self.dz0 = sign * np.array([-DZ, 0.0, DZ])
        n = o.get("n", 96)
        ss = o.get("ss", 8)
        grid = ApertureGrid.across(R, n, ss)
        self.x = grid.x
        X, Y = grid.coords()
        self.X, self.Y = X, Y
        self.block = grid.coverage(tel)
        if o.get("illum") == "table":  # the table carries the blockage (blurred)
            self.block = np.ones_like(self.block)
        self.dx = grid.dx
        k = 2 * np.pi / self.lam
        self.k = k
        terms = tel.opd_terms(X, Y)
        if o.get("no_residual"):
            terms = {1: terms[1]} if 1 in terms else terms
            # on-axis only
            terms = {1: tel.optics.on_axis_profile(np.hypot(X, Y))}
        self.terms = terms
        rho = np.hypot(X, Y) / R
        th = np.arctan2(Y, X)
        self.nl = zernike.nl_list(o.get("order", 5))
        self.Z = zernike.zernike_basis(o.get("order", 5), rho, th)  # (n, n, J)
        if o.get("pz_order"):
            self.nl_pz = zernike.nl_list(o["pz_order"])
            self.Zpz = zernike.zernike_basis(o["pz_order"], rho, th)
        self.lam_m = self.lam
        self.rho, self.th = rho, th
        if o.get("amp_zern"):
            self.nl_az = zernike.nl_list(o["amp_zern"])
            self.Zaz = zernike.zernike_basis(o["amp_zern"], rho, th)
        if o.get("dz_phase"):
            self.nl_dzp = zernike.nl_list(o["dz_phase"])
            self.Zdzp = zernike.zernike_basis(o["dz_phase"], rho, th)
        self.Wu = np.exp(-2j * np.pi * np.outer(self.gu, self.x) / self.lam) * self.dx
        self.Wv = np.exp(-2j * np.pi * np.outer(self.gv, self.x) / self.lam) * self.dx
        # lateral-offset path shape (Ruze): per unit lateral sub-reflector offset along x
        r = np.hypot(X, Y)
        a = r / (2 * tel.optics.focal_length)
        b = r / (2 * tel.optics.effective_focal_length)
        with np.errstate(invalid="ignore", divide="ignore"):
            cth = np.where(r > 0, X / np.maximum(r, 1e-12), 0.0)
        self.lat_shape = (2 * a / (1 + a**2) - 2 * b / (1 + b**2)) * cth
        self.build_params()

    # ---------------------------------------------------------------- parameters
    def build_params(self):
        o = self.o
        names, x0, lo, hi = [], [], [], []

        def add(nm, v, low, high):
            names.append(nm)
            x0.append(v)
            lo.append(low)
            hi.append(high)

        fix_tilt = o.get("pointing", False)
        self.kidx = []
        for j, nl in enumerate(self.nl):
            if j == 0 or (fix_tilt and nl[0] == 1):
                continue
            self.kidx.append(j)
            add(f"K{nl}", 0.0, -5, 5)
        ill = o.get("illum", "gaussian")
        self.ill = ill
        nmill = 3 if o.get("permap_illum") else 1
        self.nmill = nmill
        if ill == "table":  # the files' own in-focus illumination |E_in| (``--aperture``)
            ipar = []
            self.ifunc = self.table_illumination
        elif ill == "logpoly":
            m = o.get("poly_m", 3)
            ipar = [(f"c{k+1}", -1.0 if k == 0 else 0.0, -30, 30) for k in range(m)]
            ipar += [("x0", 0.0, -3, 3), ("y0", 0.0, -3, 3)]
            self.ifunc = logpoly
        else:
            model = get_illumination(ill)
            self.ifunc = model.function
            ipar = []
            for c in model.coefficients:
                st = c.start * c.factor(self.R)
                b = tuple(v * c.factor(self.R) for v in c.bounds)
                if c.name == "c_dB":
                    st = o.get("c_start", -8.0 if ill == "gaussian" else -14.0)
                    b = (-40.0, o.get("c_up", 0.0))
                if c.name == "q":
                    b = (0.0, 6.0)
                    st = 1.0
                ipar.append((c.name, st, *b))
        if o.get("fix_centre"):
            ipar = [p for p in ipar if p[0] not in ("x0", "y0")]
        self.iparnames = [p[0] for p in ipar]
        for mi in range(nmill):
            for nm, v, l, h in ipar:
                add(f"{nm}_{mi}", v, l, h)
        for i in range(3):
            if i == 1 and not o.get("focus_in"):
                continue
            add(f"dz{i}", self.dz0[i], self.dz0[i] - 0.01, self.dz0[i] + 0.01)
        self.pz = []
        if o.get("pz_order"):
            maps = o.get("pz_maps", [0, 2])
            for i in maps:
                for j, nl in enumerate(self.nl_pz):
                    if j == 0:
                        continue
                    if o.get("pz_radial_only") and nl[1] != 0:
                        continue
                    if o.get("pz_even_u") and ((nl[1] < 0) or (nl[1] % 2 == 1)):
                        continue
                    self.pz.append((i, j))
                    add(f"Z{i}_{nl}", 0.0, -5, 5)
        if o.get("pointing"):
            for i in range(3):
                add(f"pu{i}", 0.0, -1e-4, 1e-4)
                add(f"pv{i}", 0.0, -1e-4, 1e-4)
        if o.get("lateral"):
            for i in range(3):
                if i == 1 and o.get("lateral") == "defocused":
                    continue
                add(f"lat{i}", 0.0, -0.05, 0.05)
        lam_dz = self.dz0 / self.lam_m  # d_z,i in wavelengths (-1, 0, +1)
        self.dzw = lam_dz
        if o.get("illum_scale") == "dz":
            add("iscale", 0.0, -0.3, 0.3)
        elif o.get("illum_scale"):
            add("iscale0", 0.0, -0.3, 0.3)
            add("iscale2", 0.0, -0.3, 0.3)
        self.az = []  # (parameter name, map index or None (all), j, multiplier per map)
        if o.get("amp_zern"):
            mode = o.get("amp_zern_mode", "shared")
            for j, (n, m) in enumerate(self.nl_az):
                if j == 0 or (m == 0 and not o.get("amp_zern_all")):
                    continue
                if o.get("amp_zern_odd") and not (m > 0 and m % 2 == 1):
                    continue
                if mode == "permap":
                    for i in (0, 2):
                        add(f"A{i}_{(n, m)}", 0.0, -5, 5)
                        self.az.append((f"A{i}_{(n, m)}", j, np.eye(3)[i]))
                else:
                    mult = np.ones(3) if mode == "shared" else lam_dz
                    add(f"A_{(n, m)}", 0.0, -5, 5)
                    self.az.append((f"A_{(n, m)}", j, mult))
        self.dzph = []
        if o.get("dz_phase"):
            for j, (n, m) in enumerate(self.nl_dzp):
                if j == 0:
                    continue
                if o.get("dz_phase_odd") and not (m > 0 and m % 2 == 1):
                    continue
                add(f"B_{(n, m)}", 0.0, -5, 5)
                self.dzph.append((f"B_{(n, m)}", j))
        if o.get("dz_centre"):
            add("gx", 0.0, -3, 3)
            add("gy", 0.0, -3, 3)
        for i in range(3):
            add(f"amp{i}", 1.0, 0, np.inf)
            add(f"off{i}", 0.0, -np.inf, np.inf)
        self.names = names
        self.ix = {n: i for i, n in enumerate(names)}
        self.p0 = np.array(x0, float)
        self.lo = np.array(lo, float)
        self.hi = np.array(hi, float)

    def table_illumination(self, X, Y, R, *c, module=np):
        """|E| of the in-focus file's aperture field (band-limited, blockage included)."""
        from scipy.interpolate import RegularGridInterpolator

        if not hasattr(self, "_table"):
            g = [read_grd(D + f) for f in FILES]
            ny, nx = g[1]["shape"]
            x, E = aperture_fields([np.conj(g[1]["e_co"].reshape(ny, nx))], self.gu, self.gv,
                                   self.lam, pixel=0.5)
            self._table = RegularGridInterpolator((x, x), np.abs(E[0]) / np.abs(E[0]).max(),
                                                  bounds_error=False, fill_value=0.0)
        pts = np.stack([X.ravel(), Y.ravel()], axis=-1)
        return self._table(pts).reshape(X.shape) * (np.hypot(X, Y) <= R)

    def val(self, p, name, default=0.0):
        i = self.ix.get(name)
        return default if i is None else p[i]

    # ---------------------------------------------------------------- model
    def amplitude(self, p, mi, i=None):
        """Aperture amplitude of map ``i`` (illumination set ``mi``)."""
        o = self.o
        c = [self.val(p, f"{nm}_{mi}") for nm in self.iparnames]
        if o.get("fix_centre"):
            c = c + [0.0, 0.0]
        X, Y = self.X, self.Y
        if i is not None and i != 1:
            if o.get("illum_scale") == "dz":
                sc = 1.0 + self.val(p, "iscale") * self.dzw[i]
            else:
                sc = 1.0 + self.val(p, f"iscale{i}")
            X, Y = X * sc, Y * sc
            if o.get("dz_centre") and not o.get("fix_centre"):
                c[-2] = c[-2] + self.val(p, "gx") * self.dzw[i]
                c[-1] = c[-1] + self.val(p, "gy") * self.dzw[i]
        A = self.block * self.ifunc(X, Y, self.R, *c, module=np)
        if self.az and i is not None:
            la = 0.0
            for nm, j, mult in self.az:
                if mult[i] != 0.0:
                    la = la + p[self.ix[nm]] * mult[i] * self.Zaz[..., j]
            A = A * np.exp(la)
        return A

    def phase(self, p, i):
        W = self.Z[..., self.kidx] @ p[[self.ix[f"K{self.nl[j]}"] for j in self.kidx]]
        dz = self.val(p, f"dz{i}", self.dz0[i])
        delta = sum(dz**q * g for q, g in self.terms.items())
        ph = 2 * np.pi * W + self.k * delta
        ph = ph + self.k * (self.val(p, f"pu{i}") * self.X + self.val(p, f"pv{i}") * self.Y)
        ph = ph + self.k * self.val(p, f"lat{i}") * self.lat_shape
        for (mi, j) in self.pz:
            if mi == i:
                ph = ph + 2 * np.pi * p[self.ix[f"Z{i}_{self.nl_pz[j]}"]] * self.Zpz[..., j]
        for nm, j in self.dzph:
            ph = ph + 2 * np.pi * p[self.ix[nm]] * self.dzw[i] * self.Zdzp[..., j]
        return ph

    def ft(self, E):
        # E[ix, iy] -> F[iv, iu]; E may be (..., n, n)
        return self.Wv @ np.swapaxes(E, -1, -2) @ self.Wu.T

    def maps(self, p):
        out = []
        for i in range(3):
            mi = i if self.nmill == 3 else 0
            A = self.amplitude(p, mi, i)
            E = A * np.exp(1j * self.phase(p, i))
            F = self.ft(E)
            out.append((E, F, np.abs(F) ** 2, A))
        return out

    def resid(self, p):
        r = []
        for i, (_, _, P, _) in enumerate(self.maps(p)):
            M = p[self.ix[f"amp{i}"]] * P + p[self.ix[f"off{i}"]]
            r.append(((M - self.obs[i]) / self.sig[i]).ravel())
        return np.concatenate(r)

    def jac(self, p):
        npar = len(p)
        nm = self.obs[0].size
        J = np.zeros((3 * nm, npar))
        mp = self.maps(p)
        for i, (E, F, P, _) in enumerate(mp):
            mi = i if self.nmill == 3 else 0
            a = p[self.ix[f"amp{i}"]]
            sl = slice(i * nm, (i + 1) * nm)
            cols, dE = [], []
            # phase params: dE = i E dphi
            for j in self.kidx:
                cols.append(self.ix[f"K{self.nl[j]}"])
                dE.append(1j * E * 2 * np.pi * self.Z[..., j])
            nm_dz = f"dz{i}"
            if nm_dz in self.ix:
                dz = p[self.ix[nm_dz]]
                dd = sum(q * dz ** (q - 1) * g for q, g in self.terms.items())
                cols.append(self.ix[nm_dz])
                dE.append(1j * E * self.k * dd)
            for nmp, sh in ((f"pu{i}", self.X), (f"pv{i}", self.Y), (f"lat{i}", self.lat_shape)):
                if nmp in self.ix:
                    cols.append(self.ix[nmp])
                    dE.append(1j * E * self.k * sh)
            for (mi2, j) in self.pz:
                if mi2 == i:
                    cols.append(self.ix[f"Z{i}_{self.nl_pz[j]}"])
                    dE.append(1j * E * 2 * np.pi * self.Zpz[..., j])
            for nmp, j in self.dzph:
                if self.dzw[i] != 0.0:
                    cols.append(self.ix[nmp])
                    dE.append(1j * E * 2 * np.pi * self.dzw[i] * self.Zdzp[..., j])
            # illumination params: numeric derivative of amplitude
            ph = np.exp(1j * self.phase(p, i))
            akeys = [f"{nmi}_{mi}" for nmi in self.iparnames]
            akeys += [n for n in ("iscale", f"iscale{i}", "gx", "gy") if n in self.ix]
            akeys += [nm for nm, _, mult in self.az if mult[i] != 0.0]
            for key in akeys:
                h = 1e-5 * max(1.0, abs(p[self.ix[key]]))
                pp, pm = p.copy(), p.copy()
                pp[self.ix[key]] += h
                pm[self.ix[key]] -= h
                dA = (self.amplitude(pp, mi, i) - self.amplitude(pm, mi, i)) / (2 * h)
                cols.append(self.ix[key])
                dE.append(dA * ph)
            dE = np.array(dE)
            dF = self.ft(dE)
            dP = 2 * np.real(np.conj(F)[None] * dF)
            for c, d in zip(cols, dP, strict=True):
                J[sl, c] = a * d.ravel() / self.sig[i]
            J[sl, self.ix[f"amp{i}"]] = P.ravel() / self.sig[i]
            J[sl, self.ix[f"off{i}"]] = 1.0 / self.sig[i]
        return J

    def start_linear(self, p):
        for i, (_, _, P, _) in enumerate(self.maps(p)):
            A = np.vstack([P.ravel(), np.ones(P.size)]).T
            (a, b), *_ = np.linalg.lstsq(A, self.obs[i].ravel(), rcond=None)
            p[self.ix[f"amp{i}"]], p[self.ix[f"off{i}"]] = a, b
        return p

    def run(self, p0=None, nfev=100, verbose=0):
        p = self.p0.copy() if p0 is None else p0.copy()
        p = np.clip(p, self.lo, self.hi)
        p = self.start_linear(p)
        t0 = time.process_time()
        res = least_squares(self.resid, p, jac=self.jac, bounds=(self.lo, self.hi),
                            x_scale="jac", method="trf", max_nfev=nfev, ftol=1e-10,
                            xtol=1e-10, gtol=1e-10, verbose=verbose)
        self.cpu = time.process_time() - t0
        self.res = res
        return res.x

    def report(self, p, tag=""):
        r = self.resid(p)
        nm = self.obs[0].size
        rms = [100 * np.sqrt(np.mean((r[i * nm:(i + 1) * nm] * self.sig[i]) ** 2)) / self.peak[i]
               for i in range(3)]
        extra = {n: round(float(p[self.ix[n]]), 5) for n in self.names
                 if not n.startswith(("K", "amp", "off", "Z"))}

        for k in list(extra):
            if k.startswith("dz") or k.startswith("lat"):
                extra[k] = round(float(p[self.ix[k]]) * 1e3, 3)  # mm
            if k.startswith("p"):
                extra[k] = round(float(p[self.ix[k]]) * 1e6, 3)  # urad
        if self.pz:
            extra["pz_rms_waves"] = [
                round(float(np.sqrt(np.sum([p[self.ix[f"Z{i}_{self.nl_pz[j]}"]] ** 2
                                            for (mi, j) in self.pz if mi == i]))), 4)
                for i in (0, 2)]
        out = {"tag": tag, "rms": [round(v, 4) for v in rms],
               "cpu": round(getattr(self, "cpu", 0), 1),
               "nfev": int(self.res.nfev) if hasattr(self, "res") else 0,
               "extra": extra}
        print(json.dumps(out), flush=True)
        return out


def sign_evidence() -> None:
    """Minus/plus peak ratio and beam-centre phases (model, both signs) beside the files'."""
    g = [read_grd(D + f) for f in FILES]
    c = g[0]["e_co"].size // 2  # the (u, v) = (0, 0) sample of the 101 x 101 grid
    ph = [np.angle(x["e_co"][c]) for x in g]

    def rel(a, b):
        return float(np.angle(np.exp(1j * (a - b))))

    peaks = [np.max(np.abs(x["e_co"]) ** 2) for x in g]
    print(f"files: peak minus/plus {peaks[0] / peaks[2]:.3f}; centre phase minus - in "
          f"{rel(ph[0], ph[1]):+.3f} rad, plus - in {rel(ph[2], ph[1]):+.3f} rad")
    for sign in (1.0, -1.0):
        for resid in (True, False):
            f = Fit({"n": 96, "ss": 4, "order": 1, "sign": sign, "no_residual": not resid})
            p = f.p0.copy()
            p[f.ix["c_dB_0"]] = -5.3  # the Gaussian fit's width (pyoof's sigma_dB)
            mp = f.maps(p)
            a = [np.angle(m[1][m[1].shape[0] // 2, m[1].shape[1] // 2]) for m in mp]
            pk = [m[2].max() for m in mp]
            print(f"model, +out at {sign * DZ * 1e3:+.2f} mm, residual path {resid}: peak "
                  f"minus/plus {pk[0] / pk[2]:.3f}; centre phase minus - in "
                  f"{rel(a[0], a[1]):+.3f}, plus - in {rel(a[2], a[1]):+.3f} rad "
                  "(bayesoof's kernel exp(-2 pi i u x / lambda))")


def aperture_fields(fields, u, v, lam, pixel=1.0, half=33.0, reg=1e-2):
    """Aperture fields whose far fields are ``fields`` (F[iv, iu], bayesoof's kernel).

    A separable Tikhonov-regularised inverse of the DFT (square pixels of ``pixel`` m over
    |x|, |y| <= ``half`` m; singular values below ``reg`` x the largest are damped): the
    grid spans +-7.8 lambda/D, so the aperture is resolved to about lambda / (2 u_max) = 4 m,
    a little finer where the data are noise-free.  Returns the aperture coordinate (m) and
    E[i, ix, iy].
    """
    x = np.arange(-half, half + 1e-9, pixel)

    def pinv(w):
        k = np.exp(-2j * np.pi * np.outer(w, x) / lam) * pixel * np.sinc(w * pixel / lam)[:, None]
        uu, sv, vh = np.linalg.svd(k, full_matrices=False)
        return vh.conj().T @ np.diag(sv / (sv**2 + (reg * sv[0]) ** 2)) @ uu.conj().T

    pu, pv = pinv(u), pinv(v)
    return x, np.array([pu @ f.T @ pv.T for f in fields])


def aperture_evidence(fit_file: str | None) -> None:
    """Radial profile and odd-in-x part of the files' aperture fields (and the model's)."""
    g = [read_grd(D + f) for f in FILES]
    lam = 299792458.0 / g[0]["frequency"]
    ny, nx = g[0]["shape"]
    u = g[0]["u"].reshape(ny, nx)[0]
    v = g[0]["v"].reshape(ny, nx)[:, 0]
    # GRASP writes e^{+jwt} fields (assumed, bayesoof/data/grasp.py): conjugate to our kernel
    sets = {"files": [np.conj(x["e_co"].reshape(ny, nx)) for x in g]}
    if fit_file:
        sets["model at the fit"] = _model_fields(fit_file)
    radii = np.arange(4, 32, 2)
    for name, fields in sets.items():
        x, E = aperture_fields(fields, u, v, lam)
        X, Y = np.meshgrid(x, x, indexing="ij")
        r = np.hypot(X, Y)
        off_legs = np.abs(np.abs(X) - np.abs(Y)) > 4  # away from the 45-degree leg shadows
        ref = np.abs(E[1]).max()
        j0 = int(np.argmin(np.abs(x)))
        sel = np.where((x >= 4) & (x <= 30))[0][::2]
        print(f"{name}: |E| / in-focus peak, ring means (off the legs) at r = "
              + " ".join(f"{b:.0f}-{b + 2:.0f}" for b in radii) + " m")
        for i in range(3):
            a = np.abs(E[i]) / ref
            print(f"  {FILES[i]:15s} " + " ".join(
                f"{a[(r >= b) & (r < b + 2) & off_legs].mean():.3f}" for b in radii))
        print(f"{name}: odd part |E(+x, 0)| - |E(-x, 0)| at x = 4, 8, ..., 28 m")
        for i in range(3):
            a = np.abs(E[i]) / ref
            print(f"  {FILES[i]:15s} " + " ".join(
                f"{a[k, j0] - a[len(x) - 1 - k, j0]:+.3f}" for k in sel))


def _files_fields():
    g = [read_grd(D + f) for f in FILES]
    ny, nx = g[0]["shape"]
    u = g[0]["u"].reshape(ny, nx)[0]
    v = g[0]["v"].reshape(ny, nx)[:, 0]
    # GRASP writes e^{+jwt} fields (assumed, bayesoof/data/grasp.py): conjugate to our kernel
    return [np.conj(x["e_co"].reshape(ny, nx)) for x in g], u, v, 299792458.0 / g[0]["frequency"]


def transfer_test(fields, u, v, lam, zern_order=4, pixel=0.5, cases=None):
    """How well the in-focus aperture field, defocused, predicts the defocused maps.

    Recovers every map's aperture field (``aperture_fields``), then fits each defocused
    map's power (gain, offset, d_z and, per case, Zernike coefficients; rms in % of the
    map's peak) with: its own field (the inversion's floor); the in-focus field times the
    preset's defocus phase (the OOF assumption: a d_z-independent aperture field); the
    in-focus amplitude with the map's own phase (cost of the amplitude change); the map's
    own amplitude with the in-focus phase plus the path (cost of the phase change); the
    in-focus field times exp(log-amplitude + i phase Zernike of order ``zern_order``) plus
    the path (a smooth d_z-dependent change on top of the exact in-focus field).  ``cases``:
    the names to run (default all).  Returns {(file, case): (rms %, fitted d_z in mm)}.
    """
    tel = get_telescope("sardinia")
    k = 2 * np.pi / lam
    x, E = aperture_fields(fields, u, v, lam, pixel=pixel)
    X, Y = np.meshgrid(x, x, indexing="ij")
    terms = tel.opd_terms(X, Y)
    rho = np.minimum(np.hypot(X, Y) / tel.radius, 1.0)
    Z = zernike.zernike_basis(zern_order, rho, np.arctan2(Y, X))[..., 1:]
    nz = Z.shape[-1]
    ku = np.exp(-2j * np.pi * np.outer(u, x) / lam) * pixel * np.sinc(u * pixel / lam)[:, None]
    kv = np.exp(-2j * np.pi * np.outer(v, x) / lam) * pixel * np.sinc(v * pixel / lam)[:, None]
    obs = [np.abs(f) ** 2 for f in fields]
    amp_in, ph_in = np.abs(E[1]), np.angle(E[1])

    def path(dz):
        return k * sum(dz**q * g for q, g in terms.items())

    out = {}
    for i in (0, 2):
        amp, ph = np.abs(E[i]), np.angle(E[i])
        cases_i = {
            "own field": (0, lambda c, e=E[i]: e),
            "in-focus field + path": (0, lambda c: E[1] * np.exp(1j * path(c[0]))),
            "in-focus amplitude, own phase": (0, lambda c, ph=ph: amp_in * np.exp(1j * ph)),
            "own amplitude, in-focus phase + path":
                (0, lambda c, amp=amp: amp * np.exp(1j * (ph_in + path(c[0])))),
            f"in-focus field x exp(Zernike <= {zern_order} amplitude + phase) + path":
                (2 * nz, lambda c: E[1] * np.exp(Z @ c[3:3 + nz] + 1j * (
                    path(c[0]) + 2 * np.pi * (Z @ c[3 + nz:])))),
        }
        for name, (nextra, field) in cases_i.items():
            if cases is not None and name not in cases:
                continue

            def resid(c, field=field, i=i):
                power = np.abs(kv @ field(c).T @ ku.T) ** 2
                return ((c[1] * power + c[2] - obs[i]) / obs[i].max()).ravel()

            c0 = np.r_[DZ * np.sign(i - 1), 1.0, 0.0, np.zeros(nextra)]
            sol = least_squares(resid, c0, x_scale=np.r_[1e-3, 1.0, 1e-3, 1e-2 * np.ones(nextra)],
                                max_nfev=60 * (3 + nextra))
            out[(FILES[i], name)] = (100 * float(np.sqrt(np.mean(sol.fun**2))), sol.x[0] * 1e3)
    return out


def _model_fields(fit_file: str) -> list:
    """The model's far fields at a fit saved by ``--save`` (3-term log-polynomial taper)."""
    f = Fit({"illum": "logpoly", "poly_m": 3})
    prev = np.load(fit_file, allow_pickle=True).item()
    p = f.p0.copy()
    for n, val in prev.items():
        if n in f.ix:
            p[f.ix[n]] = val
    return [m[1] for m in f.maps(p)]


def transfer_evidence(fit_file: str | None) -> None:
    """Print ``transfer_test`` for the files and (control) the model's fields at a fit."""
    fields, u, v, lam = _files_fields()
    sets = {"files": fields}
    if fit_file:
        sets["model at the fit (control)"] = _model_fields(fit_file)
    for name, fl in sets.items():
        for (fname, case), (rms, dz) in transfer_test(fl, u, v, lam).items():
            print(f"{name}: {fname} {case}: rms {rms:.4f} % of peak (d_z {dz:+.3f} mm)",
                  flush=True)


def freeform_floor(iterations=3000, pixel=1.0, dz=(-0.011157, 0.0, 0.011931), start=None):
    """Residual rms (% of peaks) of one free-form aperture field fitted to all three maps.

    The field is free on ``pixel``-m pixels within r <= R + 1 m (real and imaginary parts),
    the defocus phase of each map is the preset's path at ``dz`` (m; default: the d_z the
    in-focus field transfers best with, ``--transfer``), gain 1 and offset 0 (GRASP fields
    share one absolute scale); L-BFGS with the analytic gradient, started from the in-focus
    file's recovered field, or from the recovered field of the far field ``start`` (F[iv,
    iu]).  A non-convex fit: the result is the best field found, an upper estimate of the
    floor.  Returns the rms after 0 and ``iterations`` iterations.
    """
    from scipy.optimize import minimize

    fields, u, v, lam = _files_fields()
    tel = get_telescope("sardinia")
    k = 2 * np.pi / lam
    x, E = aperture_fields(fields, u, v, lam, pixel=pixel)
    X, Y = np.meshgrid(x, x, indexing="ij")
    sup = np.hypot(X, Y) <= tel.radius + 1.0
    terms = tel.opd_terms(X, Y)
    P = [np.exp(1j * k * sum(d**q * g for q, g in terms.items())) for d in dz]
    ku = np.exp(-2j * np.pi * np.outer(u, x) / lam) * pixel * np.sinc(u * pixel / lam)[:, None]
    kv = np.exp(-2j * np.pi * np.outer(v, x) / lam) * pixel * np.sinc(v * pixel / lam)[:, None]
    obs = [np.abs(f) ** 2 for f in fields]
    pk = [o.max() for o in obs]
    n = int(sup.sum())

    def field(z):
        e = np.zeros(X.shape, complex)
        e[sup] = z[:n] + 1j * z[n:]
        return e

    def loss_grad(z):
        e = field(z)
        loss, grad = 0.0, np.zeros(X.shape, complex)
        for i in range(3):
            F = kv @ (e * P[i]).T @ ku.T
            r = (np.abs(F) ** 2 - obs[i]) / pk[i]
            loss += np.sum(r**2)
            grad += np.conj(P[i]) * (kv.conj().T @ (2 * r * F / pk[i]) @ ku.conj()).T
        g = 2 * grad[sup]
        return loss, np.r_[g.real, g.imag]

    def rms(z):
        e = field(z)
        return [100 * float(np.sqrt(np.mean((np.abs(kv @ (e * P[i]).T @ ku.T) ** 2 - obs[i])
                                            ** 2))) / pk[i] for i in range(3)]

    if start is not None:
        E = aperture_fields([start, start], u, v, lam, pixel=pixel)[1]
    z = np.r_[E[1][sup].real, E[1][sup].imag]
    start = rms(z)
    sol = minimize(loss_grad, z, jac=True, method="L-BFGS-B",
                   options={"maxiter": iterations, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-12})
    return 2 * n, start, rms(sol.x)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--freeform"]:
        t0 = time.process_time()
        npar, start, end = freeform_floor(int(sys.argv[2]) if len(sys.argv) > 2 else 3000)
        print(f"free-form d_z-independent aperture ({npar} real parameters): rms % of the peaks "
              f"(minus / in focus / plus) {' / '.join(f'{r:.4f}' for r in start)} at the "
              f"in-focus field, {' / '.join(f'{r:.4f}' for r in end)} fitted; "
              f"{time.process_time() - t0:.0f} s CPU")
        sys.exit(0)
    if sys.argv[1:2] == ["--transfer"]:
        transfer_evidence(sys.argv[2] if len(sys.argv) > 2 else None)
        sys.exit(0)
    if sys.argv[1:2] == ["--aperture"]:
        aperture_evidence(sys.argv[2] if len(sys.argv) > 2 else None)
        sys.exit(0)
    if sys.argv[1:] == ["--sign-evidence"]:
        sign_evidence()
        sys.exit(0)
    o = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    f = Fit(o)
    p0 = None
    if o.get("start"):
        prev = np.load(o["start"], allow_pickle=True).item()
        p0 = f.p0.copy()
        for n, v in prev.items():
            if n in f.ix:
                p0[f.ix[n]] = v
    p = f.run(p0, nfev=o.get("nfev", 100), verbose=o.get("verbose", 0))
    f.report(p, o.get("tag", ""))
    if o.get("save"):
        np.save(o["save"], dict(zip(f.names, p, strict=True)))
