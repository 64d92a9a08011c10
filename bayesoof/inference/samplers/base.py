"""The contract of a sampler runner, its result, and the registry.

A sampler is ONE registered :class:`Sampler`: a name, a ``run`` function, the options it
accepts (with defaults), whether it can run here, and the compile mode it wants::

    def run(density, *, draws, tune, chains, seed, jitter, progressbar, **options) -> RawDraws

``density`` is an :class:`~bayesoof.inference.density.AffineDensity` (the whitened log
posterior, N(0, I)-like near the mode); ``run`` returns the draws of ``z`` (chains, draws,
d) and per-draw statistics in a :class:`RawDraws`, keeps what it drew when interrupted
(Ctrl-C) and flags it; the same seed gives the same draws.  Adding a sampler is one new
module in this folder that calls :func:`register` (every module here is imported by
:func:`available_samplers`), plus its tests; ``bayesoof sample --sampler`` offers it.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "NUTS_DRAWS",
    "NUTS_PREFERENCE",
    "NUTS_DRAWS_MAX",
    "NUTS_TUNE",
    "NUTPIE_LONG_DEPTH",
    "NUTPIE_MAX_DEPTH",
    "NUTPIE_PROBE_DRAWS",
    "NUTPIE_PROBE_ESS_PER_DRAW",
    "NUTPIE_TUNE",
    "PeriodicCheckpoint",
    "StopRule",
    "RawDraws",
    "Sampler",
    "available_samplers",
    "checkpoint_interval",
    "default_nuts",
    "get_sampler",
    "logging_off",
    "progress_bar",
    "register",
    "sample_loop",
]

_REGISTRY: dict[str, Sampler] = {}

#: the NUTS runners 'nuts' may stand for, fastest first (bench/bench_sample.py, order 5,
#: 3 × 16 129 samples, 2 cores: bench/RESULTS.md "Sampling"); PyMC's is always installed
NUTS_PREFERENCE = ("nutpie", "numpyro", "pymc")
#: warm-up and kept draws per chain of every NUTS runner: under the Laplace whitening 100
#: warm-up iterations suffice (200 or 300 did not lower the draws needed) and R-hat <= 1.01
#: over the 20 K of order 5 needs ~750 draws per chain (bulk ESS > 400 from 250 draws)
NUTS_TUNE, NUTS_DRAWS = 100, 750
#: nutpie's warm-up: 50 iterations (3 sampler seeds each, order 5, 3 x 127² lattice: warm-up
#: 50 stopped at 650 / 400 / 400 draws, warm-up 100 at 400 and twice not by 700; ~1 400
#: fewer warm-up gradients, the same 7 gradients per draw; bench/RESULTS.md "session 4")
NUTPIE_TUNE = 50
#: nutpie's cap on the tree depth (at most 2**depth leapfrog steps per draw).  On the
#: Laplace-whitened density the unbounded trees run ~7.5 steps, about half a period of the
#: near-standard-normal posterior, so each draw mirrors the last: bulk ESS ~2 per draw but
#: tail (folded) ESS ~0.5, and the R-hat test on the tails sets the stop.  Trees of at most
#: 4 steps (~a quarter period) refresh |z| each draw: order 5, 3 x 127² lattice, 3 seeds,
#: 6 449-7 389 gradients to the converged stop against 18 475 (seed 0) with the cap at 10,
#: tail ESS per gradient 0.12-0.15 against 0.07, 0 divergences (bench/RESULTS.md "session 5").
#: Where the whitened posterior is less Gaussian (order 3, 31² maps) such short trees
#: random-walk (K(2,0): bulk ESS 9 in 6 000 draws; at 100 draws per chain 0.014 per draw
#: against 0.28 on the 127² maps), so the short trees are kept only if the first
#: NUTPIE_PROBE_DRAWS draws of every chain have a bulk ESS of every whitened
#: coordinate >= NUTPIE_PROBE_ESS_PER_DRAW x the draws; else the run starts again with
#: trees of up to 2**NUTPIE_LONG_DEPTH steps (NUTS's usual cap), and says so.
NUTPIE_MAX_DEPTH = 2
NUTPIE_LONG_DEPTH = 10
NUTPIE_PROBE_DRAWS = 100
NUTPIE_PROBE_ESS_PER_DRAW = 0.05
#: NUTS runners that stop when converged (:class:`StopRule`) check the draws so far every
#: NUTS_CHECK_EVERY draws per chain from NUTS_CHECK_FIRST on, and stop at NUTS_DRAWS_MAX
#: with an honest "not converged" verdict (bench/RESULTS.md "Stopping when converged")
NUTS_CHECK_FIRST, NUTS_CHECK_EVERY, NUTS_DRAWS_MAX = 300, 50, 1500


@dataclass(frozen=True)
class Sampler:
    """A registered sampler runner.

    Attributes
    ----------
    name : str
        What ``sampler=`` and ``--sampler`` take.
    run : callable
        The runner (contract in the module docstring).
    description : str
        One line for ``--help``.
    options : dict
        Keyword options ``run`` accepts beyond the common ones, with their defaults.
    available : callable
        ``() -> str | None``: None when it can run here, else why not (missing package).
    compile_mode : str
        PyTensor mode of the density it prefers ("JAX" or "FAST_RUN"; "JAX" falls back
        to "FAST_RUN" without JAX).
    ensemble : bool
        Walkers instead of chains (R-hat and ESS treat walkers as chains).
    prepare : callable or None
        Called before anything is compiled (e.g. to give JAX one device per core).
    default_draws, default_tune : int
        Kept draws and warm-up (burn-in) iterations per chain when the caller gives none
        (NUTS: sized for the Laplace-whitened posterior, bench/RESULTS.md "Sampling"); a
        runner that takes a ``stop`` option (a :class:`StopRule`) runs until converged when
        the caller gives no draws, and ``default_draws`` is then its cap.
    """

    name: str
    run: Callable
    description: str
    options: dict = field(default_factory=dict)
    available: Callable[[], str | None] = lambda: None
    compile_mode: str = "FAST_RUN"
    ensemble: bool = False
    prepare: Callable[[], None] | None = None
    default_draws: int = 1000
    default_tune: int = 500


@dataclass(frozen=True)
class StopRule:
    """Stop sampling at the first check where the draws so far are converged.

    ``converged(z, stats)`` is called with the first ``n`` draws of every chain (``z``:
    (chains, n, d), ``stats``: name -> (chains, n)) for n = ``first``, ``first + every``,
    ... up to the run's cap, in that order and only there, so the draws kept are the
    first n of each chain whatever the speed of the threads (the same seed keeps the same
    draws).  Checking only on that coarse grid, and not before ``first`` draws, limits
    the optional-stopping bias of stopping at a lucky low R-hat.
    """

    converged: Callable[[np.ndarray, dict], bool]
    first: int = NUTS_CHECK_FIRST
    every: int = NUTS_CHECK_EVERY

    def checks(self, cap: int) -> list[int]:
        """Draws per chain at which the rule is checked in a run of at most ``cap``."""
        return list(range(self.first, cap, self.every)) if self.first < cap else []


@dataclass
class RawDraws:
    """What a sampler returns: whitened draws and per-draw statistics."""

    z: np.ndarray  # (chains, draws, d)
    stats: dict  # name -> (chains, draws)
    n_grad: int  # gradient (or density, for emcee) evaluations, warm-up included
    n_grad_sampling: int  # the same, after warm-up
    wall_time: float  # s, compilation included
    sampling_time: float  # s, compilation excluded where it can be told apart
    interrupted: bool = False
    info: dict = field(default_factory=dict)


def register(sampler: Sampler) -> Sampler:
    """Add ``sampler`` to the registry (a module of this folder does it on import)."""
    _REGISTRY[sampler.name] = sampler
    return sampler


def _discover() -> None:
    import bayesoof.inference.samplers as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name != "base":
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


def available_samplers() -> dict[str, Sampler]:
    """Every registered sampler by name (the modules of this folder, imported on first use)."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def default_nuts() -> str:
    """What sampler 'nuts' stands for: the first of :data:`NUTS_PREFERENCE` that can run here."""
    samplers = available_samplers()
    for name in NUTS_PREFERENCE:
        if name in samplers and not samplers[name].available():
            return name
    raise ImportError(f"none of the NUTS samplers {NUTS_PREFERENCE} can run here")


