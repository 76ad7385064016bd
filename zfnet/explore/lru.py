"""A thread-safe least-recently-used store with a size budget: what keeps the server's memory bounded.

    cache = LRU(max_items=32, max_bytes=64 << 20)
    cache.put(key, value, nbytes)          # evicts the oldest entries beyond either limit
    cache.get(key)                         # None when absent (or evicted); marks it recent
"""
import threading
from collections import OrderedDict


class LRU:
    """Keeps at most `max_items` entries and `max_bytes` bytes (as reported to ``put``)."""

    def __init__(self, max_items, max_bytes=None):
        self.max_items = int(max_items)
        self.max_bytes = max_bytes
        self._items = OrderedDict()          # key -> (value, nbytes), oldest first
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key, value, nbytes=0):
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, int(nbytes))
            self._bytes += int(nbytes)
            # the newest entry always stays, even when it alone is over the byte budget
            while len(self._items) > 1 and (len(self._items) > self.max_items or
                                            (self.max_bytes is not None and self._bytes > self.max_bytes)):
                _, (_, n) = self._items.popitem(last=False)
                self._bytes -= n

    def values(self):
        """The values, oldest first (a snapshot)."""
        with self._lock:
            return [v for v, _ in self._items.values()]

    def __contains__(self, key):
        with self._lock:
            return key in self._items

    def __len__(self):
        with self._lock:
            return len(self._items)

    @property
    def nbytes(self):
        with self._lock:
            return self._bytes
