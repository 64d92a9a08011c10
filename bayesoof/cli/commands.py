"""The ``bayesoof`` command line.

Subcommands (``bayesoof SUBCOMMAND --help`` for each):

* ``simulate OUT``     beam maps from a telescope preset and Zernike coefficients -> FITS
* ``fit FILE``         quick fit (MAP + Laplace covariance) of orders 1..N -> run directory
* ``sample FILE``      posterior with NUTS or emcee -> run directory, diagnostics verdict
* ``plot RUN_DIR``     (re)make all plots of a run
* ``info FILE|RUN``    what is in a beam-map file or a run directory
* ``convert IN OUT``   between the pyoof and Nikolic FITS formats

Exit status: 0 on success; 1 with a one-line ``bayesoof: error: ...`` on stderr for bad
input (missing or non-FITS file, unknown telescope, malformed configuration, ...); 2 for
command-line usage errors (argparse); 130 when interrupted.  ``--debug`` shows the
traceback instead.  Outputs are written atomically: a failed command leaves nothing
half-written.

Units on the command line: wavelength and d_z in mm (astronomers' habit), K in waves.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]

PROG = "bayesoof"


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# ====================================================================== helpers
def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _warn_line(message, category, filename, lineno, file=None, line=None):  # noqa: D103
    sys.stderr.write(f"{PROG}: warning: {' '.join(str(message).split())}\n")


def _read_data(path: str):
    """Beam maps from a FITS file (either format, detected)."""
    from bayesoof.data.fitsio import read_beam_maps

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return read_beam_maps(p)


def _telescope_for(data, spec: str | None):
    """Return the telescope named on the command line, else the file's TELESC card."""
    from bayesoof.physics.telescope import get_telescope

    if spec is None:
        spec = data.meta.get("TELESC")
        if not spec:
            raise CLIError(
                f"{data.source}: the file does not name its telescope (no TELESC card); "
                "give --telescope NAME or --telescope PATH.toml"
            )
    return get_telescope(spec)


def _wavelength_m(args) -> float:
    from bayesoof.data.containers import SPEED_OF_LIGHT

    if args.frequency is not None:
        if args.frequency <= 0:
            raise CLIError(f"--frequency must be > 0 GHz, got {args.frequency}")
        return SPEED_OF_LIGHT / (args.frequency * 1e9)
    if args.wavelength <= 0:
        raise CLIError(f"--wavelength must be > 0 mm, got {args.wavelength}")
    return args.wavelength * 1e-3


def _positive_int(text: str) -> int:
    try:
        val = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if val < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {val}")
    return val


# ====================================================================== simulate
def cmd_simulate(args) -> int:
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
    wavelength = _wavelength_m(args)
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
    _say(f"wrote {out} ({args.format} format) in {time.perf_counter() - t0:.1f} s")
    _say(f"telescope {tel.name}, wavelength {wavelength * 1e3:.4g} mm, "
         f"d_z = {', '.join(f'{d:+g}' for d in args.dz)} mm, "
         f"{'noise-free' if args.noise_free else f'peak SNR {args.snr:g}'}")
    _say(f"K (waves, OSA order {order}, {source}):")
    for (n, l), k in zip(zernike.nl_list(order), K, strict=True):  # noqa: E741
        _say(f"  K({n},{l:+d}) = {k:+.5f}")
    return 0


# ====================================================================== progress, runs
class _Ticker:
    """Elapsed-time indicator on stderr while a long step runs (only on a terminal)."""

    def __init__(self, label: str, stream=None, quiet: bool = False):
        self.label = label
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._thread = None

    def _run(self) -> None:
        t0 = time.perf_counter()
        spin = "|/-\\"
        k = 0
        while not self._stop.wait(0.25):
            el = time.perf_counter() - t0
            self.stream.write(f"\r{self.label} {spin[k % 4]} {el:6.0f} s")
            self.stream.flush()
            k += 1

    def __enter__(self):
        if self.live:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        elif not self.quiet:
            self.stream.write(f"{self.label} ...\n")
            self.stream.flush()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.stream.write("\r" + " " * (len(self.label) + 12) + "\r")
            self.stream.flush()
        return False


