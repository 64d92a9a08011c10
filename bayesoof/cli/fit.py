"""``bayesoof fit FILE``: quick fit (MAP + Laplace covariance) of orders 1..N -> run directory.

Also the options and steps that ``bayesoof sample`` shares (:func:`add_fit_options`,
:func:`run_fit`, :func:`fit_table`).
"""

from __future__ import annotations

import argparse
import contextlib

from bayesoof.cli.common import (
    Ticker,
    add_grasp_options,
    input_stem,
    positive_int,
    read_data,
    save_plots,
    say,
    staged_run,
    telescope_for,
)

NAME = "fit"


def fit_table(result) -> list[str]:
    """One line per order: free parameters, chi2, plain disc rms phase and surface, time.

    The per-order rms is the plain one (it needs no illumination); the final line of
    ``bayesoof fit`` gives the illumination-weighted rms, the definition of bayesoof.
    """
    from bayesoof.products.maps import surface_um
    from bayesoof.products.rms import plain_rms

    lam = result.data.wavelength
    head = (f"{'order':>5s} {'free':>5s} {'chi2':>12s} {'chi2/dof':>9s} {'plain rms':>11s} "
            f"{'plain surf.':>12s} {'iter':>5s} {'time':>8s}  status")
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
    last = result.orders[-1]
    if last.cold_start:  # fit.cold_start_above: the continuation's chi2 looked too high
        kept = ("its solution is kept (lower chi2): the continuation from the lower orders "
                "had ended in another basin" if last.cold_start == "won" else
                "the continuation's solution is kept (that start found no lower chi2)")
        lines.append(f"order {last.order} was also fitted from the configured start "
                     f"(reduced chi2 > {result.config['fit']['cold_start_above']}); {kept}")
    return lines


def order_arg(text: str):
    """``--order``: a positive integer or 'auto' (chosen by the Laplace evidence)."""
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def config_order(args):
    """The order to put into the fit configuration (None with ``--order auto``)."""
    return None if args.order == "auto" else args.order


def run_fit(args, data, tel, order: int):
    """Run the quick fit with a progress ticker; its per-order lines go to stderr.

    With ``--order auto`` orders 1..``--max-order`` are fitted and the one chosen by the
    Laplace evidence (:mod:`bayesoof.campaign.order`) is returned; the criterion per
    order and the choice are printed.
    """
    from bayesoof.inference.fit import fit

    if args.order == "auto":
        from bayesoof.campaign.order import fit_auto

        label = (f"quick fit of {input_stem(args.file)} ({tel.name}, orders "
                 f"1..{args.max_order}, order chosen by the Laplace evidence)")
        with Ticker(label, quiet=args.quiet) as ticker, \
                contextlib.redirect_stdout(ticker.lines):
            result, selection = fit_auto(data, tel, max_order=args.max_order,
                                         config=args.config, illumination=args.illumination,
                                         verbose=not args.quiet)
        for line in selection.lines():
            say(line)
        return result
    label = f"quick fit of {input_stem(args.file)} ({tel.name}, orders 1..{order})"
    with Ticker(label, quiet=args.quiet) as ticker, contextlib.redirect_stdout(ticker.lines):
        return fit(data, telescope=tel, order=args.order, config=args.config,
                   illumination=args.illumination, verbose=not args.quiet)


def load_inputs(args):
    """Beam maps, telescope, fit configuration and run stem of ``fit`` and ``sample``.

    Prints one line describing the data.  The files and the telescope are checked before
    the fit's heavy imports (PyTensor), so a bad input fails at once.
    """
    data = read_data(args.file, args.dz, args.sigma_fraction)
    tel = telescope_for(data, args.telescope)
    from bayesoof.inference.params import load_fit_config
    cfg = load_fit_config(args.config, order=config_order(args),
                          illumination=args.illumination)
    say(f"{data.source}: {data.n_maps} maps, {sum(m.size for m in data.maps)} samples, "
         f"wavelength {data.wavelength * 1e3:.4g} mm, telescope {tel.name}")
    stem = input_stem(args.file)
    return data, tel, cfg, stem


