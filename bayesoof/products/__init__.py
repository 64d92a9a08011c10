"""Products of a fit or a posterior: phase and surface maps, rms, Ruze efficiency."""

from bayesoof.products.maps import (
    PhaseMap,
    aperture_statistics,
    phase_map,
    plain_rms,
    surface_um,
    weighted_rms,
)

__all__ = ["PhaseMap", "aperture_statistics", "phase_map", "plain_rms", "surface_um",
           "weighted_rms"]
