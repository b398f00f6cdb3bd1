# cython: language_level=3, cdivision=True
"""Kernels of fastbp: tanh, sigmoid, relu and their backprops, fused bias+activation, dropout masks."""

__all__ = []