def run(args) -> int:
    """Quick fit of orders 1..N, a new run directory, optional plots.

    Without automatic cyclic garbage collection (a short command; its collections walk
    the imports' and PyTensor's objects and find little: 0.1-0.3 s CPU, +17 MB peak RSS
    with the objective from the disk cache).
    """
    from bayesoof.inference.compiled_cache import gc_paused

    with gc_paused():
        return _run(args)


def _run(args) -> int:
    data, tel, cfg, stem = load_inputs(args)
    with staged_run(args.out, stem) as (staging, finish):
        result = run_fit(args, data, tel, cfg["fit"]["order"])
        built = result.save(staging, stem=stem)
        if args.plots:
            from bayesoof.plots import fit_figures

            with Ticker("plots", quiet=args.quiet):
                plots = save_plots(fit_figures(result), built, args.pdf)
        run = finish(built)
    for line in fit_table(result):
        say(line)
    st = result.statistics
    say(f"order {result.order}: rms phase {st['phase_rms_weighted']:.4f} ± "
        f"{st['phase_rms_weighted_sd']:.4f} rad, surface rms {st['surface_rms_weighted']:.1f}"
        f" ± {st['surface_rms_weighted_sd']:.1f} µm, Ruze efficiency "
        f"{st['ruze_weighted']:.4f} (illumination-weighted; plain disc rms "
        f"{st['phase_rms']:.4f} rad, {st['surface_rms']:.1f} µm)")
    say(result.adequacy.line())
    me = result.model_error
    if me is not None:
        lo, hi = me["K_sd_ratio_range"]
        say(f"model error: aperture amplitude (rms {me['rms']:g}, Zernike order <= "
            f"{me['order']}) marginalised: K sd x {lo:.2f}-{hi:.2f}, K moved by <= "
            f"{me['K_shift_max_sd']:.2f} sd ([model_error] in the fit configuration)")
    say(f"run directory: {run}")
    if args.plots:
        say(f"plots: {run / 'plots'} ({', '.join(sorted(p.name for p in plots))})")
    return 0


def add_fit_options(p: argparse.ArgumentParser) -> None:
    """Add the options shared by ``fit`` and ``sample``."""
    p.add_argument("file", nargs="+",
                   help="beam-map FITS file (pyoof or Nikolic format), or GRASP .grd far "
                        "fields, one per map (with --dz)")
    p.add_argument("--telescope", default=None,
                   help="preset name or telescope TOML path (default: the file's TELESC)")
    p.add_argument("--order", type=order_arg, default=None,
                   help="largest Zernike order N (default: fit.order of the configuration, "
                        "5), or 'auto': orders 1..--max-order, the one the Laplace evidence "
                        "prefers (criterion per order printed, selected_order in summary.json)")
    p.add_argument("--max-order", type=positive_int, default=5,
                   help="with --order auto: the largest candidate order")
    p.add_argument("--config", default=None,
                   help="fit configuration: a preset name (default, pyoof) or a TOML file "
                        "overriding bayesoof/presets/fit/default.toml")
    from bayesoof.physics.illumination import available_illuminations

    p.add_argument("--illumination", choices=tuple(available_illuminations()), default=None,
                   help="illumination model (default: fit.illumination of the configuration)")
    p.add_argument("--out", default="bayesoof_runs",
                   help="parent directory of the new run directory <out>/<file stem>-NNN")
    p.add_argument("--plots", action="store_true",
                   help="write the plots (PNG) into <run>/plots")
    p.add_argument("--pdf", action="store_true", help="with --plots, also write PDF")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_grasp_options(p)




def register(sub, fmt) -> None:
    """Add the ``fit`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "fit", formatter_class=fmt,
        help="quick fit of orders 1..N -> run directory",
        description="Quick fit (maximum a posteriori + Laplace covariance) of Zernike "
                    "orders 1 to N, each started from the previous one. Prints one "
                    "line per order and the run directory.",
    )
    add_fit_options(p)
    p.set_defaults(func=run)
