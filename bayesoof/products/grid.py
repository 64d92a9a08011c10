"""The one aperture display grid of every phase and surface map (fit, posterior, plots)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DisplayGrid", "display_grid"]


@dataclass(frozen=True)
class DisplayGrid:
    """Square grid over the dish: ``x = y = linspace(-R, R, n)``; ``[i, j]`` at ``(x[j], y[i])``.

    Attributes
    ----------
    x : ndarray (n,)
        Pixel centres along x and y, m (the rim pixels lie on ±R).
    rho, theta : ndarray (n, n)
        Normalised radius r / R and azimuth (rad) of each pixel.
    inside : ndarray (n, n) of bool
        Pixels on the dish (r <= R); maps are NaN elsewhere.
    """

    x: np.ndarray
    rho: np.ndarray
    theta: np.ndarray
    inside: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """Pixel centres along y, m (a copy of ``x``)."""
        return self.x.copy()


def display_grid(radius: float, n: int = 101) -> DisplayGrid:
    """The display grid of ``n`` × ``n`` pixels spanning the diameter of a dish of ``radius`` m."""
    axis = np.linspace(-radius, radius, int(n))
    X, Y = np.meshgrid(axis, axis, indexing="xy")  # [i, j] = (x[j], y[i])
    rho = np.hypot(X, Y) / radius
    return DisplayGrid(axis, rho, np.arctan2(Y, X), rho <= 1.0 + 1e-12)
