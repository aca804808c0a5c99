"""Seeded uniform sampling from a stream of chunks, in bounded memory: one stream
(``Reservoir``), or parts of a stream sampled apart and merged (``KeyedSample``)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

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


class KeyedSample:
    """A uniform sample of at most ``size`` items that merges: each item offered gets a seeded
    uniform key and the ``size`` smallest keys are kept (bottom-k sampling). The union of two
    such samples cut to the ``size`` smallest keys is a uniform sample of both streams, in
    whatever order the parts are merged (Spark executors' parts; ``Reservoir`` is the
    single-stream form). ``items`` are in key order, a random order."""

    def __init__(self, size: int, seed: Any = 0):
        self.size = int(size)
        self.seen = 0
        self.keys = np.empty(0)
        self.items: list[Any] = []
        self._rng = np.random.default_rng(seed)

    def offer(self, n: int, take: Callable[[np.ndarray], list[Any]]) -> None:
        """Offer ``n`` items; ``take(positions)`` gives those whose key can still be kept (so
        a row that loses is never built)."""
        if n <= 0:
            return
        keys = self._rng.random(n)
        self.seen += n
        if self.size == 0:
            return
        if len(self.keys) >= self.size:
            positions = np.flatnonzero(keys < self.keys[-1])
        else:
            positions = np.arange(n)
        if len(positions) > self.size:  # only the chunk's smallest can make it
            positions = np.sort(positions[np.argpartition(keys[positions], self.size - 1)[:self.size]])
        if len(positions):
            self._keep(keys[positions], list(take(positions)))

    def add(self, values: Iterable[Any]) -> None:
        values = list(values)
        self.offer(len(values), lambda positions: [values[i] for i in positions])

    def merge(self, other: "KeyedSample") -> None:
        """Fold in another part's sample (a sample of both streams)."""
        self.seen += other.seen
        if len(other.keys):
            self._keep(other.keys, other.items)

    def _keep(self, keys: np.ndarray, items: list[Any]) -> None:
        keys = np.concatenate([self.keys, keys])
        items = self.items + items
        order = np.argsort(keys, kind="stable")[:self.size]
        self.keys, self.items = keys[order], [items[i] for i in order]


def sample_maker(partition: int | None) -> Callable[[int, Any], Any]:
    """How a stream's samples are made: seeded ``Reservoir``s for one stream (``partition``
    None), mergeable ``KeyedSample``s for one part of many (seeded by part too)."""
    if partition is None:
        return Reservoir
    return lambda size, seed: KeyedSample(size, (int(seed), int(partition)))
