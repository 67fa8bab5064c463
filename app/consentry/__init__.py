"""Consentry: consent-first, on-device face recognition for a Raspberry Pi."""

__version__ = "0.1.0"
