"""``bayesoof sample FILE``: posterior from the quick fit -> run directory, diagnostics verdict."""

from __future__ import annotations

import warnings

from bayesoof.cli.common import (
    CLIError,
    Ticker,
    positive_int,
    save_plots,
    say,
    shorten,
    staged_run,
)
from bayesoof.cli.fit import add_fit_options, fit_table, load_inputs, run_fit
from bayesoof.inference.samplers import NUTS_PREFERENCE, available_samplers, get_sampler
from bayesoof.inference.samplers.base import NUTS_CHECK_EVERY, NUTS_CHECK_FIRST, NUTS_DRAWS_MAX

NAME = "sample"
#: 'nuts' and every registered sampler (bayesoof.inference.samplers; the registry imports
#: no PyMC or JAX, so 'bayesoof --help' stays light)
SAMPLERS = ("nuts", *available_samplers())


def _nuts_default(field: str) -> int:
    """A default of the NUTS samplers (the same for every one of them)."""
    return getattr(available_samplers()[NUTS_PREFERENCE[-1]], field)


def verdict(post) -> list[str]:
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
    lines += [f"  - {shorten(p)}" for p in post.problems]
    if d.get("note"):
        lines.append(f"  note: {d['note']}")
    return lines


def run(args) -> int:
    """Posterior (a registered sampler, from the quick fit) into a new run directory."""
    from bayesoof.inference import checkpoint
    from bayesoof.inference.posterior import PosteriorWarning
    from bayesoof.inference.sample import sample

    data, tel, cfg, stem = load_inputs(args)
    extra = {}
    spec = get_sampler(args.sampler if args.sampler != "nuts" else "pymc")
    if "walkers" in spec.options and args.walkers is not None:
        extra["walkers"] = args.walkers
    with staged_run(args.out, stem) as (staging, finish):
        fit_result = run_fit(args, data, tel, cfg["fit"]["order"])
        # the quick fit is saved first and the raw draws join it as soon as sampling ends
        # (and every minute of a long run): a failure afterwards loses no sampling time
        built = fit_result.save(staging, stem=stem)
        files = args.file if isinstance(args.file, list) else [args.file]
        one_fits = len(files) == 1 and not str(files[0]).lower().endswith(".grd")
        recipe = checkpoint.recipe(  # None (no 'finish') for GRASP inputs: not one FITS file
            files[0], args.telescope or data.meta.get("TELESC"), fit_result.order,
            {"config": args.config, "illumination": args.illumination}, None, None,
        ) if one_fits else None
        # progress of the sampler: a live line on a terminal, a line every 10 % or 30 s in
        # logs and batch jobs (bayesoof.inference.progress)
        extra["progressbar"] = not args.quiet
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=PosteriorWarning)
                post = sample(data, telescope=tel, order=fit_result.order,
                              sampler=args.sampler, draws=args.draws, tune=args.tune,
                              chains=args.chains, seed=args.seed, fit_result=fit_result,
                              checkpoint=built, recipe=recipe,
                              misfit_adjust=not args.noise_only_posterior, **extra)
            if post.idata is None:
                raise CLIError("sampling stopped before any draw was kept; nothing written")
            post.save(built)
        except (Exception, KeyboardInterrupt) as exc:
            if not (built / checkpoint.RAW_FILE).is_file() or isinstance(exc, CLIError):
                raise
            run = finish(built)  # visible, with the quick fit and the raw draws
            cause = " ".join(str(exc).split()) or type(exc).__name__
            raise CLIError(f"{cause}; the draws are kept in {run}: complete the run with "
                           f"'bayesoof finish {run}'") from exc
        if args.plots:
            from bayesoof.plots import fit_figures, posterior_figures

            with Ticker("plots", quiet=args.quiet):
                figs = fit_figures(fit_result)
                figs.update(posterior_figures(post))
                plots = save_plots(figs, built, args.pdf)
        run = finish(built)
    for line in fit_table(fit_result):
        say(line)
    tab = post.table()
    say(f"posterior ({post.sampler}, chains {post.primary_chains}):")
    cols = [c for c in ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat") if c in tab]
    say(tab[cols].to_string(float_format=lambda x: f"{x:.6g}"))
    for why in getattr(post.model.bayesoof, "held", {}).values():  # free in the fit, not here
        say(f"held: {why}")
    if post.held_marginal is not None:
        from bayesoof.inference.held_marginal import sentence as held_sentence

        say(f"marginalised: {held_sentence(post.held_marginal)}")
    rms = (post.products or {}).get("rms_summary", {})
    if rms.get("surface_rms_weighted"):
        s, r = rms["surface_rms_weighted"], rms.get("ruze_weighted", {})
        say(f"surface rms {s['mean']:.1f} ± {s['sd']:.1f} µm (94% HDI {s['hdi_3%']:.1f} to "
            f"{s['hdi_97%']:.1f}), Ruze efficiency {r.get('mean', float('nan')):.4f} "
            "(illumination-weighted)")
    t = post.timing or {}
    if t.get("n_grad_sampling"):
        say(f"cost: {t['n_grad_sampling']} gradient/density evaluations after warm-up, "
             f"sampling {t.get('sampling', float('nan')):.1f} s, total "
             f"{t.get('total', float('nan')):.1f} s")
    if post.settings.get("until_converged") and not post.interrupted:
        kept = post.idata.posterior.sizes["draw"]
        say(f"stopped at {kept} draws per chain: "
            + ("the first check at which R-hat and ESS passed" if t.get("converged_check")
               else f"the cap ({post.settings.get('draws')}): no earlier check passed"))
    if post.interrupted:
        kept = post.idata.posterior.sizes["draw"]
        say(f"sampling was interrupted: kept {kept} of {post.settings.get('draws')} draws "
            "per chain, "
            "assembled and saved (the verdict below is for those)")
    for line in verdict(post):
        say(line)
    ad = (post.products or {}).get("adequacy") or fit_result.adequacy
    say(ad.line())
    if post.adjustment is not None and ad.adequate:  # else the line above names it
        from bayesoof.inference.misfit_adjust import sentence

        unc = fit_result.uncertainty or {}
        why = (unc.get("reason", "the quick fit's choice") if unc.get("switched_on") else
               "the fit configuration's [model_error] says so")
        say(f"uncertainty: {sentence(post.adjustment, fit_result)}, because {why}")
    say(f"run directory: {run}")
    if args.plots:
        say(f"plots: {run / 'plots'} ({', '.join(sorted(p.name for p in plots))})")
    return 0


def register(sub, fmt) -> None:
    """Add the ``sample`` sub-parser to ``sub``."""
    p = sub.add_parser(
        "sample", formatter_class=fmt,
        help="posterior with NUTS or emcee -> run directory",
        description="Sample the posterior of the aberrations and nuisance parameters "
                    "(started from the quick fit) and print the diagnostics verdict.",
    )
    add_fit_options(p)
    p.add_argument("--sampler", choices=("nuts", *available_samplers()), default="nuts",
                   help=f"nuts: the first installed of {', '.join(NUTS_PREFERENCE)} (fastest "
                        "first, measured); "
                        + "; ".join(f"{n}: {s.description}"
                                    for n, s in available_samplers().items()))
    p.add_argument("--draws", type=positive_int, default=None,
                   help="draws per chain (default: the sampler's; nutpie: until converged, "
                        f"checked every {NUTS_CHECK_EVERY} draws from {NUTS_CHECK_FIRST}, at "
                        f"most {NUTS_DRAWS_MAX}; other NUTS {_nuts_default('default_draws')})")
    p.add_argument("--tune", type=positive_int, default=None,
                   help="tuning (NUTS) or burn-in (emcee) steps per chain (default: the "
                        f"sampler's; nutpie {available_samplers()['nutpie'].default_tune}, "
                        f"other NUTS {_nuts_default('default_tune')})")
    p.add_argument("--chains", type=positive_int, default=4,
                   help="NUTS chains (emcee runs an ensemble of --walkers instead)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the chains' starts and of the sampler")
    p.add_argument("--walkers", type=positive_int, default=None,
                   help="emcee walkers (default max(2 d + 2, 32), d the free parameters)")
    p.add_argument("--noise-only-posterior", action="store_true",
                   help="under a misfit, keep K's noise-only posterior (too narrow) instead "
                        "of carrying its draws onto the quick fit's misfit covariance "
                        "(default; the noise-only draws are kept as K_noise_only)")
    p.set_defaults(func=run)
