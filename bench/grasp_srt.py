"""GRASP acceptance: fit the SRT far fields of ``shared/data/grasp_srt`` (TICRA GRASP physical
optics, an independent forward model) with the classical path plus the SRT residual path.

    python bench/grasp_srt.py [--order 5] [--sign both|+|-] [--illumination NAME]
                              [--sigma-fraction 1e-4] [--legs default|free|fixed]
                              [--pointing default|free|fixed] [--save FILE.json]

For each d_z sign convention (the files' +out map at +11.53 mm, or at -11.53 mm) it runs the
quick fit with the ``sardinia`` preset (residual path, its declared log-polynomial taper
unless ``--illumination``/``--taper-upper`` say otherwise) and the fit configuration's
defaults (per-map effective d_z free: focus offsets of the defocused maps, the in-focus
offset fixed as its common part is K(2,0); pointing tied to the tilts; legs free; drift),
without the misfit remedy (``--remedy``), and prints per map: the residual rms in % of the
map's peak, the effective d_z, the taper and the adequacy verdict.  The fields are
noise-free: σ = ``--sigma-fraction`` × each map's peak (1e-4 by
default: far below any residual, it only sets the weights; the residual figures do not
depend on it).  The sign of d_z cannot be read from these residuals (bayesoof/data/grasp.py).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bayesoof.testing import shared_dir

GRASP = shared_dir() / "data" / "grasp_srt"
FILES = ("ffmap_-out.grd", "ffmap_in.grd", "ffmap_+out.grd")
DZ = 0.01153  # m, +-1 lambda at 26 GHz (pyoof-srt's synthetic_run_config.yaml)


def run(sign: float, args) -> dict:
    import bayesoof

    data = bayesoof.read_grasp([GRASP / f for f in FILES], sign * np.array([-DZ, 0.0, DZ]),
                               sigma_fraction=args.sigma_fraction)
    cfg = {
        "fit": {"max_nfev": args.max_nfev},
        "focus": {"free": True},  # effective d_z of the defocused maps free (the default)
        "misfit": {"remedy": args.remedy},
    }
    if args.legs != "default":  # else the configuration's default (free since session 5)
        cfg["legs"] = {"free": args.legs == "free"}
    if args.pointing != "default":  # else the default: free, tied to the tilts
        cfg["pointing"] = {"free": args.pointing == "free"}
    if args.illumination is not None:  # else the preset's declared model and taper range
        cfg["fit"]["illumination"] = args.illumination
    if args.taper_upper is not None:
        cfg["illumination"] = {"c_dB": {"lower": -25.0, "upper": args.taper_upper,
                                        "value": min(-14.0, args.taper_upper)}}
    if args.pointing == "free":  # every map's pointing, the tilts fixed
        cfg["zernike"] = {"fixed": {"K(0,0)": 0.0, "K(1,-1)": 0.0, "K(1,1)": 0.0}}
    t0 = time.perf_counter()
    res = bayesoof.fit(data, "sardinia", order=args.order, config=cfg)
    wall = time.perf_counter() - t0
    resid = res.split_maps(res.forward.observed - res.model_beam)
    sp = res.space
    dz_eff = data.d_z + sp.values[sp.slice_of("focus_offset")]
    taper = {n: float(sp.values[sp.slice_of(n)][0]) for n in sp.illum_names}
    out = {"sign": sign, "wall": wall, "taper": taper, "illumination": sp.illumination,
           "rms": [], "dz_eff": dz_eff, "result": res}
    for m, r in zip(data.maps, resid, strict=True):
        out["rms"].append(100 * float(np.sqrt(np.mean(r**2))) / float(m.beam.max()))
    if args.save:
        rec = {"sign": sign, "order": args.order, "illumination": sp.illumination,
               "rms_percent": out["rms"], "d_z_eff": [float(v) for v in dz_eff],
               "values": {b.name: np.atleast_1d(sp.values[sp.slice_of(b.name)]).tolist()
                          for b in sp.blocks}}
        path = args.save.replace(".json", f"_{'plus' if sign > 0 else 'minus'}.json")
        with open(path, "w") as fh:
            json.dump(rec, fh, indent=1)
        print(f"  parameters written to {path}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--sign", choices=("both", "+", "-"), default="both")
    p.add_argument("--illumination", default=None,
                   help="illumination model (default: the sardinia preset's declared one)")
    p.add_argument("--taper-upper", type=float, default=None,
                   help="upper bound of c_dB, dB (default: the preset's taper bounds)")
    p.add_argument("--sigma-fraction", type=float, default=1e-4)
    p.add_argument("--max-nfev", type=int, default=200)
    p.add_argument("--save", default=None,
                   help="write the fitted parameters to this .json (suffix _plus/_minus per sign)")
    p.add_argument("--legs", choices=("default", "free", "fixed"), default="default",
                   help="leg half-width (default: the fit configuration's default)")
    p.add_argument("--pointing", choices=("default", "free", "fixed"), default="default",
                   help="per-map pointing: the configuration's default (tied to the tilts), "
                        "free for every map with the tilts fixed, or fixed")
    p.add_argument("--remedy", default="never",
                   help="misfit remedy (default never: the least-squares fit's residual)")
    args = p.parse_args()
    if not GRASP.is_dir():
        raise SystemExit(f"{GRASP}: the shared GRASP files are absent")
    signs = {"both": (1.0, -1.0), "+": (1.0,), "-": (-1.0,)}[args.sign]
    ill = args.illumination or "the preset's"
    up = "the preset's bounds" if args.taper_upper is None else f"c_dB <= {args.taper_upper} dB"
    print(f"GRASP SRT fit: order {args.order}, {ill} taper ({up}), "
          f"sigma = {args.sigma_fraction:g} x peak, legs {args.legs}, pointing "
          f"{args.pointing}, misfit remedy {args.remedy}")
    for s in signs:
        o = run(s, args)
        label = "+out at +11.53 mm" if s > 0 else "+out at -11.53 mm"
        taper = ", ".join(f"{n} = {v:.3f}" for n, v in o["taper"].items())
        print(f"sign {label}: {o['illumination']} taper {taper} (c_dB dB, x0/y0 m); "
              f"fit {o['wall']:.0f} s, status {o['result'].status}")
        print(f"  {o['result'].adequacy.line()}")
        for name, rms, dz in zip(FILES, o["rms"], o["dz_eff"], strict=True):
            print(f"  {name:16s} residual rms {rms:6.3f} % of peak   effective d_z "
                  f"{dz * 1e3:+8.3f} mm")


if __name__ == "__main__":
    main()
