"""Shared fixtures: every engine test runs on both backends."""

import os

import numpy as np
import pytest

import fastbp as fb


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_source_tree(tmp_path_factory):
    """Run every test (and the subprocesses tests start) from a scratch directory, so
    that ``python -m fastbp`` imports the installed package, never the source checkout
    (whose ``fastbp_ext`` has no compiled module after a plain ``pip install .``)."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)


@pytest.fixture(params=["cython", "numpy"])
def backend(request):
    """Run the test body with the given backend selected."""
    with fb.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
