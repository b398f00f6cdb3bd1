# cython: language_level=3, cdivision=True
"""Kernels of fastbp: embedding window gather, row scatter-add, row coalescing."""

__all__ = []
