"""``bayesoof convert IN OUT``: between the pyoof and Nikolic FITS formats."""

from __future__ import annotations

from pathlib import Path

from bayesoof.cli.common import CLIError, add_grasp_options, read_data, say

NAME = "convert"


def run(args) -> int:
    """Convert a beam-map file between the pyoof and Nikolic formats."""
    from bayesoof.data.fitsio import write_beam_maps

    srcs, dst = [Path(p) for p in args.input], Path(args.output)
    if dst.exists() and not args.overwrite:
        raise CLIError(f"{dst}: file exists; pass --overwrite to replace it")
    if any(src.resolve() == dst.resolve() for src in srcs):
        raise CLIError(f"{dst}: output is an input file; choose another name")
    data = read_data(args.input, args.dz, args.sigma_fraction)
    src = srcs[0] if len(srcs) == 1 else f"{len(srcs)} files"
    write_beam_maps(data, dst, format=args.to, overwrite=args.overwrite)
    say(f"wrote {dst} ({args.to} format, {data.n_maps} maps, "
         f"{sum(m.size for m in data.maps)} samples) from {src} "
         f"({data.meta.get('format')})")
    return 0


def register(sub, fmt) -> None:
    """Add the ``convert`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "convert", formatter_class=fmt, help="convert between pyoof and Nikolic FITS",
        description="Convert beam maps between the pyoof format (tables MINUS/ZERO/PLUS "
                    "OOF with U, V, BEAM; no noise column) and the Nikolic format (one "
                    "table per map with DX, DY, FNU, UFNU).",
    )
    p.add_argument("input", nargs="+",
                   help="input FITS file (either format), or GRASP .grd far fields, one per "
                        "map (with --dz)")
    p.add_argument("output", help="output FITS file")
    p.add_argument("--to", choices=("pyoof", "nikolic"), required=True,
                   help="format of the output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_grasp_options(p)
    p.set_defaults(func=run)
