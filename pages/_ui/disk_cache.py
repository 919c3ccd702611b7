"""A small on-disk cache shared by the server processes of one machine.

When several Streamlit processes serve a class (deploy/serve.sh), each has its own
``st.cache_data``; this store lets the first process's result serve the others. It is enabled by
``ALLIANCE_FIT_CACHE_DIR`` (serve.sh sets it) and is a no-op otherwise.

- Bounded: at most ``max_entries`` files and ``max_bytes`` in total; the least recently written
  go first. A value larger than ``max_item_bytes`` is not stored.
- Safe against concurrent writers: a value is written to a temporary file in the same directory
  and moved into place with ``os.replace`` (atomic on POSIX), so a reader sees a whole file or
  none. Two processes computing the same value both write; the last one wins, harmlessly.
- Safe against corruption: a file that cannot be unpickled, or that holds another key (a hash
  collision or a stray file), is a miss and is removed.
- Values are pickled: the directory must be writable by the server's user only (created 0700).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG = logging.getLogger("alliance_dashboard")
ENV_DIR = "ALLIANCE_FIT_CACHE_DIR"
SUFFIX = ".pkl"


class DiskCache:
    def __init__(
        self,
        directory: str | os.PathLike | None,
        *,
        max_entries: int = 512,
        max_bytes: int = 256 * 2**20,
        max_item_bytes: int = 16 * 2**20,
    ):
        self.directory = Path(directory) if directory else None
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item_bytes = max_item_bytes
        if self.directory is not None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest() + SUFFIX)

    def get(self, key: str, default: Any = None) -> Any:
        if not self.enabled:
            return default
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                stored_key, value = pickle.load(f)
        except FileNotFoundError:
            return default
        except Exception:  # truncated, corrupt, or from an incompatible version of the code
            LOG.warning("Removing unreadable cache file %s", path.name)
            with contextlib.suppress(OSError):
                path.unlink()
            return default
        if stored_key != key:
            return default
        return value

    def put(self, key: str, value: Any) -> bool:
        """Store ``value``; False when it is too large or the disk refused (never raises)."""
        if not self.enabled:
            return False
        try:
            data = pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            LOG.warning("Cannot pickle a value for the shared cache", exc_info=True)
            return False
        if len(data) > self.max_item_bytes:
            return False
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._path(key))
            tmp = None
        except OSError:
            LOG.warning("Cannot write to the shared cache %s", self.directory, exc_info=True)
            return False
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self.prune()
        return True

    def prune(self) -> None:
        """Remove the oldest files until both bounds hold."""
        files = []
        for path in self.directory.glob("*" + SUFFIX):
            if path.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        while files and (len(files) > self.max_entries or total > self.max_bytes):
            _, size, path = files.pop(0)
            with contextlib.suppress(OSError):
                path.unlink()
            total -= size

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            value = compute()
            self.put(key, value)
        return value


def from_environment() -> DiskCache:
    return DiskCache(os.environ.get(ENV_DIR) or None)
