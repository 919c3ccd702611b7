"""The on-disk store shared by the server's processes: bounded, atomic, corruption-safe."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time

from pages._ui.disk_cache import DiskCache


def test_round_trip_and_miss(tmp_path):
    cache = DiskCache(tmp_path)
    assert cache.get("absent", "default") == "default"
    assert cache.put("k", {"value": [1, 2, 3]})
    assert cache.get("k") == {"value": [1, 2, 3]}


def test_disabled_without_a_directory_computes_every_time():
    cache = DiskCache(None)
    calls = []
    assert cache.get_or_compute("k", lambda: calls.append(1) or len(calls)) == 1
    assert cache.get_or_compute("k", lambda: calls.append(1) or len(calls)) == 2
    assert not cache.put("k", 1)


def test_get_or_compute_computes_once(tmp_path):
    calls = []
    first = DiskCache(tmp_path).get_or_compute("k", lambda: calls.append(1) or "fit")
    # another process (a new instance on the same directory) reads the stored result
    second = DiskCache(tmp_path).get_or_compute("k", lambda: calls.append(1) or "refit")
    assert (first, second, len(calls)) == ("fit", "fit", 1)


def test_corrupt_or_truncated_file_is_a_miss_and_is_removed(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put("k", list(range(1000)))
    path = cache._path("k")
    path.write_bytes(path.read_bytes()[:50])
    assert cache.get("k", "miss") == "miss"
    assert not path.exists()


def test_a_file_holding_another_key_is_a_miss(tmp_path):
    cache = DiskCache(tmp_path)
    cache.put("a", 1)
    os.replace(cache._path("a"), cache._path("b"))
    assert cache.get("b", "miss") == "miss"


def test_bounded_in_entries_oldest_first(tmp_path):
    cache = DiskCache(tmp_path, max_entries=3)
    for i in range(5):
        cache.put(f"k{i}", i)
        os.utime(cache._path(f"k{i}"), (1000 + i, 1000 + i))  # distinct ages
    assert [cache.get(f"k{i}") for i in range(5)] == [None, None, 2, 3, 4]
    assert len(list(tmp_path.glob("*.pkl"))) == 3


def test_bounded_in_bytes_and_large_values_not_stored(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=50_000, max_item_bytes=30_000)
    assert not cache.put("huge", b"x" * 40_000)
    assert cache.get("huge") is None
    cache.put("a", b"a" * 20_000)
    os.utime(cache._path("a"), (1000, 1000))
    cache.put("b", b"b" * 20_000)
    os.utime(cache._path("b"), (2000, 2000))
    cache.put("c", b"c" * 20_000)
    sizes = sum(p.stat().st_size for p in tmp_path.glob("*.pkl"))
    assert sizes <= 50_000
    assert cache.get("a") is None and cache.get("c") == b"c" * 20_000


def _writer(directory, n, seed):
    cache = DiskCache(directory)
    for i in range(n):
        cache.put("shared", bytes([seed]) * (100_000 + i))


def _reader(directory, stop, out):
    cache = DiskCache(directory)
    bad = 0
    seen = 0
    give_up = time.monotonic() + 120.0  # only if no writer ever wrote
    # read until the writers are done, and at least once after a value exists
    path = cache._path("shared")
    while (not stop.is_set() or seen == 0) and time.monotonic() < give_up:
        # Read the file itself (get() would hide a torn file as a miss): with writes by
        # rename, whoever opens it gets one writer's whole value.
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        seen += 1
        try:
            _, value = pickle.loads(data)
        except Exception:
            bad += 1
            continue
        # one byte repeated, of a size a writer wrote
        if len(set(value)) != 1 or not 100_000 <= len(value) < 100_200:
            bad += 1
    out.put((seen, bad))


def test_concurrent_writers_never_expose_a_partial_file(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    writers = [ctx.Process(target=_writer, args=(tmp_path, 200, s)) for s in (1, 2, 3)]
    readers = [ctx.Process(target=_reader, args=(tmp_path, stop, out)) for _ in range(2)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
    stop.set()
    results = [out.get(timeout=150) for _ in readers]
    for p in readers:
        p.join(timeout=30)
    assert all(p.exitcode == 0 for p in writers + readers)
    assert sum(seen for seen, _ in results) > 0
    assert sum(bad for _, bad in results) == 0
    assert not list(tmp_path.glob(".tmp-*"))  # no temporary file left behind
