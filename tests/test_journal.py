"""The journal: durable numbered records, segments, torn tails, trimming, crashes."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import zlib

import pytest

from imagepipe.replication import journal as journal_module
from imagepipe.replication.journal import Journal, JournalCorrupt


def frames_of(number, size=10):
    return [json.dumps({"n": number}).encode(), bytes([number % 256]) * size]


def record_size(frames):
    return 8 + 4 + sum(4 + len(frame) for frame in frames)


def segment_files(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".seg"))


def flip_byte(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0x40]))


@pytest.fixture
def directory(tmp_path):
    return str(tmp_path / "journal")


@pytest.fixture
def opened():
    """Open journals through this, so that each is closed after the test."""
    journals = []

    def open_journal(*args, **kwargs):
        journals.append(Journal(*args, **kwargs))
        return journals[-1]

    yield open_journal
    for journal in journals:
        journal.close()


def test_a_new_journal_is_empty(directory, opened):
    journal = opened(directory)
    assert os.path.isdir(directory)
    assert (journal.last_number, journal.first_number, journal.entries()) == (0, 1, [])
    assert segment_files(directory) == ["00000000000000000001.seg"]


def test_appends_are_numbered_from_one_and_read_back(directory, opened):
    journal = opened(directory)
    assert [journal.append(frames_of(n)) for n in (1, 2, 3)] == [1, 2, 3]
    assert [journal.read(n) for n in (1, 2, 3)] == [frames_of(1), frames_of(2), frames_of(3)]
    assert (journal.first_number, journal.last_number) == (1, 3)


def test_empty_frames_and_many_frames_read_back_unchanged(directory, opened):
    journal = opened(directory)
    frames = [b"{}", b"", b"\x00" * 100000, "ż".encode()]
    assert journal.read(journal.append(frames)) == frames


def test_a_record_is_length_crc_and_packed_frames_on_disk(directory, opened):
    opened(directory).append([b"hdr", b"payload"])
    body = struct.pack(">II", 2, 3) + b"hdr" + struct.pack(">I", 7) + b"payload"
    with open(os.path.join(directory, "00000000000000000001.seg"), "rb") as handle:
        assert handle.read() == struct.pack(">II", len(body), zlib.crc32(body)) + body


def test_entries_index_the_header_frame_of_each_record(directory, opened):
    journal = opened(directory)
    for n in (1, 2, 3):
        journal.append(frames_of(n))
    entries = journal.entries(2)
    assert [entry.number for entry in entries] == [2, 3]
    assert [entry.header for entry in entries] == [frames_of(2)[0], frames_of(3)[0]]
    assert entries[0].offset == record_size(frames_of(1))
    assert entries[0].length == record_size(frames_of(2)) - 8
    assert journal.entries(4) == []


def test_numbering_and_the_index_survive_reopening(directory, opened):
    journal = opened(directory)
    for n in (1, 2):
        journal.append(frames_of(n))
    journal.close()
    reopened = opened(directory)
    assert reopened.torn_bytes == 0
    assert [entry.header for entry in reopened.entries()] == [frames_of(1)[0], frames_of(2)[0]]
    assert reopened.append(frames_of(3)) == 3
    assert reopened.read(1) == frames_of(1)


def test_records_roll_into_segments_named_for_their_first_number(directory, opened):
    size = record_size(frames_of(1))
    journal = opened(directory, segment_bytes=2 * size)
    for n in range(1, 6):
        journal.append(frames_of(n))
    assert segment_files(directory) == [f"{first:020d}.seg" for first in (1, 3, 5)]
    assert [entry.segment_first for entry in journal.entries()] == [1, 1, 3, 3, 5]
    assert [journal.read(n) for n in range(1, 6)] == [frames_of(n) for n in range(1, 6)]


def test_segments_are_read_back_in_order_after_reopening(directory, opened):
    journal = opened(directory, segment_bytes=1)
    for n in range(1, 12):
        journal.append(frames_of(n))
    journal.close()
    reopened = opened(directory, segment_bytes=1)
    assert [entry.number for entry in reopened.entries()] == list(range(1, 12))
    assert reopened.read(11) == frames_of(11)
    assert reopened.append(frames_of(12)) == 12


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own(directory, opened):
    journal = opened(directory, segment_bytes=100)
    journal.append(frames_of(1))
    journal.append(frames_of(2, size=500))
    journal.append(frames_of(3))
    assert segment_files(directory) == [f"{first:020d}.seg" for first in (1, 2, 3)]
    assert journal.read(2) == frames_of(2, size=500)


def test_files_that_are_not_segments_are_ignored(directory, opened):
    opened(directory).close()
    for name in ("notes.txt", "1.seg", "00000000000000000001.seg.tmp"):
        with open(os.path.join(directory, name), "w") as handle:
            handle.write("x")
    assert opened(directory).append(frames_of(1)) == 1


# Torn tails

def three_records(directory, opened, **options):
    journal = opened(directory, **options)
    for n in (1, 2, 3):
        journal.append(frames_of(n))
    journal.close()
    return os.path.join(directory, segment_files(directory)[-1])


@pytest.mark.parametrize("keep", [1, 7, 8, 15], ids=["in-length", "in-crc", "header-only",
                                                      "mid-body"])
def test_a_record_cut_short_by_a_crash_is_truncated_away(directory, opened, keep):
    path = three_records(directory, opened)
    start = 2 * record_size(frames_of(1))
    os.truncate(path, start + keep)
    journal = opened(directory)
    assert (journal.last_number, journal.torn_bytes) == (2, keep)
    assert os.path.getsize(path) == start
    assert journal.append(frames_of(30)) == 3
    assert journal.read(3) == frames_of(30)


@pytest.mark.parametrize("where", [1, 5, 20], ids=["length", "crc", "body"])
def test_a_damaged_last_record_is_dropped_alone(directory, opened, where):
    path = three_records(directory, opened)
    start = 2 * record_size(frames_of(1))
    flip_byte(path, start + where)
    journal = opened(directory)
    assert journal.last_number == 2
    assert journal.torn_bytes == record_size(frames_of(3))
    assert [journal.read(n) for n in (1, 2)] == [frames_of(1), frames_of(2)]
    assert journal.append(frames_of(30)) == 3
    journal.close()
    assert opened(directory).read(3) == frames_of(30)


def test_everything_after_the_first_bad_record_of_the_last_segment_goes(directory, opened):
    path = three_records(directory, opened)
    flip_byte(path, record_size(frames_of(1)) + 20)
    journal = opened(directory)
    assert journal.last_number == 1
    assert journal.torn_bytes == 2 * record_size(frames_of(1))


def test_a_zero_filled_tail_is_truncated_away(directory, opened):
    path = three_records(directory, opened)
    size = os.path.getsize(path)
    with open(path, "ab") as handle:
        handle.write(bytes(4096))
    journal = opened(directory)
    assert (journal.last_number, journal.torn_bytes) == (3, 4096)
    assert os.path.getsize(path) == size


def test_a_torn_tail_in_the_last_of_several_segments_is_truncated(directory, opened):
    path = three_records(directory, opened, segment_bytes=1)
    os.truncate(path, 10)
    journal = opened(directory, segment_bytes=1)
    assert journal.last_number == 2
    assert journal.append(frames_of(30)) == 3
    assert segment_files(directory)[-1] == "00000000000000000003.seg"


# Corruption that is not a torn tail

def test_a_damaged_record_in_an_earlier_segment_is_corruption(directory, opened):
    three_records(directory, opened, segment_bytes=2 * record_size(frames_of(1)))
    first = os.path.join(directory, "00000000000000000001.seg")
    offset = record_size(frames_of(1))
    flip_byte(first, offset + 20)
    with pytest.raises(JournalCorrupt, match=rf"^{first}: CRC mismatch .* offset {offset}$"):
        Journal(directory)


def test_a_truncated_earlier_segment_is_corruption(directory, opened):
    three_records(directory, opened, segment_bytes=1)
    first = os.path.join(directory, "00000000000000000001.seg")
    os.truncate(first, 5)
    with pytest.raises(JournalCorrupt, match=rf"^{first}: incomplete record header at offset 0"):
        Journal(directory)


def test_a_missing_segment_is_corruption(directory, opened):
    three_records(directory, opened, segment_bytes=1)
    os.unlink(os.path.join(directory, "00000000000000000002.seg"))
    with pytest.raises(JournalCorrupt, match=r"00000000000000000003\.seg: starts at record 3, "
                                             r"expected 2$"):
        Journal(directory)


def test_read_detects_a_record_damaged_after_opening(directory, opened):
    journal = opened(directory)
    journal.append(frames_of(1))
    flip_byte(os.path.join(directory, "00000000000000000001.seg"), 20)
    with pytest.raises(JournalCorrupt, match="CRC mismatch"):
        journal.read(1)


@pytest.mark.parametrize("number", [0, 2, -1])
def test_reading_a_record_that_is_not_kept_raises_key_error(directory, opened, number):
    journal = opened(directory)
    journal.append(frames_of(1))
    with pytest.raises(KeyError):
        journal.read(number)


# Trimming

def test_drop_through_deletes_only_segments_wholly_at_or_below_the_number(directory, opened):
    size = record_size(frames_of(1))
    journal = opened(directory, segment_bytes=2 * size)
    for n in range(1, 8):  # segments 1-2, 3-4, 5-6, 7
        journal.append(frames_of(n))
    assert journal.drop_through(5) == 4
    assert segment_files(directory) == [f"{first:020d}.seg" for first in (5, 7)]
    assert journal.first_number == 5
    assert [entry.number for entry in journal.entries()] == [5, 6, 7]
    assert journal.read(5) == frames_of(5)
    with pytest.raises(KeyError):
        journal.read(4)


def test_drop_through_keeps_the_active_segment_while_it_holds_a_kept_record(directory, opened):
    journal = opened(directory, segment_bytes=1)
    for n in (1, 2, 3):
        journal.append(frames_of(n))
    assert journal.drop_through(2) == 2
    assert segment_files(directory) == ["00000000000000000003.seg"]
    assert [entry.number for entry in journal.entries()] == [3]
    assert journal.append(frames_of(4)) == 4


def test_dropping_everything_keeps_the_numbering_across_a_reopen(directory, opened):
    journal = opened(directory, segment_bytes=1 << 20)
    for n in (1, 2, 3):
        journal.append(frames_of(n))
    assert journal.drop_through(3) == 3
    assert segment_files(directory) == ["00000000000000000004.seg"]
    assert journal.entries() == [] and journal.first_number == 4
    journal.close()
    again = opened(directory)
    assert again.last_number == 3 and again.append(frames_of(4)) == 4


def test_drop_through_below_the_first_segment_end_drops_nothing(directory, opened):
    journal = opened(directory, segment_bytes=1)
    for n in (1, 2):
        journal.append(frames_of(n))
    assert journal.drop_through(0) == 0
    assert journal.first_number == 1


def test_a_trimmed_journal_reopens_with_its_numbers(directory, opened):
    journal = opened(directory, segment_bytes=1)
    for n in (1, 2, 3):
        journal.append(frames_of(n))
    journal.drop_through(2)
    journal.close()
    reopened = opened(directory, segment_bytes=1)
    assert (reopened.first_number, reopened.last_number) == (3, 3)
    assert reopened.append(frames_of(4)) == 4


def test_a_journal_with_nothing_kept_has_first_number_above_last(directory, opened):
    journal = opened(directory)
    assert journal.first_number == journal.last_number + 1


# Failures and concurrency

def test_a_failed_fsync_takes_the_record_back(directory, opened, monkeypatch):
    journal = opened(directory)
    journal.append(frames_of(1))
    real_fsync = os.fsync

    def failing_fsync(fd):
        monkeypatch.setattr(journal_module.os, "fsync", real_fsync)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        journal.append(frames_of(2))
    assert os.path.getsize(os.path.join(directory, segment_files(directory)[0])) == \
        record_size(frames_of(1))
    assert journal.append(frames_of(20)) == 2
    journal.close()
    assert opened(directory).read(2) == frames_of(20)


def test_append_after_close_is_refused(directory, opened):
    journal = opened(directory)
    journal.close()
    with pytest.raises(ValueError, match="closed"):
        journal.append(frames_of(1))


def test_concurrent_appends_get_distinct_consecutive_numbers(directory, opened):
    journal = opened(directory, segment_bytes=4096)
    numbers = {}

    def append_many(worker):
        for index in range(25):
            frames = frames_of(worker * 100 + index)
            numbers[journal.append(frames)] = frames

    threads = [threading.Thread(target=append_many, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 101))
    assert all(journal.read(number) == frames for number, frames in numbers.items())


# Crashes

CHILD = r"""
import hashlib, json, sys
from imagepipe.replication.journal import Journal

