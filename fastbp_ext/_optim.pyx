# cython: language_level=3, cdivision=True
"""Kernels of fastbp: in-place SGD and Adam updates, dense and row-sparse."""

__all__ = []
