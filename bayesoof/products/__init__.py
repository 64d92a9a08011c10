"""Product maths of a fit or a posterior, in one place (no inference imported here).

* :mod:`bayesoof.products.grid` -- the one aperture display grid;
* :mod:`bayesoof.products.maps` -- K → phase and surface maps (Laplace sd, posterior
  per-pixel mean, sd and interval);
* :mod:`bayesoof.products.rms` -- rms phase, surface rms and Ruze efficiency: the
  illumination-weighted definition, the plain disc rms by name.
"""

from bayesoof.products.grid import DisplayGrid, display_grid
from bayesoof.products.maps import (
    PhaseMap,
    phase_draws,
    phase_map,
    phase_map_stats,
    surface_um,
)
from bayesoof.products.rms import (
    aperture_statistics,
    plain_rms,
    rms_draws,
    rms_summary,
    weighted_rms,
)

__all__ = [
    "DisplayGrid",
    "PhaseMap",
    "aperture_statistics",
    "display_grid",
    "phase_draws",
    "phase_map",
    "phase_map_stats",
    "plain_rms",
    "rms_draws",
    "rms_summary",
    "surface_um",
    "weighted_rms",
]
