# cython: language_level=3
"""What the plan optimiser (``_plan.pyx``) needs to know about the elementwise kernels."""

from fastbp_ext._common cimport Call, Kernel

cdef bint row_bias(const Kernel* k, const Call* c, Py_ssize_t* n, Py_ssize_t* m) noexcept nogil
"""Is ``k``, ``c`` a recorded ``add_bias`` call ``Z = X + b`` (beta 0) with ``X`` a C-contiguous
``(n, m)`` array and ``b`` a contiguous ``(m,)`` vector broadcast over its rows? Sets
``n`` and ``m`` when it is."""
