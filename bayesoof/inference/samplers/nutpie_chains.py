"""nutpie's chains one sampler each, run in this process's threads or in worker processes.

Every chain ``c`` is its own nutpie sampler seeded from ``(seed, c)`` and started at
``z ~ N(0, jitter² I)`` drawn from ``(seed, c)``, so a chain's draws depend on the run's
seed and its index only -- not on how the chains are spread over threads or processes
(``processes=1`` and ``processes=2`` give the same draws).

Why processes: the chains call the C-compiled density, whose thunks hold Python's GIL;
since the lattice DFT's fold, four chain threads in one process make no more gradients
per second than one (bench/RESULTS.md "Both cores").  Worker processes (forked from this
one after the density is compiled, so nothing is compiled or imported again) each run
their share of the chains; this process collects what they drew every :data:`POLL_S` s,
applies the ``stop`` rule on the first n draws of every chain, saves checkpoints, and on
Ctrl-C (the workers ignore SIGINT) stops them and keeps what every chain drew.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
import warnings

import numpy as np

__all__ = ["POLL_S", "chain_seed", "default_processes", "run_chains"]

#: seconds between two looks at the running chains (a look reads nutpie's arrow trace:
#: ~1 ms per chain, no ArviZ)
POLL_S = 1.0
#: the per-draw statistics read from nutpie's trace (nutpie's names)
_STATS = ("diverging", "n_steps", "depth", "energy", "logp", "mean_tree_accept",
          "step_size", "maxdepth_reached")


def chain_seed(seed: int, chain: int) -> int:
    """nutpie's seed (u64) of chain ``chain`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed) % 2**63, int(chain)]).generate_state(
        1, np.uint64)[0])


def default_processes(chains: int) -> int:
    """Worker processes for ``chains`` chains (1: threads of this process).

    One per chain when this machine has more than one core and can fork safely (no JAX
    runtime started in this process), else 1.  Also 1 inside a daemonic process (which may
    have no children) or a Dask worker (a batch already runs one posterior per core).
    """
    from bayesoof.inference.density import jax_initialised

    if (os.cpu_count() or 1) < 2 or chains < 2 or jax_initialised() or \
            "fork" not in multiprocessing.get_all_start_methods() or \
            multiprocessing.current_process().daemon or _in_dask_worker():
        return 1
    return chains


def _in_dask_worker() -> bool:
    if "distributed" not in sys.modules:
        return False
    try:
        sys.modules["distributed"].get_worker()
    except (ValueError, AttributeError):
        return False
    return True


# ------------------------------------------------------------------ chains in one process
class _Chains:
    """nutpie samplers of some chains of a run, in the background threads of this process."""

    def __init__(self, fn, dim, chains, *, draws, tune, seed, jitter, target_accept,
                 max_tree_depth):
        import nutpie
        from nutpie.compiled_pyfunc import from_pyfunc

        def make_logp_fn():
            f = fn.copy()  # PyTensor functions keep their buffers: one per chain

            def logp(z):
                lp, g = f(np.asarray(z, float))
                lp = float(lp)
                return (lp if np.isfinite(lp) else -np.inf), np.ascontiguousarray(g, float)

            return logp

        def expand(seed1, seed2, chain):
            return lambda z: {"z": np.array(z, dtype=np.float64)}

        self.chains = list(chains)
        self.samplers = {}
        for c in self.chains:
            start = np.random.default_rng([int(seed), int(c)]).normal(0.0, jitter, dim)
            model = from_pyfunc(dim, make_logp_fn, expand, [np.dtype("float64")], [(dim,)],
                                ["z"], make_initial_point_fn=lambda _s, _x=start: _x.copy())
            self.samplers[c] = nutpie.sample(
                model, draws=draws, tune=tune, chains=1, cores=1, seed=chain_seed(seed, c),
                progress_bar=False, init_mean=np.zeros(dim), save_warmup=True,
                target_accept=target_accept, maxdepth=max_tree_depth, blocking=False,
                return_raw_trace=True)
        self.final: dict = {}

    def finished(self) -> bool:
        return all(c in self.final or _finished(s) for c, s in self.samplers.items())

    def look(self) -> dict:
        """chain -> its trace so far (:func:`_trace`)."""
        out = {}
        for c, s in self.samplers.items():
            out[c] = self.final[c] if c in self.final else _trace(s._sampler.inspect())
        return out

    def end(self, abort: bool) -> dict:
        """Stop (``abort``) or wait for every chain; chain -> its final trace."""
        for c, s in self.samplers.items():
            if c not in self.final:
                if abort:
                    s._sampler.abort()
                else:
                    s._sampler.wait(None)
                self.final[c] = _trace(s._sampler.take_results())
        return dict(self.final)


