"""Neckline: open, local-first neck-posture sensing for people with headaches."""

__version__ = "0.1.0"
