"""The one residual definition shared by the quick fit, the PyMC model and emcee.

Each map i is modelled as ``data = a_i · P_i(u, v; θ) + b_i + noise`` with a per-map
amplitude a_i and offset b_i (both in the data's power units) and P_i the normalised
power of :meth:`bayesoof.physics.forward.ForwardModel.power`.  The standardised residual is
``(data - model) / σ`` with σ the per-sample noise (same units as the data).
"""

from __future__ import annotations

import pytensor.tensor as pt

__all__ = ["predict", "standardized_residuals", "pyoof_normalised_residuals"]


def predict(forward, K, illum: dict, amp, offset, pointing=None):
    """Model beam values a_i P_i + b_i at every sample (tensor, data units).

    ``amp`` and ``offset`` are (n_maps,) tensors; the rest as in ``ForwardModel.power``.
    """
    power = forward.power(K, illum, pointing)
    idx = forward.map_index
    return pt.as_tensor_variable(amp)[idx] * power + pt.as_tensor_variable(offset)[idx]


def standardized_residuals(model, observed, sigma):
    """(observed - model) / σ, elementwise (tensor)."""
    return (observed - model) / sigma


def pyoof_normalised_residuals(power, observed, map_slices):
    """pyoof's residual: min-max normalised data minus min-max normalised model, per map.

    For comparison with pyoof only (no noise weighting; not a likelihood).
    """
    parts = []
    for sl in map_slices:
        p, d = power[sl], observed[sl]
        pn = (p - pt.min(p)) / (pt.max(p) - pt.min(p))
        dn = (d - d.min()) / (d.max() - d.min())
        parts.append(dn - pn)
    return pt.concatenate(parts)
