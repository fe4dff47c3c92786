# Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
"""A seeded generator whose stream never changes, shared by the shuffles of
:meth:`dreamdb.Dataset.iter_batches` and :mod:`dreamdb.torch`."""

from __future__ import annotations

import hashlib
from typing import Any, List

_MASK64 = (1 << 64) - 1


class _Rng:
    """splitmix64: a tiny generator with a stream fixed forever (unlike NumPy's or
    Python's, whose method outputs may change between versions), so a seed and epoch
    give the same order on every machine and release."""

    def __init__(self, *key: Any) -> None:
        digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
        self._state = int.from_bytes(digest, "little")

    def next_u64(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform in [0, n) (rejection sampling: no modulo bias)."""
        limit = ((1 << 64) // n) * n
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n

    def permutation(self, n: int) -> List[int]:
        order = list(range(n))
        for i in range(n - 1, 0, -1):  # Fisher-Yates
            j = self.below(i + 1)
            order[i], order[j] = order[j], order[i]
        return order