@contextlib.contextmanager
def _staged_run(out: str, stem: str):
    """Build a run directory out of sight, then move it into place complete.

    Yields a staging folder (hidden, inside ``out``) in which the caller writes the run
    (e.g. ``FitResult.save(staging)``, plots); ``finish(run)`` then renames the finished
    folder to ``out/<stem>-NNN`` (first free NNN).  On any error the staging folder is
    removed: no half-written run is ever visible.
    """
    from bayesoof.inference.results import new_run_dir

    parent = Path(out)
    if parent.exists() and not parent.is_dir():
        raise CLIError(f"--out {parent}: exists and is not a directory")
    created = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    final: list[Path] = []

    def finish(built: Path) -> Path:
        target = new_run_dir(parent, stem)  # reserves the name (an empty directory)
        try:
            os.rename(built, target)  # POSIX: replaces the empty directory atomically
        except OSError:
            target.rmdir()
            os.rename(built, target)
        final.append(target)
        return target

    try:
        yield staging, finish
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not final:
            with contextlib.suppress(OSError):  # only if still empty
                parent.rmdir()


def _save_plots(figures: dict, run: Path, pdf: bool) -> list[Path]:
    from bayesoof.plots.figures import save_figures

    return save_figures(figures, run / "plots", pdf=pdf)


# ====================================================================== fit
def _fit_table(result) -> list[str]:
    """One line per order: free parameters, chi2, rms phase and surface, iterations, time."""
    from bayesoof.products.maps import plain_rms, surface_um

    lam = result.data.wavelength
    head = (f"{'order':>5s} {'free':>5s} {'chi2':>12s} {'chi2/dof':>9s} {'rms phase':>11s} "
            f"{'surface rms':>12s} {'iter':>5s} {'time':>8s}  status")
    lines = [head]
    for o in result.orders:
        K = o.space.values[: len(o.space.nl)]
        rms = float(plain_rms(K, o.space.nl))
        lines.append(
            f"{o.order:5d} {int(o.space.free.sum()):5d} {o.chi2:12.6g} {o.reduced_chi2:9.4f} "
            f"{rms:7.4f} rad {float(surface_um(rms, lam)):9.1f} µm {o.n_iter:5d} "
            f"{o.wall_time:6.1f} s  "
            + (result.status if o is result.last else
               "converged" if o.converged else "NOT converged")
        )
    return lines


def _run_fit(args, data, tel, order: int):
    from bayesoof.inference.fit import fit

    label = f"quick fit of {Path(args.file).name} ({tel.name}, orders 1..{order})"
    with _Ticker(label, quiet=args.quiet), contextlib.redirect_stdout(sys.stderr):
        return fit(data, telescope=tel, order=args.order, config=args.config,
                   illumination=args.illumination, verbose=not args.quiet)


def cmd_fit(args) -> int:
    """Quick fit of orders 1..N, a new run directory, optional plots."""
    from bayesoof.inference.params import load_fit_config

    data = _read_data(args.file)
    tel = _telescope_for(data, args.telescope)
    cfg = load_fit_config(args.config, order=args.order, illumination=args.illumination)
    _say(f"{data.source}: {data.n_maps} maps, {sum(m.size for m in data.maps)} samples, "
         f"wavelength {data.wavelength * 1e3:.4g} mm, telescope {tel.name}")
    with _staged_run(args.out, Path(args.file).stem) as (staging, finish):
        result = _run_fit(args, data, tel, cfg["fit"]["order"])
        built = result.save(staging, stem=Path(args.file).stem)
        if args.plots:
            from bayesoof.plots.figures import fit_figures

            with _Ticker("plots", quiet=args.quiet):
                _save_plots(fit_figures(result), built, args.pdf)
        run = finish(built)
    for line in _fit_table(result):
        _say(line)
    st = result.statistics
    _say(f"order {result.order}: rms phase {st['phase_rms']:.4f} ± {st['phase_rms_sd']:.4f} rad "
         f"(illumination-weighted {st['phase_rms_weighted']:.4f}), surface rms "
         f"{st['surface_rms']:.1f} ± {st['surface_rms_sd']:.1f} µm, Ruze efficiency "
         f"{st['ruze_weighted']:.4f}")
    _say(result.adequacy.line())
    _say(f"run directory: {run}")
    return 0


