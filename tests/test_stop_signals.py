"""`tfbot serve`'s signal handling (bot/ops/stop_signals.py), in this process: real signals sent to itself."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from bot.ops.stop_signals import StopSignals

pytestmark = pytest.mark.unit


@pytest.fixture
def signals():
    installed = StopSignals().install()
    yield installed
    installed.close()


def test_a_signal_ends_the_wait_at_once_and_is_counted(signals) -> None:
    started = time.monotonic()
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert signals.wait(30) == 1
    assert time.monotonic() - started < 5
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C counts the same; it came before the wait, which ends at once
    started = time.monotonic()
    assert signals.wait(30) == 2 and time.monotonic() - started < 1


def test_the_handler_takes_no_lock_the_interrupted_thread_may_hold(signals) -> None:
    """The main thread inside an Event's lock (as within `Event.wait`) when the signal comes: a handler that set
    that Event would wait for its own thread forever. This one only counts."""
    event = threading.Event()
    with event._cond:  # what Event.wait holds for a few bytecodes around its sleep
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at one of these bytecode boundaries
            pass
    assert signals.count == 1 and not event.is_set()


def test_close_puts_back_what_was_there() -> None:
    before = signal.getsignal(signal.SIGTERM)
    installed = StopSignals().install()
    assert signal.getsignal(signal.SIGTERM) != before
    installed.close()
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.set_wakeup_fd(-1) == -1  # no wakeup fd left behind
