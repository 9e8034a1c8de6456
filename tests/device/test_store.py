"""pump.store: atomic, CRC-checked, versioned records.

On the VM every test runs on the real LittleFS driver (os.VfsLfs2 on a
flashsim image); on CPython on a temporary host directory.
"""
import struct

import flashsim
from vmtest import raises

from pump.store import (HEADER_SIZE, MAGIC, MAX_PAYLOAD, Corrupt, Missing, Store,
                        StoreError, WrongSchema, encode)

CONFIG = {"rate_nl_h": 25000, "conc_ng_ml": 500000, "mode": "continuous", "steps": [1, 2, 3]}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def exists(path):
    try:
        open(path, "rb").close()
        return True
    except OSError:
        return False


def with_store(test):
    root = flashsim.scratch()
    try:
        test(Store(root + "/data"))
    finally:
        flashsim.release(root)


def test_a_saved_record_loads_back_equal():
    def t(s):
        s.save("config", CONFIG)
        assert s.load("config") == CONFIG
        assert s.load_versioned("config") == (1, CONFIG)

    with_store(t)


def test_save_replaces_the_old_record_and_leaves_no_temp_file():
    def t(s):
        s.save("config", {"v": 1})
        s.save("config", {"v": 2})
        assert s.load("config") == {"v": 2}
        assert not exists(s.path("config") + ".new")

    with_store(t)


def test_records_survive_a_new_store_object_on_the_same_directory():
    def t(s):
        s.save("limits", {"max_rate_nl_h": 100000}, schema=3)
        again = Store(s.root)
        assert again.load("limits", schema=3) == {"max_rate_nl_h": 100000}

    with_store(t)


def test_a_record_never_saved_is_reported_missing_not_corrupt():
    def t(s):
        e = raises(Missing, s.load, "config")
        assert isinstance(e, StoreError) and not isinstance(e, Corrupt)
        assert e.name == "config"

    with_store(t)


def test_an_empty_file_is_reported_corrupt_not_missing():
    def t(s):
        write_bytes(s.path("config"), b"")
        e = raises(Corrupt, s.load, "config")
        assert not isinstance(e, Missing)

    with_store(t)


def test_every_single_flipped_byte_is_reported_corrupt():
    def t(s):
        s.save("config", CONFIG)
        good = read_bytes(s.path("config"))
        for i in range(len(good)):
            bad = bytearray(good)
            bad[i] ^= 0x01
            write_bytes(s.path("config"), bad)
            raises(Corrupt, s.load, "config")
        write_bytes(s.path("config"), good)
        assert s.load("config") == CONFIG

    with_store(t)


def test_every_truncation_and_any_trailing_garbage_is_reported_corrupt():
    def t(s):
        s.save("config", CONFIG)
        good = read_bytes(s.path("config"))
        for n in range(len(good)):
            write_bytes(s.path("config"), good[:n])
            raises(Corrupt, s.load, "config")
        write_bytes(s.path("config"), good + b"\x00")
        raises(Corrupt, s.load, "config")

    with_store(t)


def test_a_payload_with_a_valid_crc_that_is_not_a_json_object_is_corrupt():
    def t(s):
        good = b'{"a": 1}'
        write_bytes(s.path("config"), valid_header(good) + good)
        assert s.load("config") == {"a": 1}  # so the helper builds valid headers
        for payload in (b"not json", b"[1, 2]", b"\xff\xfe"):
            write_bytes(s.path("config"), valid_header(payload) + payload)
            raises(Corrupt, s.load, "config")

    with_store(t)


def valid_header(payload, schema=1, fmt=1, magic=MAGIC):
    import binascii

    head = struct.pack("<4sHHI", magic, fmt, schema, len(payload))
    crc = binascii.crc32(payload, binascii.crc32(head)) & 0xFFFFFFFF
    return head + struct.pack("<I", crc)


def test_an_unknown_header_format_or_magic_is_corrupt_even_with_a_valid_crc():
    def t(s):
        p = b"{}"
        write_bytes(s.path("config"), valid_header(p, fmt=2) + p)
        raises(Corrupt, s.load, "config")
        write_bytes(s.path("config"), valid_header(p, magic=b"XXst") + p)
        raises(Corrupt, s.load, "config")

    with_store(t)


