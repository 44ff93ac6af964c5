"""Child-process helpers shared by the supervisor and the Terraform adapter."""
from __future__ import annotations

import ctypes
import signal
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., Any] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None  # not Linux


# Resolved once, in the parent: the child between fork and exec must not import or take Python-level locks,
# since another thread of the parent may have held them at the fork.
_prctl = _load_prctl()


def stop_with_parent() -> None:
    """In a child, before exec: ask Linux to SIGTERM it when the process that started it dies.

    A worker killed mid-run (SIGKILL, OOM) must not leave Terraform applying with nobody to report the
    outcome, nor a supervisor killed with SIGKILL leave its workers running unsupervised; on SIGTERM
    Terraform stops cleanly and releases its state lock, and a worker finishes its job and exits.
    Elsewhere the run-guard expiry and the interrupted-run report still apply.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
