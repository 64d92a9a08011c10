"""Physics layer: pure NumPy/PyTensor functions of the OOF forward model (no PyMC)."""
