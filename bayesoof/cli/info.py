"""``bayesoof info FILE|RUN_DIR``: what is in a beam-map file or a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from bayesoof.cli.common import num, read_data, say, shorten
from bayesoof.io.run import read_run

NAME = "info"


def run(args) -> int:
    """Describe a beam-map file or a run directory."""
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        run = read_run(path)
        if args.json:
            say(json.dumps(run.summary, indent=2))
        elif run.kind == "gravity":  # a 'bayesoof gravity' run has its own summary
            say(_describe_gravity(run.summary, path))
        else:
            say(_describe_summary(run.summary, path))
        return 0
    data = read_data(str(path))
    if args.json:
        say(json.dumps(_data_dict(data), indent=2))
        return 0
    say(data.describe())
    say(f"format      : {data.meta.get('format', '?')}")
    extra = {k: v for k, v in data.meta.items()
             if k not in ("source", "format", "FREQ", "WAVEL") and not k.startswith("SIMK")}
    for key, val in extra.items():
        say(f"{key:<12s}: {val}")
    ks = sorted((int(k[4:]), v) for k, v in data.meta.items()
                if k.startswith("SIMK") and k[4:].isdigit())
    if ks:
        say("simulated K (waves, OSA): " + ", ".join(f"{v:+.4f}" for _, v in ks))
    return 0


def _data_dict(data) -> dict:
    maps = []
    for m in data.maps:
        g = m.grid()
        maps.append({
            "name": m.name, "d_z_m": m.d_z, "samples": m.size,
            "grid": None if g is None else [g.nu, g.nv],
            "peak": float(m.beam.max()), "sigma_given": m.sigma is not None,
        })
    meta = {k: v for k, v in data.meta.items() if isinstance(v, str | int | float | bool)}
    return {"wavelength_m": data.wavelength, "frequency_hz": data.frequency, "maps": maps,
            "meta": meta}


def _describe_summary(info: dict, path: Path) -> str:
    """A readable account of a run's summary.json (``--json`` prints all of it)."""
    tel = info.get("telescope") or {}
    tel_name = tel.get("name", tel) if isinstance(tel, dict) else tel
    lines = [
        f"run directory : {path}",
        f"source        : {info.get('source', '?')} (object {info.get('object') or '?'})",
        f"telescope     : {tel_name}, wavelength {num(info.get('wavelength_m', 0) * 1e3, '.4g')}"
        f" mm, d_z {', '.join(num(d * 1e3, '+.4g') for d in info.get('d_z_m', []))} mm",
        f"created       : {info.get('created', '?')} by bayesoof "
        f"{info.get('bayesoof_version', '?')}",
        f"quick fit     : order {info.get('order', '?')} (orders {info.get('orders_fitted')}), "
        f"{info.get('illumination_model', '?')} illumination, residual "
        f"{info.get('residual', '?')}",
        f"                chi2 {num(info.get('chi2'))} for {info.get('dof', '?')} dof "
        f"(reduced {num(info.get('reduced_chi2'), '.4f')}), "
        f"{info.get('status') or ('converged' if info.get('converged') else 'NOT converged')}",
    ]
    ad = info.get("adequacy")
    if ad:
        lines.append(f"adequacy      : {ad.get('verdict', '?')}"
                     + (f" ({'; '.join(ad.get('reasons') or [])})" if ad.get("reasons") else ""))
    ph, su, ru = (info.get(k) or {} for k in ("phase_rms_rad", "surface_rms_um",
                                                  "ruze_efficiency"))
    if ph:
        lines.append(
            f"                rms phase {num(ph.get('plain'), '.4f')} ± "
            f"{num(ph.get('plain_sd'), '.4f')} rad (weighted {num(ph.get('weighted'), '.4f')}),"
            f" surface {num(su.get('plain'), '.1f')} ± {num(su.get('plain_sd'), '.1f')} µm, "
            f"Ruze {num(ru.get('weighted'), '.4f')}")
    for m in info.get("maps", []):
        lines.append(
            f"  map {m.get('name', '?'):<10s} d_z {num(m.get('d_z_m', 0) * 1e3, '+8.3f')} mm, "
            f"{m.get('n_samples', '?')} samples, sigma {num(m.get('sigma'), '.4g')} "
            f"({m.get('sigma_origin', '?')}), amp {num((m.get('amp') or {}).get('value'), '.5g')}"
            f", offset {num((m.get('offset') or {}).get('value'), '.4g')}")
    lines.append("  parameter        value          sd     unit")
    for e in list(info.get("coefficients", [])) + list(info.get("illumination", [])):
        tag = "" if e.get("free", True) else "  (fixed)"
        lines.append(f"  {e.get('name', '?'):<12s} {num(e.get('value'), '+12.5g')} "
                     f"{num(e.get('sd'), '11.3g')} {e.get('unit', ''):<6s}{tag}")
    post = info.get("posterior")
    if post:
        verdict = "CONVERGED" if post.get("converged") else "NOT CONVERGED"
        st = post.get("settings", {})
        if post.get("sampler") == "emcee":
            who = f"{(post.get('timing') or {}).get('walkers', '?')} walkers"
        else:
            who = f"{st.get('chains', '?')} chains"
        kept = (post.get("timing") or {}).get("stopped_at")
        draws = st.get("draws", "?") if kept is None else (
            f"{kept} (run until converged, cap {st.get('draws', '?')})")
        lines.append(f"posterior     : {post.get('sampler', '?')}, {who} x {draws}"
                     f" draws (tune {st.get('tune', '?')}), seed {st.get('seed', '?')}: {verdict}")
        for prob in post.get("problems", []):
            lines.append(f"  - {shorten(prob)}")
        srf = (post.get("aperture") or {}).get("surface_rms_weighted") or {}
        if srf:
            lines.append("                surface rms (illumination-weighted) "
                         f"{num(srf.get('mean'), '.1f')} ± "
                         f"{num(srf.get('sd'), '.1f')} µm (94% HDI "
                         f"{num(srf.get('hdi_3%'), '.1f')} to {num(srf.get('hdi_97%'), '.1f')})")
        params = post.get("parameters") or {}
        if params:
            lines.append("  parameter              mean          sd    ess_bulk  r_hat")
            for name, row in params.items():
                lines.append(f"  {name:<18s} {num(row.get('mean'), '+11.5g')} "
                             f"{num(row.get('sd'), '11.3g')} {num(row.get('ess_bulk'), '10.0f')}"
                             f"  {num(row.get('r_hat'), '.3f')}")
    return "\n".join(lines)


def register(sub, fmt) -> None:
    """Add the ``info`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "info", formatter_class=fmt, help="describe a beam-map file or a run directory",
        description="Describe a beam-map FITS file (maps, d_z, grids, header) or a run "
                    "directory (its summary.json).",
    )
    p.add_argument("path", help="FITS file or run directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _describe_gravity(doc: dict, path: Path) -> str:
    d = doc.get("diagnostics", {})
    lines = [f"{path}: gravity model of {doc['n_observations']} observations, "
             f"{len(doc['scatter'])} terms, wavelength {doc['wavelength_m'] * 1e3:.4g} mm",
             f"  {doc['model']}",
             f"  diagnostics: R-hat max {d.get('r_hat_max', float('nan')):.3f}, bulk ESS min "
             f"{d.get('ess_bulk_min', float('nan')):.0f}, {d.get('divergences')} divergences"]
    for r in doc["terms"]:
        lines.append(f"  K({r['n']},{r['l']}) {r['term']} {r['mean']:+.5f} ± {r['sd']:.5f} "
                     f"[{r['hdi_3%']:+.5f}, {r['hdi_97%']:+.5f}] wave")
    return "\n".join(lines)
