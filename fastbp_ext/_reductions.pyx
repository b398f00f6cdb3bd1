# cython: language_level=3, cdivision=True
"""Kernels of fastbp: sums, max, logsumexp, softmax, log_softmax, broadcasting adjoints."""

__all__ = []
