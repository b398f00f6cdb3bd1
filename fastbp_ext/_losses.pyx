# cython: language_level=3, cdivision=True
"""Kernels of fastbp: fused softmax cross-entropy and sigmoid binary cross-entropy."""

__all__ = []
