"""Seeded uniform sampling from a stream of chunks, in bounded memory."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream of chunks (algorithm R, seeded):
    memory stays at ``size`` items whatever the stream's length."""

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.seen = 0
        self.items: list[Any] = []
        self._rng = np.random.default_rng(seed)

    def add(self, values: Iterable[Any]) -> None:
        values = list(values)
        room = max(self.size - len(self.items), 0)
        self.items.extend(values[:room])
        self.seen += min(room, len(values))
        rest = values[room:]
        if not rest or self.size == 0:
            self.seen += len(rest)
            return
        positions = self.seen + np.arange(1, len(rest) + 1)  # 1-based stream positions
        slots = (self._rng.random(len(rest)) * positions).astype(np.int64)
        for value, slot in zip(rest, slots):
            if slot < self.size:
                self.items[slot] = value
        self.seen += len(rest)
