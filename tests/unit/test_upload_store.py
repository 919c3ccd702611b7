"""The server-side upload store: unguessable tokens, one upload per token, bounded time and
size, deletion on expiry and on request, nothing listed."""

from __future__ import annotations

import os
import stat

from pages._ui.upload_store import DIRECTORY_VARIABLE, UploadStore, default_directory


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def store(tmp_path, **options) -> tuple[UploadStore, Clock]:
    clock = Clock()
    return UploadStore(tmp_path / "uploads", clock=clock, **options), clock


def test_a_token_opens_its_own_upload_and_no_other(tmp_path):
    uploads, _ = store(tmp_path)
    first = uploads.put(b"study,r,n\nA,0.3,50\n", "mine.csv")
    second = uploads.put(b"other", "theirs.csv")
    assert first.token != second.token
    assert len(first.token) == 43  # 256 random bits, URL-safe
    assert uploads.get(first.token).content == b"study,r,n\nA,0.3,50\n"
    assert uploads.get(first.token).name == "mine.csv"
    assert uploads.get(second.token).content == b"other"
    # A changed, guessed or malformed token opens nothing.
    flipped = ("A" if first.token[0] != "A" else "B") + first.token[1:]
    for token in (flipped, "", "../" + first.token, first.token + "x", None):
        assert uploads.get(token) is None


def test_nothing_in_the_directory_reveals_a_token(tmp_path):
    uploads, _ = store(tmp_path)
    kept = uploads.put(b"x", "name.csv")
    names = [p.name for p in (tmp_path / "uploads").rglob("*")]
    assert not any(kept.token in name for name in names)
    assert not hasattr(uploads, "list")
    mode = stat.S_IMODE(os.stat(tmp_path / "uploads").st_mode)
    assert mode & 0o077 == 0


def test_an_upload_expires_after_its_time_and_is_deleted(tmp_path):
    uploads, clock = store(tmp_path, ttl=3600)
    kept = uploads.put(b"x", "a.csv")
    assert kept.expires_at == clock.now + 3600
    clock.now += 3599
    assert uploads.get(kept.token) is not None
    clock.now += 1
    assert uploads.get(kept.token) is None
    assert list((tmp_path / "uploads").iterdir()) == []


def test_expired_uploads_are_purged_at_the_next_upload(tmp_path):
    uploads, clock = store(tmp_path, ttl=10)
    old = uploads.put(b"old", "old.csv")
    clock.now += 11
    new = uploads.put(b"new", "new.csv")
    assert uploads.get(old.token) is None
    assert len(list((tmp_path / "uploads").iterdir())) == 1
    assert uploads.get(new.token).content == b"new"


def test_size_is_bounded_per_upload_and_in_total(tmp_path):
    uploads, _ = store(tmp_path, max_upload_bytes=10, max_total_bytes=25)
    assert uploads.put(b"x" * 11, "big.csv") is None
    assert uploads.put(b"x" * 10, "a.csv") is not None
    assert uploads.put(b"x" * 10, "b.csv") is not None
    assert uploads.put(b"x" * 10, "c.csv") is None  # 30 bytes would exceed the total of 25


def test_delete_now(tmp_path):
    uploads, _ = store(tmp_path)
    kept = uploads.put(b"x", "a.csv")
    assert uploads.delete(kept.token) is True
    assert uploads.get(kept.token) is None
    assert uploads.delete(kept.token) is False


def test_the_directory_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv(DIRECTORY_VARIABLE, str(tmp_path / "elsewhere"))
    assert default_directory() == tmp_path / "elsewhere"
    monkeypatch.delenv(DIRECTORY_VARIABLE)
    assert default_directory().name == "alliance-uploads"


def test_the_choices_are_kept_beside_their_upload_only(tmp_path):
    uploads, clock = store(tmp_path, ttl=10)
    kept = uploads.put(b"x", "a.csv")
    assert uploads.get(kept.token).choices is None
    assert uploads.save_choices(kept.token, '{"mapping": {}}') is True
    assert uploads.get(kept.token).choices == '{"mapping": {}}'
    assert uploads.save_choices("A" * 43, "{}") is False  # no such upload: nothing is created
    assert uploads.save_choices(kept.token, "x" * 70_000) is False
    clock.now += 11
    assert uploads.save_choices(kept.token, "{}") is False
