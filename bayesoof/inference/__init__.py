"""Inference layer: likelihood, parameter space, quick fit, PyMC model and samplers."""
