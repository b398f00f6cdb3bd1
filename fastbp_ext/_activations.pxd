# cython: language_level=3
"""What the plan optimiser (``_plan.pyx``) needs to know about the activation kernels."""

from fastbp_ext._common cimport Kernel

cdef const Kernel* bias_act_kernel() noexcept nogil
"""The fused ``Y = f(X + b)`` kernel (``bias_act``)."""

cdef int act_code(const Kernel* k) noexcept nogil
"""The ``bias_act`` activation code of a forward activation kernel (``tanh``,
``sigmoid``, ``relu``), or 0 for any other kernel."""