def test_a_header_claiming_a_huge_length_is_corrupt_without_reading_it():
    def t(s):
        write_bytes(s.path("config"), struct.pack("<4sHHII", MAGIC, 1, 1, 0x7FFFFFF0, 0) + b"{}")
        e = raises(Corrupt, s.load, "config")
        assert "limit" in e.reason

    with_store(t)


def test_a_complete_new_file_is_recovered_when_the_main_file_is_missing():
    def t(s):
        s.save("counters", {"delivered": 7})
        blob = read_bytes(s.path("counters"))
        s.remove("counters")
        write_bytes(s.path("counters") + ".new", blob)  # cut between close and rename
        assert s.load("counters") == {"delivered": 7}
        assert s.recovered == ["counters"]
        assert read_bytes(s.path("counters")) == blob  # rolled forward
        assert not exists(s.path("counters") + ".new")

    with_store(t)


def test_a_complete_new_file_is_recovered_when_the_main_file_is_corrupt():
    def t(s):
        s.save("counters", {"delivered": 7})
        s.save("tmp", {"delivered": 8})
        write_bytes(s.path("counters") + ".new", read_bytes(s.path("tmp")))
        write_bytes(s.path("counters"), b"garbage")
        assert s.load("counters") == {"delivered": 8}

    with_store(t)


def test_a_good_main_file_wins_over_a_valid_but_unacknowledged_new_file():
    def t(s):
        s.save("config", {"v": 1})
        s.save("other", {"v": 2})
        write_bytes(s.path("config") + ".new", read_bytes(s.path("other")))
        assert s.load("config") == {"v": 1}
        s.save("config", {"v": 3})  # the next save overwrites the stale .new
        assert s.load("config") == {"v": 3}
        assert not exists(s.path("config") + ".new")

    with_store(t)


def test_a_torn_new_file_never_replaces_anything():
    def t(s):
        s.save("config", {"v": 1})
        torn = encode({"v": 2}, 1)[:-3]
        write_bytes(s.path("config") + ".new", torn)
        assert s.load("config") == {"v": 1}
        write_bytes(s.path("config"), b"")
        raises(Corrupt, s.load, "config")  # corrupt main + torn new stays corrupt
        s.remove("config")
        write_bytes(s.path("config") + ".new", torn)
        raises(Missing, s.load, "config")  # first save ever was cut: never saved

    with_store(t)


def test_a_schema_mismatch_is_reported_distinctly_and_the_record_stays_readable():
    def t(s):
        s.save("program", {"steps": []}, schema=2)
        e = raises(WrongSchema, s.load, "program", 3)
        assert (e.found, e.expected) == (2, 3)
        assert not isinstance(e, Corrupt) and not isinstance(e, Missing)
        assert s.load_versioned("program") == (2, {"steps": []})

    with_store(t)


def test_selftest_reports_each_file_as_ok_missing_corrupt_or_schema():
    def t(s):
        s.save("config", CONFIG)
        s.save("limits", {"max": 1}, schema=2)
        s.save("counters", {"delivered": 1})
        write_bytes(s.path("counters"), read_bytes(s.path("counters"))[:-1])
        assert s.selftest(["config", "limits", "counters", "program"]) == {
            "config": "ok", "limits": "ok", "counters": "corrupt", "program": "missing"}
        assert s.selftest({"config": 1, "limits": 1}) == {"config": "ok", "limits": "schema"}

    with_store(t)


def test_bad_names_and_records_are_rejected_and_the_old_record_survives():
    def t(s):
        s.save("config", {"v": 1})
        for name in ("", "a/b", "config.new", "x" * 25, None):
            raises(ValueError, s.save, name, {"v": 2})
        raises(ValueError, s.save, "config", [1, 2])
        raises(ValueError, s.save, "config", {"v": 2}, 70000)
        e = raises(ValueError, s.save, "config", {"blob": "x" * MAX_PAYLOAD})
        assert str(MAX_PAYLOAD) in str(e)
        assert s.load("config") == {"v": 1}
        assert not exists(s.path("config") + ".new")

    with_store(t)


def test_the_file_is_a_16_byte_header_then_the_json_payload():
    def t(s):
        s.save("config", {"a": 1}, schema=5)
        raw = read_bytes(s.path("config"))
        magic, fmt, schema, length, crc = struct.unpack("<4sHHII", raw[:HEADER_SIZE])
        assert (magic, fmt, schema, length) == (b"DKst", 1, 5, len(raw) - HEADER_SIZE)
        assert raw[HEADER_SIZE:] in (b'{"a": 1}', b'{"a":1}')

    with_store(t)
