"""Unit tests run single-threaded: their tensors are tiny, and on a busy 2-core machine torch's thread pool costs
far more than it saves (a tiny addmm: ~2 ms with 2 threads against ~6 µs with 1)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
