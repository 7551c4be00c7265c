import pytest
import torch

from diffguide.solvers.run import set_progress


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded():
    """No progress bars; one thread: the tests' small models run fastest and steadiest on it."""
    threads = torch.get_num_threads()
    set_progress(False)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    set_progress(True)


def pytest_collection_modifyitems(items):
    """Every test that runs on CUDA (its name or parameters say ``cuda``) carries the ``gpu`` marker,
    so ``pytest -m gpu`` runs exactly the device tests on a GPU machine."""
    for item in items:
        if "cuda" in item.nodeid.lower():
            item.add_marker(pytest.mark.gpu)
