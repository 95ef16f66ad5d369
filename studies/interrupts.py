"""Graceful stops of a study driver, and knowing afterwards that one happened.

Tune stops a run on SIGINT or SIGUSR1: it saves the experiment and returns from
``fit`` as if the run had ended, with the interrupted trials marked TERMINATED
— just like trials ASHA stopped. The driver must tell the two apart (a
cancelled study is resumable; a finished one is not), and Tune does not say.
It does one observable thing, though: its handler, when it fires, puts back
the SIGINT handler that was installed before ``fit``. So the driver installs
:func:`_after_tune_stop` there, and a stop happened exactly when that handler is
back in place. SIGTERM (what ``ray job stop``, Docker and Kubernetes send) is
forwarded as SIGUSR1, so it stops the study the same graceful way.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_sigterm_seen = threading.Event()


def _after_tune_stop(signum: int, frame: FrameType | None) -> None:
    """A second Ctrl+C, after Tune's graceful stop began: stop now."""
    raise KeyboardInterrupt


def _forward_sigterm(signum: int, frame: FrameType | None) -> None:
    _sigterm_seen.set()
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
        raise KeyboardInterrupt  # Tune is not listening yet: stop like a Ctrl+C before the trials start
    os.kill(os.getpid(), signal.SIGUSR1)  # Tune's handler; after fit it only sets a flag nobody waits on


@contextmanager
def graceful_stops() -> Iterator[None]:
    """Install the handlers for one ``fit`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _sigterm_seen.clear()
    previous = signal.signal(signal.SIGINT, _after_tune_stop), signal.signal(signal.SIGTERM, _forward_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def stop_requested() -> bool:
    """True once a graceful stop reached Tune during the current ``fit``."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return _sigterm_seen.is_set() or signal.getsignal(signal.SIGINT) is _after_tune_stop
