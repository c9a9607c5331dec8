"""The package version, kept apart so that setup.cfg can read it without importing Keras."""

__all__ = ["__version__"]

__version__ = "0.1.0"
