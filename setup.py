"""Build the fastbp_ext Cython kernels. Metadata lives in pyproject.toml.

Set FASTBP_BOUNDSCHECK=1 when building to compile the kernels with bounds and
wrap-around checks on (for hunting memory errors; slower).
"""

import os
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

debug_checks = os.environ.get("FASTBP_BOUNDSCHECK", "0") not in ("", "0")

# -fno-trapping-math: lets GCC vectorise loops with comparisons (relu, masks); it changes
# no result (NaN/Inf propagate as before), only which FP exception flags may be raised.
# -fno-math-errno: sqrt() becomes the sqrt instruction (no errno path), so loops that
# take square roots (Adam) vectorise; results are the same correctly rounded values, and
# no kernel reads errno.
compile_args = ["-O3", "-fno-trapping-math", "-fno-math-errno"]
link_args = []
if sys.platform.startswith("linux"):
    compile_args += ["-fopenmp"]
    link_args += ["-fopenmp"]

# One extension module per kernel kind (``fastbp_ext/_<kind>.pyx``); they share the C
# layer declared in ``_common.pxd`` / ``_blas.pxd`` / ``_simd.pxd``.
extensions = [
    Extension(
        f"fastbp_ext.{path.stem}",
        [str(path)],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        include_dirs=[numpy.get_include(), "fastbp_ext"],  # numpy's C API, _simd.h
        libraries=["m"],  # libm (and, through its linker script, glibc's libmvec)
        # NPY_TARGET_VERSION 1.22: the NEP 49 memory-handler API used by compiled plans
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("NPY_TARGET_VERSION", "NPY_1_22_API_VERSION")],
    )
    for path in sorted(Path("fastbp_ext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": debug_checks,
            "wraparound": debug_checks,
            "initializedcheck": debug_checks,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
