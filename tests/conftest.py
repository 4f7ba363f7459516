"""Test-session settings.

Brian2's code-generation target for the whole test session is numpy unless the environment
variable ``ASTRO_TEST_TARGET`` names another (``cython``). On a fresh machine the cython target
compiles every distinct code object once (several seconds each, hundreds across the suite), while
the small circuits of the tests run about as fast on numpy; the compiled path is covered by
``test_circuit.py::test_cython_target_matches_rate_ideal`` (slow) and by the C++ standalone tests.
"""

import os

import brian2
import pytest

TARGET = os.environ.get("ASTRO_TEST_TARGET", "numpy")


@pytest.fixture(autouse=True, scope="session")
def codegen_target():
    old = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = TARGET
    yield TARGET
    brian2.prefs.codegen.target = old


@pytest.fixture
def cython_target():
    """Run Brian2 code with the compiled cython target inside one test."""
    old = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "cython"
    yield
    brian2.prefs.codegen.target = old


@pytest.fixture(scope="session")
def model():
    """The all-MiniLM-L6-v2 NumPy model (``transformer.minilm``); skips the test where the model's
    package is not installed."""
    from transformer.minilm import MiniLMUnavailable, load_model

    try:
        return load_model()
    except MiniLMUnavailable as exc:
        pytest.skip(f"all-MiniLM-L6-v2 not usable: {exc}")
