"""Shared fixtures: every engine test runs on both backends."""

import os
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_source_tree(tmp_path_factory):
    """Run every test (and the subprocesses tests start) from a scratch directory, so
    that ``python -m fastbp`` imports the installed package, never the source checkout
    (whose ``fastbp_ext`` has no compiled module after a plain ``pip install .``)."""
    old = os.getcwd()
    old_path = os.environ.get("PYTHONPATH")
    package_root = Path(fb.__file__).resolve().parents[1]
    if (package_root / "setup.py").exists():
        # Developing in a checkout with the kernels built in place: children import the
        # same checkout that this process imported.
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), old_path]))
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)
    if old_path is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_path


@pytest.fixture(params=["cython", "numpy"])
def backend(request):
    """Run the test body with the given backend selected."""
    with fb.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
