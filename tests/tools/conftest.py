import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Tiny runs are faster on one thread, and sweep tests share the CPU with worker processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
