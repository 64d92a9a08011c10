"""``bayesoof surface RUN_DIR --format effelsberg|gbt|table``: active-surface commands."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bayesoof.cli.common import CLIError, say

NAME = "surface"

FILES = {"effelsberg": "lookup_effelsberg.data", "gbt": "gbt_zernike.txt",
         "table": "actuators.csv"}


def _single_result(record):
    """K (waves), its covariance or draws, nl and wavelength of a fit/sample run."""
    summary = record.summary
    coeffs = summary["coefficients"]
    nl = [(c["n"], c["l"]) for c in coeffs]
    K = np.array([c["value"] for c in coeffs])
    lam = float(summary["wavelength_m"])
    post = record.posterior
    if post is not None:
        # every chain's draws, the terms the model does not sample at the quick fit's MAP
        return {"draws": post.K_draws(primary=False), "nl": nl, "wavelength": lam,
                "estimate": "posterior draws"}
    return {"K": K, "cov": record.fit.K_cov, "nl": nl, "wavelength": lam,
            "estimate": "Laplace"}


def _telescope(args, summary: dict):
    from bayesoof.physics.telescope import get_telescope

    spec = args.telescope
    if spec is None:
        tel = summary.get("telescope")
        spec = tel.get("name") if isinstance(tel, dict) else tel
    if not spec:
        raise CLIError("the run does not name its telescope; give --telescope")
    tel = get_telescope(spec)
    if tel.actuators is None and args.format != "gbt":
        raise CLIError(f"telescope {tel.name!r} declares no [actuators] in its preset; "
                       "add one (see bayesoof/physics/actuators.py) or use --format gbt")
    return tel


def _write(path: Path, text: str, overwrite: bool) -> Path:
    from bayesoof.io import write_text

    return write_text(path, text, overwrite=overwrite)


def run(args) -> int:
    """Turn a single result or a gravity model into actuator commands with sd."""
    from bayesoof.campaign import actuators as A
    from bayesoof.io.run import read_run

    run_dir = Path(args.run_dir)
    if not (run_dir / "summary.json").is_file():
        raise CLIError(f"{run_dir}: no summary.json (not a bayesoof run directory)")
    record = read_run(run_dir)
    summary = record.summary
    tel = _telescope(args, summary)
    out = Path(args.output) if args.output else run_dir / FILES[args.format]
    written = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", A.ActuatorLimitWarning)
        if record.kind == "gravity":
            from bayesoof.campaign.gravity import TERMS, load_gravity

            g = load_gravity(run_dir)
            s1 = g.stage1
            lam = s1.wavelength
            if args.format == "gbt":
                draws = {}
                for t in TERMS:
                    d = np.zeros((g.draws(t).shape[0], len(s1.nl)))
                    d[:, s1.terms] = g.draws(t)
                    draws[t] = d
                rows = A.gbt_rows_draws(draws, s1.nl, lam)
                text = A.gbt_text(rows, f"gravity model of {run_dir}: Z(el) = A sin(el) + "
                                        "B cos(el) + C per GBT term, with posterior sd")
                written.append(_write(out, text, args.overwrite))
            else:
                els = (args.elevations or list(tel.actuators.lookup_elevations)
                       or np.linspace(s1.elevation.min(), s1.elevation.max(), 7).tolist())
                if args.format == "effelsberg":
                    els = list(tel.actuators.lookup_elevations)
                cmd = A.command_from_draws(tel.actuators, g.K_at(els), s1.nl, lam, els,
                                           args.include_tilt, source=str(run_dir))
                written += _write_command(args, cmd, out)
        else:
            r = _single_result(record)
            if args.format == "gbt":
                if "draws" in r:
                    rows = A.gbt_rows_draws({"value": r["draws"]}, r["nl"], r["wavelength"])
                else:
                    rows = A.gbt_rows_gaussian(r["K"], r["cov"], r["nl"], r["wavelength"])
                text = A.gbt_text(rows, f"{run_dir} ({r['estimate']}), order "
                                        f"{summary['order']}")
                written.append(_write(out, text, args.overwrite))
            else:
                if "draws" in r:
                    cmd = A.command_from_draws(tel.actuators, r["draws"][:, None, :], r["nl"],
                                               r["wavelength"], [np.nan], args.include_tilt)
                else:
                    cmd = A.command_from_gaussian(tel.actuators, r["K"], r["cov"], r["nl"],
                                                  r["wavelength"], np.nan, args.include_tilt)
                if args.format == "effelsberg":
                    say("a single result: the same displacement is written at every "
                        "elevation of the table (use a gravity model for an elevation-"
                        "dependent one)")
                written += _write_command(args, cmd, out)
    for w in caught:
        say(f"WARNING: {w.message}")
    for p in written:
        say(f"wrote {p}")
    return 0


def _write_command(args, cmd, out: Path) -> list[Path]:
    from bayesoof.campaign import actuators as A

    d, sd = cmd.displacement, cmd.sd
    say(f"{cmd.actuators.n} actuators x {d.shape[0]} elevation(s): |d| up to "
        f"{np.max(np.abs(d)):.0f} µm, sd up to {np.max(sd):.1f} µm (median {np.median(sd):.1f})"
        + (f"; {int(cmd.clipped.sum())} clipped to ±{cmd.actuators.limit * 1e3:g} mm"
           if cmd.clipped.any() else ""))
    if args.format == "table":
        return [_write(out, A.table_text(cmd), args.overwrite)]
    sd_path = out.with_name(out.stem + "_sd" + out.suffix)
    return [_write(out, A.effelsberg_lookup_text(cmd), args.overwrite),
            _write(sd_path, A.effelsberg_lookup_text(cmd, "sd"), args.overwrite)]


def register(sub, fmt) -> None:
    """Add the ``surface`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "surface", formatter_class=fmt,
        help="active-surface commands with sd from a result or a gravity model",
        description="Actuator displacements (or GBT Zernike coefficients) with their "
                    "posterior sd from a single run (fit or sample) or a gravity model. "
                    "effelsberg: pyoof's look-up-table text (96 sub-reflector actuators, "
                    "µm at the preset's elevations) and a companion _sd file; gbt: Zernike "
                    "coefficients in microns, GBT order and sign; table: CSV per actuator "
                    "(positions from the telescope preset's [actuators]). Displacements "
                    "beyond the actuators' limit are clipped, with a warning.",
    )
    p.add_argument("run_dir", help="run directory of 'bayesoof fit', 'sample' or 'gravity'")
    p.add_argument("--format", choices=("effelsberg", "gbt", "table"), default="table",
                   help="output format")
    p.add_argument("--telescope", default=None,
                   help="telescope preset (default: the one the run names)")
    p.add_argument("--elevations", type=float, nargs="+", default=None,
                   help="table format with a gravity model: elevations, deg")
    p.add_argument("--include-tilt", action="store_true",
                   help="also command the tilts (pointing); default: piston and tilt left out")
    p.add_argument("--output", default=None,
                   help="output file (default: inside RUN_DIR, named after the format)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)