# ====================================================================== sample
def _verdict(post) -> list[str]:
    """Format the diagnostics verdict in a few lines (converged, or the problems)."""
    d = post.diagnostics or {}
    parts = []
    if d.get("r_hat_max") is not None:
        parts.append(f"R-hat max {d['r_hat_max']:.3f}")
    if d.get("ess_bulk_min") is not None:
        parts.append(f"bulk ESS min {d['ess_bulk_min']:.0f}")
    if d.get("ess_tail_min") is not None:
        parts.append(f"tail ESS min {d['ess_tail_min']:.0f}")
    if "divergences" in d:
        parts.append(f"{d['divergences']} divergences")
    if d.get("bfmi"):
        parts.append(f"E-BFMI min {min(d['bfmi']):.2f}")
    lines = [("diagnostics: CONVERGED" if post.converged else "diagnostics: NOT CONVERGED")
             + (f" ({', '.join(parts)})" if parts else "")]
    lines += [f"  - {_shorten(p)}" for p in post.problems]
    if d.get("note"):
        lines.append(f"  note: {d['note']}")
    return lines


def cmd_sample(args) -> int:
    """Posterior (NUTS or emcee from the quick fit) into a new run directory."""
    from bayesoof.inference.params import load_fit_config
    from bayesoof.inference.posterior import PosteriorWarning
    from bayesoof.inference.sample import sample

    data = _read_data(args.file)
    tel = _telescope_for(data, args.telescope)
    cfg = load_fit_config(args.config, order=args.order, illumination=args.illumination)
    _say(f"{data.source}: {data.n_maps} maps, {sum(m.size for m in data.maps)} samples, "
         f"wavelength {data.wavelength * 1e3:.4g} mm, telescope {tel.name}")
    stem = Path(args.file).stem
    extra = {}
    if args.sampler == "emcee" and args.walkers is not None:
        extra["walkers"] = args.walkers
    with _staged_run(args.out, stem) as (staging, finish):
        fit_result = _run_fit(args, data, tel, cfg["fit"]["order"])
        what = (f"sampling ({args.sampler}, "
                + (f"{args.chains} chains x " if args.sampler != "emcee" else "ensemble, ")
                + f"({args.tune} tune + {args.draws} draws))")
        # a sampler's own progress bar when bayesoof.inference.sample offers one, else a ticker
        from bayesoof.inference.sample import run_sampler

        own_bar = "progressbar" in inspect.signature(run_sampler).parameters
        if own_bar:
            extra["progressbar"] = sys.stderr.isatty() and not args.quiet
        ticker = contextlib.nullcontext() if own_bar else _Ticker(what, quiet=args.quiet)
        with ticker, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PosteriorWarning)
            post = sample(data, telescope=tel, order=fit_result.order, sampler=args.sampler,
                          draws=args.draws, tune=args.tune, chains=args.chains,
                          seed=args.seed, fit_result=fit_result, **extra)
        if post.idata is None:
            raise CLIError("sampling stopped before any draw was kept; nothing written")
        built = fit_result.save(staging, stem=stem)
        post.save(built)
        if args.plots:
            from bayesoof.plots.figures import fit_figures, posterior_figures

            with _Ticker("plots", quiet=args.quiet):
                figs = fit_figures(fit_result)
                figs.update(posterior_figures(post))
                _save_plots(figs, built, args.pdf)
        run = finish(built)
    for line in _fit_table(fit_result):
        _say(line)
    tab = post.table()
    _say(f"posterior ({post.sampler}, chains {post.primary_chains}):")
    cols = [c for c in ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat") if c in tab]
    _say(tab[cols].to_string())
    rms = (post.products or {}).get("rms_summary", {})
    if rms.get("surface_rms"):
        s, r = rms["surface_rms"], rms.get("ruze", {})
        _say(f"surface rms {s['mean']:.1f} ± {s['sd']:.1f} µm (94% HDI {s['hdi_3%']:.1f} to "
             f"{s['hdi_97%']:.1f}), Ruze efficiency {r.get('mean', float('nan')):.4f}")
    t = post.timing or {}
    if t.get("n_grad_sampling"):
        _say(f"cost: {t['n_grad_sampling']} gradient/density evaluations after warm-up, "
             f"sampling {t.get('sampling', float('nan')):.1f} s, total "
             f"{t.get('total', float('nan')):.1f} s")
    for line in _verdict(post):
        _say(line)
    ad = (post.products or {}).get("adequacy") or fit_result.adequacy
    _say(ad.line())
    _say(f"run directory: {run}")
    return 0


# ====================================================================== plot
def cmd_plot(args) -> int:
    """Remake every plot of a run directory into RUN_DIR/plots."""
    from bayesoof.plots.figures import fit_figures, posterior_figures

    run = Path(args.run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run}: no such run directory")
    if not run.is_dir():
        raise CLIError(f"{run}: not a directory; expected a run directory from 'bayesoof fit'")
    with _Ticker(f"plots of {run}"):
        figs = fit_figures(run)
        if (run / "posterior.nc").is_file():
            figs.update(posterior_figures(run))
        written = _save_plots(figs, run, args.pdf)
    for path in written:
        _say(str(path))
    return 0


# ====================================================================== info / convert
def cmd_info(args) -> int:
    """Describe a beam-map file or a run directory."""
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        summary = path / "summary.json"
        if not summary.is_file():
            raise CLIError(f"{path}: not a bayesoof run directory (no summary.json)")
        try:
            info = json.loads(summary.read_text())
        except json.JSONDecodeError as err:
            raise CLIError(f"{summary}: not valid JSON ({err})") from None
        if args.json:
            _say(json.dumps(info, indent=2))
        else:
            _say(_describe_summary(info, path))
        return 0
    data = _read_data(str(path))
    if args.json:
        _say(json.dumps(_data_dict(data), indent=2))
        return 0
    _say(data.describe())
    _say(f"format      : {data.meta.get('format', '?')}")
    extra = {k: v for k, v in data.meta.items()
             if k not in ("source", "format", "FREQ", "WAVEL") and not k.startswith("SIMK")}
    for key, val in extra.items():
        _say(f"{key:<12s}: {val}")
    ks = sorted((int(k[4:]), v) for k, v in data.meta.items()
                if k.startswith("SIMK") and k[4:].isdigit())
    if ks:
        _say("simulated K (waves, OSA): " + ", ".join(f"{v:+.4f}" for _, v in ks))
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


def _shorten(text: str, width: int = 240) -> str:
    """``text`` cut to ``width`` characters (long lists of chains, for instance)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 5] + " ..."


def _num(val, fmt: str = ".6g") -> str:
    return "n/a" if val is None else format(val, fmt)


def _describe_summary(info: dict, path: Path) -> str:
    """A readable account of a run's summary.json (``--json`` prints all of it)."""
    tel = info.get("telescope") or {}
    tel_name = tel.get("name", tel) if isinstance(tel, dict) else tel
    lines = [
        f"run directory : {path}",
        f"source        : {info.get('source', '?')} (object {info.get('object') or '?'})",
        f"telescope     : {tel_name}, wavelength {_num(info.get('wavelength_m', 0) * 1e3, '.4g')}"
        f" mm, d_z {', '.join(_num(d * 1e3, '+.4g') for d in info.get('d_z_m', []))} mm",
        f"created       : {info.get('created', '?')} by bayesoof "
        f"{info.get('bayesoof_version', '?')}",
        f"quick fit     : order {info.get('order', '?')} (orders {info.get('orders_fitted')}), "
        f"{info.get('illumination_model', '?')} illumination, residual "
        f"{info.get('residual', '?')}",
        f"                chi2 {_num(info.get('chi2'))} for {info.get('dof', '?')} dof "
        f"(reduced {_num(info.get('reduced_chi2'), '.4f')}), "
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
            f"                rms phase {_num(ph.get('plain'), '.4f')} ± "
            f"{_num(ph.get('plain_sd'), '.4f')} rad (weighted {_num(ph.get('weighted'), '.4f')}),"
            f" surface {_num(su.get('plain'), '.1f')} ± {_num(su.get('plain_sd'), '.1f')} µm, "
            f"Ruze {_num(ru.get('weighted'), '.4f')}")
    for m in info.get("maps", []):
        lines.append(
            f"  map {m.get('name', '?'):<10s} d_z {_num(m.get('d_z_m', 0) * 1e3, '+8.3f')} mm, "
            f"{m.get('n_samples', '?')} samples, sigma {_num(m.get('sigma'), '.4g')} "
            f"({m.get('sigma_origin', '?')}), amp {_num((m.get('amp') or {}).get('value'), '.5g')}"
            f", offset {_num((m.get('offset') or {}).get('value'), '.4g')}")
    lines.append("  parameter        value          sd     unit")
    for e in list(info.get("coefficients", [])) + list(info.get("illumination", [])):
        tag = "" if e.get("free", True) else "  (fixed)"
        lines.append(f"  {e.get('name', '?'):<12s} {_num(e.get('value'), '+12.5g')} "
                     f"{_num(e.get('sd'), '11.3g')} {e.get('unit', ''):<6s}{tag}")
    post = info.get("posterior")
    if post:
        verdict = "CONVERGED" if post.get("converged") else "NOT CONVERGED"
        st = post.get("settings", {})
        if post.get("sampler") == "emcee":
            who = f"{(post.get('timing') or {}).get('walkers', '?')} walkers"
        else:
            who = f"{st.get('chains', '?')} chains"
        lines.append(f"posterior     : {post.get('sampler', '?')}, {who} x {st.get('draws', '?')}"
                     f" draws (tune {st.get('tune', '?')}), seed {st.get('seed', '?')}: {verdict}")
        for prob in post.get("problems", []):
            lines.append(f"  - {_shorten(prob)}")
        srf = post.get("surface_rms_um") or {}
        if srf:
            lines.append(f"                surface rms {_num(srf.get('mean'), '.1f')} ± "
                         f"{_num(srf.get('sd'), '.1f')} µm (94% HDI "
                         f"{_num(srf.get('hdi_3%'), '.1f')} to {_num(srf.get('hdi_97%'), '.1f')})")
        params = post.get("parameters") or {}
        if params:
            lines.append("  parameter              mean          sd    ess_bulk  r_hat")
            for name, row in params.items():
                lines.append(f"  {name:<18s} {_num(row.get('mean'), '+11.5g')} "
                             f"{_num(row.get('sd'), '11.3g')} {_num(row.get('ess_bulk'), '10.0f')}"
                             f"  {_num(row.get('r_hat'), '.3f')}")
    return "\n".join(lines)


def cmd_convert(args) -> int:
    """Convert a beam-map file between the pyoof and Nikolic formats."""
    from bayesoof.data.fitsio import write_beam_maps

    src, dst = Path(args.input), Path(args.output)
    if dst.exists() and not args.overwrite:
        raise CLIError(f"{dst}: file exists; pass --overwrite to replace it")
    if src.resolve() == dst.resolve():
        raise CLIError(f"{dst}: output is the input file; choose another name")
    data = _read_data(str(src))
    write_beam_maps(data, dst, format=args.to, overwrite=args.overwrite)
    _say(f"wrote {dst} ({args.to} format, {data.n_maps} maps, "
         f"{sum(m.size for m in data.maps)} samples) from {src} ({data.meta.get('format')})")
    return 0


# ====================================================================== parser
def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``bayesoof`` (one sub-parser per subcommand)."""
    from bayesoof import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian out-of-focus (OOF) holography of radio telescopes.",
        epilog="Run 'bayesoof SUBCOMMAND --help' for the options of each subcommand.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    # ---------------------------------------------------------------- simulate
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
    p.add_argument("--order", type=_positive_int, default=None,
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
    p.add_argument("--n-grid", type=_positive_int, default=97,
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
    p.set_defaults(func=cmd_simulate)

    # ---------------------------------------------------------------- fit
    p = sub.add_parser(
        "fit", formatter_class=fmt,
        help="quick fit of orders 1..N -> run directory",
        description="Quick fit (maximum a posteriori + Laplace covariance) of Zernike "
                    "orders 1 to N, each started from the previous one. Prints one "
                    "line per order and the run directory.",
    )
    _add_fit_options(p)
    p.set_defaults(func=cmd_fit)

    # ---------------------------------------------------------------- sample
    p = sub.add_parser(
        "sample", formatter_class=fmt,
        help="posterior with NUTS or emcee -> run directory",
        description="Sample the posterior of the aberrations and nuisance parameters "
                    "(started from the quick fit) and print the diagnostics verdict.",
    )
    _add_fit_options(p)
    p.add_argument("--sampler", choices=("nuts", "emcee"), default="nuts",
                   help="nuts: numpyro on JAX when installed, else PyMC; emcee: ensemble")
    p.add_argument("--draws", type=_positive_int, default=1000, help="draws per chain")
    p.add_argument("--tune", type=_positive_int, default=1000,
                   help="tuning (NUTS) or burn-in (emcee) steps per chain")
    p.add_argument("--chains", type=_positive_int, default=4,
                   help="NUTS chains (emcee runs an ensemble of --walkers instead)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the chains' starts and of the sampler")
    p.add_argument("--walkers", type=_positive_int, default=None,
                   help="emcee walkers (default max(2 d + 2, 32), d the free parameters)")
    p.set_defaults(func=cmd_sample)

    # ---------------------------------------------------------------- plot
    p = sub.add_parser(
        "plot", formatter_class=fmt, help="(re)make all plots of a run",
        description="(Re)make all plots of a run directory in RUN_DIR/plots.",
    )
    p.add_argument("run_dir", help="run directory written by 'bayesoof fit' or 'sample'")
    p.add_argument("--pdf", action="store_true", help="also write PDF files")
    p.set_defaults(func=cmd_plot)

    # ---------------------------------------------------------------- info
    p = sub.add_parser(
        "info", formatter_class=fmt, help="describe a beam-map file or a run directory",
        description="Describe a beam-map FITS file (maps, d_z, grids, header) or a run "
                    "directory (its summary.json).",
    )
    p.add_argument("path", help="FITS file or run directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    # ---------------------------------------------------------------- convert
    p = sub.add_parser(
        "convert", formatter_class=fmt, help="convert between pyoof and Nikolic FITS",
        description="Convert beam maps between the pyoof format (tables MINUS/ZERO/PLUS "
                    "OOF with U, V, BEAM; no noise column) and the Nikolic format (one "
                    "table per map with DX, DY, FNU, UFNU).",
    )
    p.add_argument("input", help="input FITS file (either format)")
    p.add_argument("output", help="output FITS file")
    p.add_argument("--to", choices=("pyoof", "nikolic"), required=True,
                   help="format of the output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_convert)
    return parser


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="beam-map FITS file (pyoof or Nikolic format)")
    p.add_argument("--telescope", default=None,
                   help="preset name or telescope TOML path (default: the file's TELESC)")
    p.add_argument("--order", type=_positive_int, default=None,
                   help="largest Zernike order N (default: fit.order of the configuration, 5)")
    p.add_argument("--config", default=None,
                   help="fit configuration: a preset name (default, pyoof) or a TOML file "
                        "overriding bayesoof/presets/fit/default.toml")
    p.add_argument("--illumination", choices=("parabolic", "gaussian"), default=None,
                   help="illumination model (default: fit.illumination of the configuration)")
    p.add_argument("--out", default="bayesoof_runs",
                   help="parent directory of the new run directory <out>/<file stem>-NNN")
    p.add_argument("--plots", action="store_true",
                   help="write the plots (PNG) into <run>/plots")
    p.add_argument("--pdf", action="store_true", help="with --plots, also write PDF")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


# ====================================================================== main
def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*BLAS.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"pytensor\..*")
        if not debug:
            warnings.showwarning = _warn_line
        try:
            return int(args.func(args) or 0)
        except BrokenPipeError:  # e.g. 'bayesoof info RUN | head': the reader left
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 0
        except KeyboardInterrupt:
            sys.stderr.write(f"{PROG}: interrupted\n")
            return 130
        except Exception as exc:
            if debug:
                raise
            sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
            return 1


def _one_line(exc: BaseException) -> str:
    """Format ``exc`` on one line (with its type when the exception is unexpected)."""
    from bayesoof.data.containers import DataError
    from bayesoof.physics.telescope import TelescopeError

    msg = " ".join(str(exc).split()) or type(exc).__name__
    expected = (CLIError, DataError, TelescopeError, OSError, ValueError, KeyError)
    if isinstance(exc, expected):
        if isinstance(exc, KeyError):
            return f"missing key {msg}"
        return msg
    return f"{type(exc).__name__}: {msg} (rerun with --debug for the traceback)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
