import pytest

from diffguide.solvers.run import set_progress


@pytest.fixture(autouse=True)
def _quiet_progress():
    set_progress(False)
    yield
    set_progress(True)
