"""Noticing a diverged run without stalling the device.

Reading a CUDA tensor's value (``float(t)``, ``.item()``) waits until every
queued kernel has run: the host stops launching work and the GPU then idles
while the host catches up. The training step therefore never reads anything;
this watch copies the running loss sum to pinned host memory asynchronously
every few steps and looks at a copy only once its event says it has landed,
so divergence is noticed a few steps late but never costs a sync. On the CPU
there is nothing to wait for and the value is read directly.

A NaN or an infinity in the running sum stays there (NaN + x is NaN; inf + x
is inf or NaN), so a late look still sees it.
"""

from __future__ import annotations

import torch


class DivergenceWatch:
    """Polls a running scalar on its device for non-finite values.

    Args:
        device: where the watched tensor lives.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        # (value buffer, its copy's completion event, the step it was taken at)
        self._host = torch.empty((), dtype=torch.float32, pin_memory=self.cuda)
        self._event: torch.cuda.Event | None = None
        self._step = 0

    def poll(self, running: torch.Tensor, step: int) -> tuple[float, int] | None:
        """A (value, step) pair that has become readable without a sync, or None.

        On CUDA: returns the copy started at an earlier poll once it has landed,
        and starts a new copy of ``running`` (as of ``step``) when none is in flight.
        On the CPU: ``running``'s value now.
        """
        if not self.cuda:
            return float(running), step
        ready = None
        if self._event is not None and self._event.query():
            ready = float(self._host), self._step  # a pinned CPU tensor: reading it does not touch the GPU
            self._event = None
        if self._event is None:
            self._host.copy_(running.detach(), non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
            self._step = step
        return ready

    def reset(self) -> None:
        """Forget any copy in flight (a new epoch starts a new running sum)."""
        if self._event is not None:
            self._event.synchronize()  # the buffer is about to be reused: let the old copy finish writing it
        self._event = None
