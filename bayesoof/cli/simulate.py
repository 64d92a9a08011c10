"""``bayesoof simulate OUT``: beam maps from a telescope preset and Zernike coefficients."""

from __future__ import annotations

import time
from pathlib import Path

from bayesoof.cli.common import CLIError, positive_int, say

NAME = "simulate"


def wavelength_m(args) -> float:
    """Observing wavelength in m from ``--frequency`` (GHz) or ``--wavelength`` (mm)."""
    from bayesoof.data.containers import SPEED_OF_LIGHT

    if args.frequency is not None:
        if args.frequency <= 0:
            raise CLIError(f"--frequency must be > 0 GHz, got {args.frequency}")
        return SPEED_OF_LIGHT / (args.frequency * 1e9)
    if args.wavelength <= 0:
        raise CLIError(f"--wavelength must be > 0 mm, got {args.wavelength}")
    return args.wavelength * 1e-3




def run(args) -> int:
    """Simulate beam maps and write them as FITS."""
    import numpy as np

    from bayesoof.data.fitsio import write_beam_maps
    from bayesoof.physics import zernike
    from bayesoof.physics.telescope import get_telescope
    from bayesoof.simulate import DEFAULT_ILLUMINATION, random_coefficients, simulate

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out}: file exists; pass --overwrite to replace it")
    tel = get_telescope(args.telescope)
    if args.coefficients is not None:
        K = np.asarray(args.coefficients, float)
        try:
            order = zernike.j_to_nl(K.size - 1)[0]
        except ValueError as err:
            raise CLIError(f"--coefficients: {err}") from None
        if zernike.n_coeffs(order) != K.size:
            raise CLIError(
                f"--coefficients: {K.size} values is not a complete Zernike order; expected "
                "(N+1)(N+2)/2 values in OSA order (3, 6, 10, 15, 21, ...)"
            )
        if args.order is not None and args.order != order:
            raise CLIError(f"--order {args.order} disagrees with {K.size} coefficients "
                           f"(order {order})")
        source = "given"
    else:
        order = 4 if args.order is None else args.order
        K = random_coefficients(order, scale=args.scale, seed=args.seed)
        source = f"random_coefficients(order={order}, scale={args.scale}, seed={args.seed})"
    wavelength = wavelength_m(args)
    d_z = [d * 1e-3 for d in args.dz]
    if 0.0 not in d_z:
        raise CLIError(f"--dz {args.dz}: the set must include the in-focus map 0 mm")
    if len(set(d_z)) != len(d_z):
        raise CLIError(f"--dz {args.dz}: offsets must be distinct")
    if args.format == "pyoof" and not (len(d_z) == 3 and sum(d < 0 for d in d_z) == 1):
        raise CLIError("the pyoof format holds exactly three maps (d_z < 0, 0, > 0); "
                       "use --format nikolic for other sets")
    if args.snr is not None and args.snr <= 0:
        raise CLIError(f"--snr must be > 0 (omit noise with --noise-free), got {args.snr}")
    illum = dict(DEFAULT_ILLUMINATION)
    illum.update({"c_dB": args.c_db, "q": args.q})
    meta = {"OBJECT": "simulated", "SIMORDER": int(order), "SIMSCALE": float(args.scale)}
    meta.update({f"SIMK{j}": float(k) for j, k in enumerate(K)})
    meta.update({"SIMCDB": args.c_db, "SIMQ": args.q, "SIMAMP": args.amp, "SIMOFF": args.offset})
    t0 = time.perf_counter()
    maps = simulate(
        tel, K, wavelength, d_z, illumination=illum, n_grid=args.n_grid, extent=args.extent,
        scatter=args.scatter, amp=args.amp, offset=args.offset,
        snr=None if args.noise_free else args.snr, seed=args.seed, meta=meta,
    )
    write_beam_maps(maps, out, format=args.format, overwrite=args.overwrite)
    say(f"wrote {out} ({args.format} format) in {time.perf_counter() - t0:.1f} s")
    say(f"telescope {tel.name}, wavelength {wavelength * 1e3:.4g} mm, "
         f"d_z = {', '.join(f'{d:+g}' for d in args.dz)} mm, "
         f"{'noise-free' if args.noise_free else f'peak SNR {args.snr:g}'}")
    say(f"K (waves, OSA order {order}, {source}):")
    for (n, l), k in zip(zernike.nl_list(order), K, strict=True):  # noqa: E741
        say(f"  K({n},{l:+d}) = {k:+.5f}")
    return 0



def register(sub, fmt) -> None:
    """Add the ``simulate`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "simulate", formatter_class=fmt,
        help="simulate beam maps from a telescope preset -> FITS",
        description="Simulate OOF beam maps with the forward model the fits use and write "
                    "them as FITS. The coefficients are given (--coefficients) or drawn "
                    "(--order, --scale, --seed); they are printed and stored in the "
                    "header as SIMK0, SIMK1, ... (waves, OSA order).",
    )
    p.add_argument("out", help="output FITS file")
    p.add_argument("--telescope", default="effelsberg",
                   help="preset name or path of a telescope TOML file")
    p.add_argument("--order", type=positive_int, default=None,
                   help="Zernike order N of the random coefficients (default 4)")
    p.add_argument("--coefficients", type=float, nargs="+", metavar="K",
                   help="Zernike coefficients in waves, OSA order, (N+1)(N+2)/2 values")
    p.add_argument("--scale", type=float, default=0.05,
                   help="rms phase per mode of the random coefficients, waves")
    p.add_argument("--seed", type=int, default=0, help="seed of coefficients and noise")
    p.add_argument("--wavelength", type=float, default=9.0, help="observing wavelength, mm")
    p.add_argument("--frequency", type=float, default=None,
                   help="observing frequency, GHz (instead of --wavelength)")
    p.add_argument("--dz", type=float, nargs="+", default=[-22.0, 0.0, 22.0],
                   help="sub-reflector offsets, mm (must include 0)")
    p.add_argument("--snr", type=float, default=200.0, help="peak SNR of the in-focus map")
    p.add_argument("--noise-free", action="store_true", help="no noise")
    p.add_argument("--n-grid", type=positive_int, default=97,
                   help="samples per side of each map")
    p.add_argument("--extent", type=float, default=9.5,
                   help="half-size of the maps in beam widths lambda/(2R)")
    p.add_argument("--scatter", action="store_true",
                   help="uniformly scattered samples instead of a lattice")
    p.add_argument("--amp", type=float, default=1.0, help="amplitude of every map")
    p.add_argument("--offset", type=float, default=0.0, help="additive offset of every map")
    p.add_argument("--c-db", type=float, default=-14.5, help="illumination edge taper, dB")
    p.add_argument("--q", type=float, default=1.4, help="illumination taper order q")
    p.add_argument("--format", choices=("pyoof", "nikolic"), default="nikolic",
                   help="FITS format (pyoof: exactly 3 maps, no noise column)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run)
