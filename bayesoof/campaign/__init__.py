"""Campaigns of many observations: batch fits, gravity model, order, actuator commands.

Modules (each imported on first use; ``import bayesoof.campaign`` loads nothing heavy):

* :mod:`~bayesoof.campaign.dask_batch` quick fit / posterior of many files on dask.distributed
  (``bayesoof.campaign.batch``; the module is not called ``batch`` so that the name
  stays the function)
* :mod:`~bayesoof.campaign.table`      the campaign table (CSV and netCDF) and its reader
* :mod:`~bayesoof.campaign.gravity`    K(el) = A sin(el) + B cos(el) + C with learned scatter
* :mod:`~bayesoof.campaign.order`      Zernike order chosen by the Laplace evidence, GBT checks
* :mod:`~bayesoof.campaign.actuators`  phase → actuator displacements with sd, LUT formats
* :mod:`~bayesoof.campaign.simulate`   simulated campaigns with a known gravity model
"""

from __future__ import annotations

from bayesoof._lazy import lazy_getattr

_LAZY = {
    "batch": "bayesoof.campaign.dask_batch",
    "fit_gravity": "bayesoof.campaign.gravity",
    "select_order": "bayesoof.campaign.order",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
