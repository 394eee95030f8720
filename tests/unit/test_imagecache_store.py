"""store.imagecache on a temporary directory: made once, held while used, pruned whole, private."""
import os
import threading

import pytest

from scrun.cli.cache import parse_size
from scrun.errors import UsageError
from scrun.store.imagecache import ImageCacheError, ensure_entry, list_entries, note_image, prune

pytestmark = pytest.mark.unit


def filler(size: int = 1000):
    calls = []

    def copy(dest: str) -> None:
        calls.append(dest)
        os.mkdir(dest)
        with open(os.path.join(dest, "file"), "wb") as fh:
            fh.write(b"x" * size)

    return copy, calls


def test_the_first_call_copies_and_later_ones_use_the_entry(tmp_path):
    copy, calls = filler()
    rootfs, made, fd = ensure_entry(str(tmp_path), "alice", "k1", copy, print)
    assert made and len(calls) == 1 and open(f"{rootfs}/file").read() == "x" * 1000
    again, made2, fd2 = ensure_entry(str(tmp_path), "alice", "k1", copy, print)
    assert (again, made2, len(calls)) == (rootfs, False, 1)
    assert oct(os.stat(tmp_path / "alice").st_mode & 0o777) == "0o700"
    os.close(fd), os.close(fd2)


def test_concurrent_first_calls_copy_once(tmp_path):
    gate = threading.Event()
    calls = []

    def slow_copy(dest: str) -> None:
        calls.append(dest)
        gate.wait(5)
        os.mkdir(dest)

    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_entry(str(tmp_path), "u", "k", slow_copy, print)))
               for _ in range(5)]
    for t in threads:
        t.start()
    threading.Timer(0.5, gate.set).start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and sorted(made for _, made, _ in results) == [False] * 4 + [True]
    for _, _, fd in results:
        os.close(fd)


def test_an_entry_in_use_is_never_pruned_and_a_free_one_is_removed_whole(tmp_path):
    copy, _ = filler()
    _, _, held = ensure_entry(str(tmp_path), "u", "used", copy, print)
    _, _, free = ensure_entry(str(tmp_path), "u", "free", copy, print)
    os.close(free)
    assert {(e.key, e.in_use) for e in list_entries(str(tmp_path), "u")} == {("used", True), ("free", False)}
    assert [e.key for e in prune(str(tmp_path), "u")] == ["free"]
    assert [e.key for e in list_entries(str(tmp_path), "u")] == ["used"]
    assert not [n for n in os.listdir(tmp_path / "u") if n.startswith(".")], "nothing half-removed is left"
    os.close(held)
    assert [e.key for e in prune(str(tmp_path), "u")] == ["used"]


def test_prune_keeps_the_most_recently_used_up_to_the_bound(tmp_path):
    copy, _ = filler(100_000)
    for number, key in enumerate(("old", "mid", "new")):
        _, _, fd = ensure_entry(str(tmp_path), "u", key, copy, print)
        os.close(fd)
        os.utime(tmp_path / "u" / key, (1000 + number, 1000 + number))
    size = list_entries(str(tmp_path), "u")[0].size
    assert [e.key for e in prune(str(tmp_path), "u", keep_bytes=2 * size)] == ["old"]
    assert [e.key for e in list_entries(str(tmp_path), "u")] == ["mid", "new"]


def test_a_copy_killed_half_way_is_never_used_and_is_removed(tmp_path):
    (tmp_path / "u").mkdir(mode=0o700)
    partial = tmp_path / "u" / ".k.tmp-99999"
    (partial / "rootfs").mkdir(parents=True)
    copy, calls = filler()
    rootfs, made, fd = ensure_entry(str(tmp_path), "u", "k", copy, print)
    assert made and len(calls) == 1 and not partial.exists()
    os.close(fd)
    (tmp_path / "u" / ".k.tmp-4242").mkdir()
    prune(str(tmp_path), "u", keep_bytes=1 << 40)
    assert not (tmp_path / "u" / ".k.tmp-4242").exists()


def test_a_users_directory_made_by_another_user_is_refused(tmp_path):
    (tmp_path / "victim").mkdir(mode=0o777)
    os.chown(tmp_path / "victim", 4242, 4242)
    copy, calls = filler()
    with pytest.raises(ImageCacheError, match="is not a private directory of yours"):
        ensure_entry(str(tmp_path), "victim", "k", copy, print)
    assert calls == []


@pytest.mark.parametrize("text,value", [("0", 0), ("512M", 512 << 20), ("20G", 20 << 30), ("3k", 3072), ("1GiB", 1 << 30)])
def test_sizes(text, value):
    assert parse_size(text) == value


def test_a_bad_size_is_a_usage_error():
    with pytest.raises(UsageError, match="--keep 'lots'"):
        parse_size("lots")


def test_an_entry_shows_the_name_the_engine_last_gave_its_image(tmp_path):
    copy, _ = filler()
    rootfs, _, fd = ensure_entry(str(tmp_path), "alice", "k1", copy, print)
    assert [e.image for e in list_entries(str(tmp_path), "alice")] == [""], "no name known yet"
    note_image(rootfs, "localhost/debian-python:latest")
    note_image(rootfs, "")  # a container whose engine said nothing keeps the name
    assert [e.image for e in list_entries(str(tmp_path), "alice")] == ["localhost/debian-python:latest"]
    note_image(rootfs, "localhost/other:1")
    assert [e.image for e in list_entries(str(tmp_path), "alice")] == ["localhost/other:1"]
    os.close(fd)
    assert [e.key for e in prune(str(tmp_path), "alice")] == ["k1"] and not os.path.exists(os.path.dirname(rootfs))
