# cython: language_level=3, cdivision=True
"""Kernels of fastbp: broadcasting arithmetic (add, sub, mul, div, maximum, minimum), unary math (exp, log, sqrt, power) and their backprops."""

__all__ = []