journal = Journal(sys.argv[1], segment_bytes=int(sys.argv[2]))
while True:
    number = journal.last_number + 1
    data = hashlib.sha256(str(number).encode()).digest() * (number % 97)
    head = json.dumps({"n": number, "sha256": hashlib.sha256(data).hexdigest()}).encode()
    assert journal.append([head, data]) == number
    print(number, flush=True)
"""


def test_every_append_acknowledged_before_a_kill_survives_it(directory, opened):
    acknowledged = []
    for round_ in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD, directory, "20000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(25 + 11 * round_):
                line = child.stdout.readline()
                assert line, child.stderr.read().decode()
                acknowledged.append(int(line))
        finally:
            child.send_signal(signal.SIGKILL)
            rest, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        acknowledged.extend(int(line) for line in rest.split())
        journal = opened(directory, segment_bytes=20000)
        for number in acknowledged:
            head, data = journal.read(number)
            assert json.loads(head) == {"n": number,
                                        "sha256": hashlib.sha256(data).hexdigest()}
        journal.close()
    assert acknowledged == sorted(set(acknowledged))
    assert len(segment_files(directory)) > 1


def test_the_newest_record_of_an_undone_change_can_be_taken_back(tmp_path):
    journal = Journal(str(tmp_path / "j"))
    first = journal.append([b'{"n": 1}'])
    second = journal.append([b'{"n": 2}'])
    journal.retract(second)
    assert journal.last_number == first
    with pytest.raises(ValueError, match="is not the newest"):
        journal.retract(second)
    third = journal.append([b'{"n": 3}'])
    assert third == second and journal.read(third) == [b'{"n": 3}']
    again = Journal(str(tmp_path / "j"))  # what is on disk agrees
    assert [again.read(number) for number in (first, third)] == [[b'{"n": 1}'], [b'{"n": 3}']]
