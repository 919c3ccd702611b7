"""Uploads kept on the server for a while, so that reloading the tab does not lose them.

Plain Python (no Streamlit), so it is tested on its own. Each upload is kept under an
unguessable token (``secrets.token_urlsafe(32)``: 256 random bits) that the dashboard puts in
the page's link; whoever holds the token can open that upload and no other.

- **Never listed.** Files are stored under the SHA-256 of the token, so the directory's names
  do not reveal tokens, and the store has no call that lists uploads.
- **Bounded in time.** An upload expires ``ttl`` seconds after it was stored (default 24 h);
  an expired upload is deleted when anyone asks for it and at every new upload.
- **Bounded in size.** One upload at most ``max_upload_bytes``; all uploads together at most
  ``max_total_bytes``; an upload that would exceed the total is not kept (the session still
  has it, only a reload loses it), and the caller says so.
- **Deleted on request** (``delete``).
- Beside the file, the Data page's choices for it (column roles, missing codes, level merges:
  a small JSON text, ``save_choices``) so that a reload restores the analysis, not only the file.

The directory is ``ALLIANCE_UPLOAD_DIR`` if set, else ``alliance-uploads`` in the system's
temporary directory; it is created with permissions 0700.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DIRECTORY_VARIABLE = "ALLIANCE_UPLOAD_DIR"
DEFAULT_TTL = 24 * 3600.0
DEFAULT_MAX_UPLOAD = 20 * 2**20
DEFAULT_MAX_TOTAL = 500 * 2**20
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters


@dataclass(frozen=True)
class StoredUpload:
    """An upload as kept: its token, file name, bytes and when it expires (Unix time)."""

    token: str
    name: str
    content: bytes
    expires_at: float
    choices: str | None = None  # the Data page's choices as JSON text (``save_choices``)


def default_directory() -> Path:
    configured = os.environ.get(DIRECTORY_VARIABLE)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "alliance-uploads"


class UploadStore:
    """Uploads on disk under unguessable tokens, bounded in time and size."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        ttl: float = DEFAULT_TTL,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
        max_total_bytes: int = DEFAULT_MAX_TOTAL,
        clock: Callable[[], float] = time.time,
    ):
        self.directory = Path(directory) if directory is not None else default_directory()
        self.ttl = ttl
        self.max_upload_bytes = max_upload_bytes
        self.max_total_bytes = max_total_bytes
        self.clock = clock

    # -- the public verbs ----------------------------------------------------------------------
    def put(self, content: bytes, name: str) -> StoredUpload | None:
        """Keep an upload; its record, or None when it is too large to keep."""
        if len(content) > self.max_upload_bytes:
            return None
        self._prepare()
        self.purge_expired()
        if self._total_bytes() + len(content) > self.max_total_bytes:
            return None
        token = secrets.token_urlsafe(32)
        folder = self._folder(token)
        folder.mkdir(mode=0o700)
        expires_at = self.clock() + self.ttl
        (folder / "content").write_bytes(content)
        (folder / "meta.json").write_text(json.dumps({"name": name, "expires_at": expires_at}))
        return StoredUpload(token, name, content, expires_at)

    def get(self, token: str) -> StoredUpload | None:
        """The upload kept under ``token``; None if there is none or it expired (then deleted)."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return None
        folder = self._folder(token)
        meta = self._meta(folder)
        if meta is None:
            return None
        if meta["expires_at"] <= self.clock():
            shutil.rmtree(folder, ignore_errors=True)
            return None
        try:
            content = (folder / "content").read_bytes()
        except OSError:
            return None
        try:
            choices = (folder / "choices.json").read_text()
        except OSError:
            choices = None
        return StoredUpload(token, str(meta["name"]), content, float(meta["expires_at"]), choices)

    def save_choices(self, token: str, choices: str) -> bool:
        """Keep the Data page's choices (JSON text, at most 64 KB) beside an existing upload."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token) or len(choices) > 65_536:
            return False
        folder = self._folder(token)
        meta = self._meta(folder)
        if meta is None or meta["expires_at"] <= self.clock():
            return False
        (folder / "choices.json").write_text(choices)
        return True

    def delete(self, token: str) -> bool:
        """Delete the upload kept under ``token`` now; whether there was one."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return False
        folder = self._folder(token)
        existed = folder.exists()
        shutil.rmtree(folder, ignore_errors=True)
        return existed

    def purge_expired(self) -> int:
        """Delete every expired upload; how many were deleted."""
        if not self.directory.exists():
            return 0
        now = self.clock()
        deleted = 0
        for folder in self.directory.iterdir():
            meta = self._meta(folder)
            if meta is None or meta["expires_at"] <= now:
                shutil.rmtree(folder, ignore_errors=True)
                deleted += 1
        return deleted

    # -- inside ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _folder(self, token: str) -> Path:
        # The token's hash names the folder: the directory never shows a usable token.
        return self.directory / hashlib.sha256(token.encode()).hexdigest()

    def _meta(self, folder: Path) -> dict | None:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            float(meta["expires_at"])
            return meta
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _total_bytes(self) -> int:
        total = 0
        for folder in self.directory.iterdir():
            try:
                total += (folder / "content").stat().st_size
            except OSError:
                continue
        return total
