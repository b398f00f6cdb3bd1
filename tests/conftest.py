"""Shared fixtures: every engine test runs on both backends."""

import numpy as np
import pytest

import fastbp as fb


@pytest.fixture(params=["cython", "numpy"])
def backend(request):
    """Run the test body with the given backend selected."""
    with fb.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
