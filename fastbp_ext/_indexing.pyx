# cython: language_level=3, cdivision=True
"""Kernels of fastbp: strided copies, gathers and their scatter-add adjoints, concatenation."""

__all__ = []
