"""What one test leaves in the pytest process does not reach the tests after it."""

from __future__ import annotations

import signal


def test_a_library_installs_a_sigchld_handler_for_good() -> None:
    # As torch's DataLoader does the first time a loader with workers starts (see conftest).
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    assert callable(signal.getsignal(signal.SIGCHLD))


def test_the_next_test_finds_sigchld_as_the_run_started_it() -> None:
    # test/conftest.py took the handler back after the test above (in file order).
    assert signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL
