"""The filesystem blob store: atomic writes, idempotent puts and deletes, several processes at once."""

from __future__ import annotations

import io
import multiprocessing
from pathlib import Path

from detectflow.blobs import content_name
from detectflow.blobs.filesystem import FilesystemBlobStore


def _put_many(root: str, data: bytes, times: int) -> None:
    store = FilesystemBlobStore(Path(root))
    for _ in range(times):
        store.put(content_name("inputs", data), data)


def test_filesystem_put_get_exists_delete(tmp_path):
    store = FilesystemBlobStore(tmp_path)
    name = content_name("inputs", b"abc")
    assert store.get(name) is None and not store.exists(name)
    store.put(name, b"abc")
    assert store.get(name) == b"abc" and store.exists(name) and store.names() == [name]
    store.delete(name)
    store.delete(name)  # a missing blob is not an error
    assert store.get(name) is None and store.names() == []


def test_filesystem_put_of_the_same_bytes_leaves_the_file_and_other_bytes_replace_it(tmp_path):
    store = FilesystemBlobStore(tmp_path)
    name = content_name("inputs", b"abc")
    store.put(name, b"abc")
    first = store.path(name).stat().st_ino
    store.put(name, b"abc")  # the same bytes: no new file renamed over it
    assert store.path(name).stat().st_ino == first and store.get(name) == b"abc"
    store.put(name, b"abd")  # other bytes of the same size (not this name's content; the store does not check)
    assert store.get(name) == b"abd" and store.path(name).stat().st_ino != first


def test_filesystem_put_stream_copies_in_chunks_and_leaves_no_temporary_file(tmp_path):
    store = FilesystemBlobStore(tmp_path)
    data = bytes(range(256)) * 20_000  # 5 MB: several chunks
    name = content_name("inputs", data)
    store.put_stream(name, io.BytesIO(data))
    assert store.get(name) == data
    assert [p.name for p in store.path(name).parent.iterdir()] == [store.path(name).name]


def test_filesystem_a_failed_write_leaves_nothing(tmp_path):
    class Broken(io.RawIOBase):
        def readinto(self, buffer):
            raise OSError("client went away")

    store = FilesystemBlobStore(tmp_path)
    name = content_name("inputs", b"x")
    try:
        store.put_stream(name, Broken())
    except OSError:
        pass
    assert not store.exists(name) and list(store.path(name).parent.iterdir()) == []


def test_filesystem_several_processes_writing_one_name_leave_it_whole(tmp_path):
    # Given four processes putting the same 2 MB blob 20 times each, at once
    data = b"\x89PNG" + bytes(2 * 1024 * 1024)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_put_many, args=(str(tmp_path), data, 20)) for _ in range(4)]
    for p in procs:
        p.start()
    reader = FilesystemBlobStore(tmp_path)
    name = content_name("inputs", data)
    # Then every read while they write sees the whole blob or none
    seen = set()
    while any(p.is_alive() for p in procs):
        got = reader.get(name)
        seen.add(None if got is None else got == data)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert False not in seen and reader.get(name) == data and reader.names() == [name]
