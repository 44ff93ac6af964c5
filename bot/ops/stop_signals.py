"""SIGTERM and Ctrl-C counted without taking a lock, for a process's main loop: `tfbot serve`'s supervisor and
the RQ scheduler process a worker starts (bot/ops/worker.py `WakingScheduler`).

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread holds the lock
inside a `threading.Event` it is waiting on; a handler calling `Event.set()` on that event then waits for a lock
its own thread holds, and the process never stops. So the handler only counts, and `signal.set_wakeup_fd`
(written by the interpreter's C-level handler, which takes no lock) wakes the main loop's `select`; the loop then
acts in ordinary code (serve sets its events).
"""
from __future__ import annotations

import os
import select
import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """How many SIGTERM/SIGINT the process has had since `install` (`count`), and a wait that ends at the next.

    Main thread only (Python allows signal handlers nowhere else). `close` puts back the handlers and the wakeup
    fd that were there before.
    """

    def __init__(self) -> None:
        self.count = 0
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self._previous: list[tuple[int, object]] = []
        self._previous_fd = -1

    def install(self) -> "StopSignals":
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous = [(signum, signal.signal(signum, self._on_signal)) for signum in STOP_SIGNALS]
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1  # nothing else: no lock, no I/O (see the module's docstring)

    def wait(self, timeout: float) -> int:
        """Wait up to `timeout` seconds, or until a signal comes (one already come ends it at once); return
        `count`."""
        if select.select([self._read], [], [], max(timeout, 0.0))[0]:
            try:
                while os.read(self._read, 512):
                    pass
            except BlockingIOError:
                pass
        return self.count

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous:
            signal.signal(signum, handler)  # type: ignore[arg-type]
        os.close(self._read)
        os.close(self._write)
