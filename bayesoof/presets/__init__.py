"""Declarative presets (telescopes, priors, fit configurations) read as package resources."""