def _finished(sampler) -> bool:
    """Whether a nutpie background sampler is done (0.16 raises TimeoutError while it runs)."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


def _column(batch, name):
    import pyarrow

    return pyarrow.array(batch.column(name))


def _trace(results) -> dict:
    """One chain's raw nutpie results as arrays.

    ``z`` (n, d) and ``stats`` (name -> (n,)) of the kept (post-warm-up) draws so far,
    ``n_grad_warmup`` / ``n_grad`` the gradients of the warm-up / of everything so far,
    ``iterations`` the warm-up and kept iterations done.
    """
    draws, stats = results.get_arrow_trace()
    if not draws or draws[0].num_rows == 0:
        return {"z": None, "stats": {}, "n_grad_warmup": 0, "n_grad": 0, "iterations": 0}
    db, sb = draws[0], stats[0]
    tuning = _column(sb, "tuning").to_numpy(zero_copy_only=False).astype(bool)
    n_steps = _column(sb, "n_steps").to_numpy(zero_copy_only=False).astype(np.int64)
    rows = db.num_rows
    z = _column(db, "z").flatten().to_numpy(zero_copy_only=False).reshape(rows, -1)
    keep = ~tuning
    return {
        "z": np.array(z[keep], float),
        "stats": {k: np.array(_column(sb, k).to_numpy(zero_copy_only=False))[keep]
                  for k in _STATS if k in sb.column_names},
        "n_grad_warmup": int(n_steps[tuning].sum()),
        "n_grad": int(n_steps.sum()),
        "iterations": int(rows),
    }


# ------------------------------------------------------------------ worker processes
def _worker(conn, fn, dim, chains, settings) -> None:
    """A worker process: run ``chains`` and report to the parent through ``conn``.

    Sends ``("look", traces)`` every :data:`POLL_S` s and ``("final", traces)`` at the end
    or on the parent's "stop"; ``("error", traceback)`` if anything fails.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    group = None
    try:
        group = _Chains(fn, dim, chains, **settings)
        while True:
            if conn.poll(POLL_S):
                conn.recv()  # "stop"
                conn.send(("final", group.end(abort=True)))
                return
            if group.finished():
                conn.send(("final", group.end(abort=False)))
                return
            conn.send(("look", group.look()))
    except (EOFError, BrokenPipeError, OSError):  # the parent is gone
        if group is not None:
            group.end(abort=True)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            conn.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass


class _Workers:
    """The chains spread over forked worker processes (round robin)."""

    def __init__(self, fn, dim, chains, processes, settings):
        ctx = multiprocessing.get_context("fork")
        self.conns, self.procs, self.done = [], [], []
        for w in range(processes):
            mine = list(range(w, chains, processes))
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, fn, dim, mine, settings), daemon=True,
                            name=f"bayesoof-nutpie-{w}")
            with warnings.catch_warnings():
                # JAX imported but not started (default_processes checks): no threads to lose
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                                        category=RuntimeWarning)
                p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
            self.done.append(False)
        self.traces: dict = {}

    def _receive(self, i) -> None:
        try:
            kind, payload = self.conns[i].recv()
        except EOFError:
            self.done[i] = True
            raise RuntimeError(f"nutpie worker process {i} ended without its draws "
                               f"(exit code {self.procs[i].exitcode})") from None
        if kind == "error":
            self.done[i] = True
            raise RuntimeError(f"nutpie worker process {i} failed:\n{payload}")
        self.traces.update(payload)
        if kind == "final":
            self.done[i] = True

    def update(self, timeout: float) -> bool:
        """Take the workers' news (waiting up to ``timeout`` s); True when all are done."""
        from multiprocessing.connection import wait

        live = [c for c, d in zip(self.conns, self.done, strict=True) if not d]
        for conn in wait(live, timeout=timeout) if live else []:
            self._receive(self.conns.index(conn))
        return all(self.done)

    def end(self) -> None:
        """Stop every worker still running and take its final draws."""
        for i, conn in enumerate(self.conns):
            if not self.done[i]:
                try:
                    conn.send("stop")
                except (BrokenPipeError, OSError):
                    self.done[i] = True
        try:
            while not all(self.done):
                self.update(POLL_S)
        finally:
            self.close()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()


