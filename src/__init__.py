"""MOSAIC: the study-submission backend."""

__version__ = "0.1.0"
