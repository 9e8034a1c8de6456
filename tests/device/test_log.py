"""pump.log: the append-only event log (fixed 32-byte records in a ring of segments).

On the VM every test runs on the real LittleFS driver (os.VfsLfs2 on a
flashsim image); on CPython on a temporary host directory.
"""
import os

import flashsim
from vmtest import raises

from pump.log import RECORD_SIZE, Event, EventLog, decode


def with_root(test):
    root = flashsim.scratch()
    try:
        test(root + "/log")
    finally:
        flashsim.release(root)


def segment_files(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".ev"))


def append_bytes(path, data):
    with open(path, "ab") as f:
        f.write(data)


def fill(log, n, first_ms=0):
    """n events whose fields are derived from their seq, so content is checkable."""
    for _ in range(n):
        seq = log.next_seq
        assert log.append(first_ms + seq * 10, 800000000 + seq, 100 + seq, seq, -seq, seq * 1000) == seq


def expected(seq, first_ms=0):
    return Event(seq, first_ms + seq * 10, 800000000 + seq, 100 + seq, seq, -seq, seq * 1000)


def test_an_appended_event_reads_back_with_every_field():
    def t(d):
        log = EventLog(d)
        assert log.append(123456, 789012345, 65535, -2147483648, 2147483647, 0) == 1
        assert log.read() == [Event(1, 123456, 789012345, 65535, -2147483648, 2147483647, 0)]

    with_root(t)


def test_each_event_is_one_32_byte_record():
    def t(d):
        log = EventLog(d, segments=2, per_segment=10)
        fill(log, 7)
        (name,) = segment_files(d)
        assert name == "0000000001.ev"
        assert os.stat(d + "/" + name)[6] == 7 * RECORD_SIZE

    with_root(t)


def test_sequence_numbers_keep_increasing_across_reopening():
    def t(d):
        fill(EventLog(d), 5)
        log = EventLog(d)
        assert log.next_seq == 6
        fill(log, 3)
        assert [e.seq for e in EventLog(d).read(limit=100)] == list(range(1, 9))

    with_root(t)


def test_the_log_is_bounded_and_drops_whole_oldest_segments():
    def t(d):
        log = EventLog(d, segments=3, per_segment=4)
        fill(log, 50)
        assert len(segment_files(d)) == 3
        seqs = [e.seq for e in log.records()]
        assert seqs == list(range(seqs[0], 51))
        assert 2 * 4 + 1 <= len(seqs) <= 3 * 4  # at least (segments-1)*per_segment + 1 kept
        assert [e.seq for e in EventLog(d, segments=3, per_segment=4).records()] == seqs

    with_root(t)


def test_reading_since_a_seq_returns_only_newer_events_in_either_order():
    def t(d):
        log = EventLog(d, segments=4, per_segment=5)
        fill(log, 18)
        for since in (0, 1, 4, 5, 6, 10, 17, 18, 30):
            want = [expected(s) for s in range(max(since + 1, 1), 19)]
            assert list(log.records(since_seq=since)) == want
            want.reverse()
            assert list(log.records(since_seq=since, newest_first=True)) == want

    with_root(t)


def test_read_returns_at_most_limit_events():
    def t(d):
        log = EventLog(d, segments=4, per_segment=5)
        fill(log, 12)
        assert [e.seq for e in log.read(limit=3)] == [1, 2, 3]
        assert [e.seq for e in log.read(since_seq=3, limit=4)] == [4, 5, 6, 7]
        assert [e.seq for e in log.read(limit=2, newest_first=True)] == [12, 11]
        assert log.read(limit=0) == []

    with_root(t)


def test_a_torn_tail_is_cut_off_at_open_and_later_appends_continue_the_sequence():
    def t(d):
        fill(EventLog(d), 5)
        path = d + "/" + segment_files(d)[-1]
        append_bytes(path, b"\x01" * 17)  # a record torn by a cut (non-atomic filesystem)
        log = EventLog(d)
        assert log.dropped == 17
        assert os.stat(path)[6] == 5 * RECORD_SIZE
        assert log.append(1, 0, 9) == 6
        assert [e.seq for e in log.records()] == [1, 2, 3, 4, 5, 6]
        assert log.selftest() == "ok"

    with_root(t)


