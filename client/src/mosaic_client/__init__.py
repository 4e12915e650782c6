"""MOSAIC's command-line client: `mosaic --help`."""

__version__ = "0.1.0"
