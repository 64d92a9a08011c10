"""Beam-map data: containers, FITS readers and writers, noise estimates."""

from bayesoof.data.containers import (
    SPEED_OF_LIGHT,
    BeamMap,
    BeamMaps,
    DataError,
    RegularGrid,
    regular_grid,
)

__all__ = ["SPEED_OF_LIGHT", "BeamMap", "BeamMaps", "DataError", "RegularGrid", "regular_grid"]