def test_a_whole_record_with_a_bad_crc_at_the_tail_is_dropped():
    def t(d):
        log = EventLog(d)
        fill(log, 3)
        path = d + "/" + segment_files(d)[-1]
        with open(path, "rb") as f:
            last = bytearray(f.read())[-RECORD_SIZE:]
        last[4] = 4  # seq 4, CRC now wrong
        append_bytes(path, last)
        log = EventLog(d)
        assert log.dropped == RECORD_SIZE and log.next_seq == 4
        assert [e.seq for e in log.records()] == [1, 2, 3]

    with_root(t)


def test_a_corrupt_record_in_the_middle_is_skipped_by_readers_and_flagged_by_selftest():
    def t(d):
        log = EventLog(d)
        fill(log, 4)
        path = d + "/" + segment_files(d)[-1]
        with open(path, "rb") as f:
            raw = bytearray(f.read())
        raw[RECORD_SIZE + 20] ^= 0x40  # damage seq 2's a1
        with open(path, "wb") as f:
            f.write(raw)
        log = EventLog(d)
        assert log.dropped == 0 and log.next_seq == 5
        assert [e.seq for e in log.records()] == [1, 3, 4]
        assert [e.seq for e in log.records(newest_first=True)] == [4, 3, 1]
        assert log.selftest() == "corrupt"

    with_root(t)


def test_decode_rejects_every_single_bit_flip():
    def t(d):
        log = EventLog(d)
        fill(log, 1)
        with open(d + "/" + segment_files(d)[0], "rb") as f:
            good = f.read()
        assert decode(good) == expected(1)
        for i in range(RECORD_SIZE * 8):
            bad = bytearray(good)
            bad[i // 8] ^= 1 << (i % 8)
            assert decode(bad) is None

    with_root(t)


def test_an_empty_newest_segment_still_sets_the_sequence_floor():
    def t(d):
        fill(EventLog(d), 2)
        with open(d + "/0000000100.ev", "wb"):
            pass  # a cut right after creating a segment, before its first record
        log = EventLog(d)
        assert log.next_seq == 100
        assert log.append(0, 0, 1) == 100
        assert [e.seq for e in log.records()] == [1, 2, 100]

    with_root(t)


def test_a_cut_between_starting_a_segment_and_pruning_is_tidied_at_open():
    def t(d):
        log = EventLog(d, segments=2, per_segment=2)
        fill(log, 4)
        with open(d + "/0000000005.ev", "wb") as f:  # segment 3 of 2, oldest not yet deleted
            pass
        log = EventLog(d, segments=2, per_segment=2)
        assert segment_files(d) == ["0000000003.ev", "0000000005.ev"]
        assert log.append(0, 0, 1) == 5
        with open(d + "/trunc.tmp", "wb") as f:  # an interrupted tail repair
            f.write(b"x")
        EventLog(d, segments=2, per_segment=2)
        assert "trunc.tmp" not in os.listdir(d)

    with_root(t)


def test_out_of_range_fields_are_rejected_and_nothing_is_written():
    def t(d):
        log = EventLog(d)
        fill(log, 1)
        for args in ((0, 0, -1), (0, 0, 65536), (0, -1, 1), (0, 2 ** 32, 1),
                     (0, 0, 1, 2 ** 31), (0, 0, 1, 0, -2 ** 31 - 1), (0, 0, 1, 0, 0, 2 ** 40)):
            raises(ValueError, log.append, *args)
        assert log.next_seq == 2
        assert [e.seq for e in EventLog(d).records()] == [1]

    with_root(t)


def test_unknown_wall_time_is_stored_as_zero_and_uptime_wraps_at_2_to_32_ms():
    def t(d):
        log = EventLog(d)
        log.append(2 ** 32 + 5, None, 1)
        (e,) = log.read()
        assert (e.wall, e.uptime_ms) == (0, 5)

    with_root(t)


def test_selftest_reports_empty_then_ok():
    def t(d):
        log = EventLog(d)
        assert log.selftest() == "empty"
        fill(log, 3)
        assert log.selftest() == "ok"

    with_root(t)


def test_bad_ring_sizes_are_rejected():
    def t(d):
        raises(ValueError, EventLog, d, 1, 10)
        raises(ValueError, EventLog, d, 4, 0)

    with_root(t)