def get_sampler(name: str) -> Sampler:
    """Return the registered sampler ``name``.

    ValueError names the registered ones; ImportError says what is missing when it
    cannot run here.
    """
    samplers = available_samplers()
    if name not in samplers:
        raise ValueError(f"sampler must be one of {('nuts', *samplers)}, got {name!r}")
    why = samplers[name].available()
    if why:
        raise ImportError(f"sampler={name!r} {why}")
    return samplers[name]


# ---------------------------------------------------------------- helpers of the runners
def progress_bar(progressbar, label: str, total: int, unit: str = "iterations"):
    """A :class:`bayesoof.inference.progress.Progress` when wanted (None: in notebooks)."""
    from bayesoof.inference import progress

    return progress.Progress(label, total, unit=unit) if progress.wanted(progressbar) else None


@contextlib.contextmanager
def logging_off():
    """Silence the logging module (emcee logs multi-line notices through the root logger)."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def checkpoint_interval() -> float:
    """Seconds between the periodic checkpoints of long runs (inference/checkpoint.py)."""
    from bayesoof.inference.checkpoint import INTERVAL

    return INTERVAL


class PeriodicCheckpoint:
    """Calls ``on_checkpoint(partial())`` at most once per :func:`checkpoint_interval` s.

    ``on_checkpoint`` None: never (and ``partial`` is never called).
    """

    def __init__(self, on_checkpoint: Callable | None, partial: Callable):
        self.on_checkpoint, self.partial = on_checkpoint, partial
        self.last_saved = time.perf_counter()

    def tick(self) -> None:
        """Save the draws so far when the interval has passed since the last save."""
        due = time.perf_counter() - self.last_saved > checkpoint_interval()
        if self.on_checkpoint is not None and due:
            self.on_checkpoint(self.partial())
            self.last_saved = time.perf_counter()


def sample_loop(steps, step: Callable, *, prog, on_checkpoint, partial: Callable) -> bool:
    """Run ``step(item)`` for each item of ``steps``, checkpointing periodically.

    After each step a :class:`PeriodicCheckpoint` saves ``partial()`` (the draws so far)
    when due.  Ctrl-C ends the loop; the progress bar ``prog`` (or None) is closed either
    way.  Returns True when the loop was interrupted.
    """
    interrupted = False
    saver = PeriodicCheckpoint(on_checkpoint, partial)
    try:
        for item in steps:
            step(item)
            saver.tick()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if prog is not None:
            prog.close("interrupted" if interrupted else "")
    return interrupted
