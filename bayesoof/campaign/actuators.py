"""Active-surface commands with uncertainty: phase → actuator displacements, look-up tables.

The phase correction is linear in K: at actuator a (mapped onto the primary at ρ_a, θ_a by
the preset's ``[actuators]``, :mod:`bayesoof.physics.actuators`)::

    d_a = sign · φ(ρ_a, θ_a) λ / (4π) = sign · (λ / 2) Σ_j K_j U_j(ρ_a, θ_a)     (K in waves)

i.e. ``d = M K`` with M in µm per wave; so ``cov(d) = M cov(K) Mᵀ`` (Laplace) or d is
evaluated on every posterior draw.  On-axis approximation (no normal-displacement
factor), as pyoof's Effelsberg actuator code.  Piston and tilts are left out by default:
piston does nothing and tilts are pointing, which the pointing model corrects.

Formats:

* ``effelsberg``: pyoof's look-up table text, one line per actuator ``NR <k> ffff`` and the
  integer displacements in µm at the preset's ``lookup_elevations``, closed by
  ``**ENDE**``; a companion file with the sd in the same layout.
* ``gbt``: Zernike coefficients in microns of surface in the GBT active-surface order and
  sign (:func:`bayesoof.physics.zernike.osa_to_gbt`), with sd.
* ``table``: CSV, one row per actuator (number, x, y in m) with displacement and sd in µm
  per elevation.

Displacements beyond the preset's ``limit`` are clipped to it with an
:class:`ActuatorLimitWarning` naming how many and the largest.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field

import numpy as np

from bayesoof.physics import zernike
from bayesoof.physics.actuators import Actuators

__all__ = [
    "ActuatorLimitWarning",
    "SurfaceCommand",
    "command_from_draws",
    "command_from_gaussian",
    "displacement_matrix",
    "effelsberg_lookup_text",
    "gbt_text",
    "table_text",
]


class ActuatorLimitWarning(UserWarning):
    """Some displacements exceed the actuators' range and were clipped."""


def displacement_matrix(act: Actuators, nl, wavelength: float, include_tilt: bool = False):
    """M (n_actuators, J), µm of displacement per wave of K; ``wavelength`` in m."""
    order = max(n for n, _ in nl)
    rho, theta = act.aperture_polar()
    U = zernike.zernike_basis(order, rho, theta)[:, : len(nl)]
    keep = np.array([n >= 2 or (include_tilt and n == 1) for n, _ in nl], float)
    return act.sign * U * keep * wavelength / 2.0 * 1e6


@dataclass
class SurfaceCommand:
    """Displacements (n_el, n_act) and their sd in µm at ``elevations`` (deg).

    An elevation of NaN means "not elevation-resolved" (a single result).  Displacements
    are clipped to the limit; ``clipped`` marks the clipped entries, ``raw`` keeps them.
    """

    actuators: Actuators
    elevations: np.ndarray
    displacement: np.ndarray
    sd: np.ndarray
    source: str = ""
    clipped: np.ndarray = field(default=None)
    raw: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        self.raw = np.array(self.displacement, float)
        lim = self.actuators.limit * 1e6
        self.clipped = np.abs(self.raw) > lim
        self.displacement = np.clip(self.raw, -lim, lim)
        if self.clipped.any():
            worst = float(np.max(np.abs(self.raw)))
            warnings.warn(
                f"{int(self.clipped.sum())} of {self.raw.size} actuator displacements exceed "
                f"the limit of ±{lim / 1e3:g} mm (largest {worst / 1e3:.3g} mm) and were "
                "clipped to it",
                ActuatorLimitWarning, stacklevel=3,
            )


def command_from_gaussian(act: Actuators, K, cov_K, nl, wavelength: float, elevation=np.nan,
                          include_tilt: bool = False, source: str = "") -> SurfaceCommand:
    """Command of one result: mean M K, sd sqrt(diag(M cov Mᵀ)), at one elevation (deg)."""
    M = displacement_matrix(act, nl, wavelength, include_tilt)
    d = M @ np.asarray(K, float)
    sd = np.sqrt(np.maximum(np.einsum("aj,jk,ak->a", M, np.asarray(cov_K, float), M), 0.0))
    return SurfaceCommand(act, np.atleast_1d(float(elevation)), d[None], sd[None], source)


