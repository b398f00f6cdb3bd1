# cython: language_level=3, cdivision=True
"""Kernels of fastbp: BLAS products: gemm, gemv, ger, dot, scale, linear."""

__all__ = []
