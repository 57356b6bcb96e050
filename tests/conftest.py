import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests check numbers, not speed: one thread avoids oversubscribing small CI machines,
    where 2-thread kernels on tiny tensors run many times slower."""
    torch.set_num_threads(1)