def command_from_draws(act: Actuators, K_draws, nl, wavelength: float, elevations,
                       include_tilt: bool = False, source: str = "") -> SurfaceCommand:
    """Command from draws of K (n_draws, n_el, J) at ``elevations``: mean and sd over draws."""
    M = displacement_matrix(act, nl, wavelength, include_tilt)
    d = np.einsum("aj,dej->dea", M, np.asarray(K_draws, float))
    return SurfaceCommand(act, np.atleast_1d(np.asarray(elevations, float)), d.mean(axis=0),
                          d.std(axis=0, ddof=1), source)


# ------------------------------------------------------------------ formats
def effelsberg_lookup_text(cmd: SurfaceCommand, values: str = "displacement") -> str:
    """pyoof's look-up-table layout: ``NR k ffff`` then one integer (µm) per elevation."""
    act = cmd.actuators
    if act.n != 96 or not act.lookup_elevations:
        raise ValueError(
            f"the Effelsberg look-up table needs 96 actuators and lookup_elevations in the "
            f"preset's [actuators]; this one has {act.n} and {len(act.lookup_elevations)}"
        )
    vals = getattr(cmd, values)
    if vals.shape[0] == 1:
        vals = np.repeat(vals, len(act.lookup_elevations), axis=0)
    elif not np.allclose(cmd.elevations, act.lookup_elevations):
        raise ValueError("the command is not evaluated at the look-up-table elevations "
                         f"{list(act.lookup_elevations)}")
    lines = [f"NR {k + 1} ffff " + "  ".join(str(int(v)) for v in np.rint(vals[:, k]))
             for k in range(act.n)]
    return "\n".join(lines + ["**ENDE**"]) + "\n"


def table_text(cmd: SurfaceCommand) -> str:
    """CSV: actuator, x_m, y_m, then d and sd (µm) per elevation, and a clipped flag."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    els = ["" if np.isnan(e) else f"{e:g}" for e in cmd.elevations]
    head = ["actuator", "x_m", "y_m"]
    for e in els:
        tag = f"_el{e}" if e else ""
        head += [f"d{tag}_um", f"sd{tag}_um"]
    w.writerow(head + ["clipped"])
    act = cmd.actuators
    for k in range(act.n):
        row = [k + 1, f"{act.x[k]:.6f}", f"{act.y[k]:.6f}"]
        for i in range(len(els)):
            row += [f"{cmd.displacement[i, k]:.3f}", f"{cmd.sd[i, k]:.3f}"]
        w.writerow(row + [int(cmd.clipped[:, k].any())])
    return buf.getvalue()


def gbt_text(rows: list[dict], header: str) -> str:
    """GBT Zernike table: ``k n l`` then columns of values and sd in microns (text)."""
    cols = [c for c in rows[0] if c not in ("k", "n", "l")]
    lines = [f"# {header}", "# k: GBT active-surface index k = n(n+1)/2 + (n+l)/2 + 1; "
             "microns of surface, GBT order and sign", "# " + " ".join(["k", "n", "l"] + cols)]
    for r in rows:
        lines.append(f"{r['k']:3d} {r['n']:2d} {r['l']:+3d} "
                     + " ".join(f"{r[c]:12.4f}" for c in cols))
    return "\n".join(lines) + "\n"


def gbt_rows_gaussian(K, cov_K, nl, wavelength: float) -> list[dict]:
    """GBT coefficients (µm) with sd from K (waves) and its covariance (OSA order)."""
    g = zernike.osa_to_gbt(np.asarray(K, float), wavelength)
    # the converter is a signed permutation times λ/2: sd maps through its absolute value
    g_sd = np.abs(zernike.osa_to_gbt(np.sqrt(np.maximum(np.diag(cov_K), 0.0)), wavelength))
    return _gbt_rows(nl, {"value_um": g, "sd_um": g_sd})


def gbt_rows_draws(draws: dict, nl, wavelength: float) -> list[dict]:
    """GBT coefficients (µm) from draws of K-like arrays {name: (n_draws, J)}: mean, sd."""
    cols = {}
    for name, d in draws.items():
        g = zernike.osa_to_gbt(np.asarray(d, float), wavelength)
        cols[f"{name}_um"] = g.mean(axis=0)
        cols[f"{name}_sd_um"] = g.std(axis=0, ddof=1)
    return _gbt_rows(nl, cols)


def _gbt_rows(nl, cols: dict) -> list[dict]:
    rows = []
    for n, l in nl:
        k = zernike.gbt_index(n, l)
        rows.append({"k": k, "n": n, "l": l} | {c: float(v[k - 1]) for c, v in cols.items()})
    return sorted(rows, key=lambda r: r["k"])
