"""Single source of the version; providers move in lockstep with it."""

__version__ = "0.1.0"
