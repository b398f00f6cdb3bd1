"""Compiled kernels of fastbp (Cython, BLAS through scipy.linalg.cython_blas).

The extension module is :mod:`fastbp_ext._kernels`; :mod:`fastbp.backends.cython_ops`
wraps it as the ``"cython"`` backend. Importing this package does not import the
extension, so ``fastbp`` keeps working (numpy backend) when it was not built; importing
``fastbp_ext._kernels`` directly fails with a message saying how to build it.
"""

__all__ = ["load_kernels"]


def load_kernels():
    """Import and return :mod:`fastbp_ext._kernels`.

    Raises
    ------
    ImportError
        If the extension was not built, with a message saying how to build it.
    """
    try:
        from . import _kernels
    except ImportError as exc:
        raise ImportError(
            "fastbp_ext._kernels is not built (or cannot be loaded): install fastbp with "
            "`pip install .` (needs a C compiler), or in a source checkout run "
            "`python setup.py build_ext --inplace`. Original error: " + str(exc)
        ) from exc
    return _kernels
