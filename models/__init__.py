"""Declarative presets (telescopes, priors, fit configurations), installed as ``bayesoof.models``."""
