import brian2
import pytest


@pytest.fixture
def numpy_target():
    """Run Brian2 code with the numpy target (no compilation) inside one test."""
    old = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    yield
    brian2.prefs.codegen.target = old