class _Local:
    """The chains in this process's threads, behind the interface of :class:`_Workers`."""

    def __init__(self, fn, dim, chains, settings):
        self.group = _Chains(fn, dim, range(chains), **settings)
        self.traces: dict = {}

    def update(self, timeout: float) -> bool:
        if not self.group.finished():
            time.sleep(timeout)
        done = self.group.finished()
        self.traces.update(self.group.end(abort=False) if done else self.group.look())
        return done

    def end(self) -> None:
        self.traces.update(self.group.end(abort=True))

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ the run
def _arrays(traces: dict, chains: int):
    """(z (chains, n, d), stats (chains, n)) of the draws EVERY chain has made, or None."""
    got = [traces.get(c) for c in range(chains)]
    if any(t is None or t["z"] is None for t in got):
        return None, {}
    n = min(t["z"].shape[0] for t in got)
    z = np.stack([t["z"][:n] for t in got])
    names = set.intersection(*(set(t["stats"]) for t in got))
    return z, {k: np.stack([t["stats"][k][:n] for t in got]) for k in names}


def run_chains(fn, dim: int, *, draws: int, tune: int, chains: int, seed: int, jitter: float,
               target_accept: float, max_tree_depth: int, processes: int, stop=None,
               on_checkpoint=None, progressbar=False, probe=None):
    """Run ``chains`` nutpie chains on ``fn`` (``z -> (logp, dlogp)``).

    ``processes``: worker processes the chains are spread over (1: threads of this process).
    ``max_tree_depth``: nutpie's ``maxdepth`` (at most 2**depth leapfrog steps per draw).
    ``probe``: ``(n, ok)``: once every chain has ``n`` draws, ``ok(z[:, :n])`` is asked
    once; False ends the run there (the caller starts another, e.g. with longer trees).

    ``stop``: a :class:`~bayesoof.inference.samplers.base.StopRule`, asked at its checks
    (in order, on the first n draws of every chain); the run ends at the first that
    passes.  ``on_checkpoint``: called with ``(z, stats, counts)`` of the draws so far
    every checkpoint interval.  Ctrl-C stops every chain and keeps what it drew.

    Returns ``(z, stats, counts, keep, interrupted, probe_ok)``: ``z`` (chains, n, d) and ``stats``
    (nutpie's names -> (chains, n)) of the draws every chain made (``z`` None: none),
    ``counts`` (gradients of the warm-up, ``n_grad_warmup``, and in all, ``n_grad``),
    ``keep`` the first converged check (None: none passed, or no rule) and
    ``interrupted`` whether Ctrl-C ended the run, ``probe_ok`` the probe's answer (True
    without a probe, or when the run ended before it was asked).
    """
    from bayesoof.inference.samplers.base import PeriodicCheckpoint, progress_bar

    settings = {"draws": int(draws), "tune": int(tune), "seed": int(seed),
                "jitter": float(jitter), "target_accept": float(target_accept),
                "max_tree_depth": int(max_tree_depth)}
    checks = stop.checks(draws) if stop is not None else []
    prog = progress_bar(progressbar, f"nutpie NUTS, {chains} chains", chains * (tune + draws))
    pool = (_Workers(fn, dim, chains, processes, settings) if processes > 1
            else _Local(fn, dim, chains, settings))
    saver = PeriodicCheckpoint(on_checkpoint, lambda: (
        *_arrays(pool.traces, chains), _counts(pool.traces)))
    keep, interrupted, done, probe_ok = None, False, False, True
    try:
        while not done and keep is None:
            done = pool.update(POLL_S)
            z, stats = _arrays(pool.traces, chains)
            if probe is not None and z is not None and z.shape[1] >= probe[0]:
                probe_ok, probe = bool(probe[1](z[:, :probe[0]])), None
                if not probe_ok:
                    break
            while checks and z is not None and checks[0] <= z.shape[1]:
                n = checks.pop(0)
                lp = {"lp": stats["logp"][:, :n]} if "logp" in stats else {}
                if stop.converged(z[:, :n], lp):
                    keep = n
                    break
            if prog is not None:
                it = sum(t["iterations"] for t in pool.traces.values())
                prog.update(it, "warm-up" if it < chains * tune else "sampling")
            saver.tick()
        if not done:
            pool.end()
    except KeyboardInterrupt:
        interrupted = True
        pool.end()
    finally:
        pool.close()
        if prog is not None:
            prog.close("interrupted" if interrupted else "")
    z, stats = _arrays(pool.traces, chains)
    return z, stats, _counts(pool.traces), keep, interrupted, probe_ok


def _counts(traces: dict) -> dict:
    return {"n_grad_warmup": sum(t["n_grad_warmup"] for t in traces.values()),
            "n_grad": sum(t["n_grad"] for t in traces.values())}
