"""Child-process helpers shared by the supervisor and the Terraform adapter."""
from __future__ import annotations

import signal


def stop_with_parent() -> None:
    """In a child, before exec: ask Linux to SIGTERM it when the process that started it dies.

    A worker killed mid-run (SIGKILL, OOM) must not leave Terraform applying with nobody to report the
    outcome, nor a supervisor killed with SIGKILL leave its workers running unsupervised; on SIGTERM
    Terraform stops cleanly and releases its state lock, and a worker finishes its job and exits.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: run-guard expiry and the interrupted-run report still apply
