"""What one test leaves in the pytest process does not reach the tests after it."""

from __future__ import annotations

import signal

import torch


def test_a_loader_with_workers_installs_torchs_sigchld_handler() -> None:
    batches = iter(torch.utils.data.DataLoader(list(range(8)), num_workers=1))
    next(batches)
    del batches
    handler = signal.getsignal(signal.SIGCHLD)
    assert callable(handler) and handler.__module__.startswith('torch.')


def test_the_next_test_finds_sigchld_as_the_run_started_it() -> None:
    # test/conftest.py took the handler back after the test above (in file order).
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
