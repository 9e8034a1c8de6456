"""Power-safe records (config, limits, program, counters) on the board's LittleFS.

One record = one file `<root>/<name>`: a 16-byte header, then a JSON object.

    offset size  field
    0      4     magic b"DKst"
    4      2     format version of this header (1), little-endian
    6      2     schema version of the record (the caller's), little-endian
    8      4     payload length in bytes
    12     4     CRC-32 (binascii.crc32) over bytes 0..11 and then the payload
    16     n     payload: json.dumps(record), UTF-8

`save` writes `<name>.new`, closes it (LittleFS commits on close), reads it
back and checks it, then renames it over `<name>` (a LittleFS rename is atomic
under power loss). A cut leaves either the old or the new record, never a
mix. `load` tells a record that was never written (`Missing`) from one that
is damaged (`Corrupt`); either must put the pump in a safe, alarmed state: it
never doses on a guess. If `<name>` is missing or damaged but a complete,
valid `<name>.new` exists (a cut between close and rename, or a FAT port where
rename cannot replace), `load` rolls forward to it.

Every method here touches flash: call it from the main loop, never from the
dose IRQ or a timer callback. On RP2040 a 4 KB flash write stops interrupts
for ~46 ms (worst case ~400 ms, PLATFORM.md); the clock-driven dose engine
repays the missed steps, but nothing here may run inside it.
"""
import binascii
import json
import os
import struct

from micropython import const

try:
    from typing import Any, Dict, Iterable, Optional, Tuple
except ImportError:
    pass

MAGIC = b"DKst"
FORMAT = const(1)  # header layout version (not the record's schema)
HEADER_SIZE = const(16)
MAX_PAYLOAD = const(4096)  # a record larger than this is refused at save, corrupt at load
_HDR = "<4sHHII"
_NAME_MAX = const(24)
_ENOENT = const(2)

OK = "ok"
MISSING = "missing"
CORRUPT = "corrupt"
SCHEMA = "schema"


class StoreError(Exception):
    """A record cannot be used. `.name` is the record, `.reason` says why."""

    def __init__(self, name, reason):
        super().__init__("%s: %s" % (name, reason))
        self.name = name
        self.reason = reason


class Missing(StoreError):
    """The record was never written (or was removed): no file, no valid `.new`."""


class Corrupt(StoreError):
    """The record exists but fails its checks (magic, length, CRC, JSON, type)."""


class WrongSchema(StoreError):
    """The record is intact but has another schema version than the caller expects.

    `.found` and `.expected` hold both; migrate with `load(name)` (no schema
    check) or treat as unusable. Not garbage, so not `Corrupt`."""

    def __init__(self, name, found, expected):
        super().__init__(name, "schema %d found, %d expected: migrate it or re-enter the settings"
                         % (found, expected))
        self.found = found
        self.expected = expected


def _check_name(name):
    if not isinstance(name, str) or not 0 < len(name) <= _NAME_MAX:
        raise ValueError("record name must be 1..%d characters, got %r" % (_NAME_MAX, name))
    for c in name:
        if not (c.isalpha() or c.isdigit() or c == "_"):
            raise ValueError("record name %r: use only letters, digits and '_'" % name)


def encode(record, schema):
    """The file bytes for `record` (a dict) with `schema`: header + JSON payload."""
    if not isinstance(record, dict):
        raise ValueError("record must be a dict, got %s" % type(record).__name__)
    if not 0 <= schema <= 0xFFFF:
        raise ValueError("schema must be 0..65535, got %r" % (schema,))
    data = json.dumps(record).encode()
    if len(data) > MAX_PAYLOAD:
        raise ValueError("record is %d bytes as JSON, allowed 0..%d: split it into smaller records"
                         % (len(data), MAX_PAYLOAD))
    head = struct.pack("<4sHHI", MAGIC, FORMAT, schema, len(data))
    crc = binascii.crc32(data, binascii.crc32(head)) & 0xFFFFFFFF
    return head + struct.pack("<I", crc) + data


class Store:
    """Atomic, CRC-checked records in one directory (`root`, created if absent)."""

    def __init__(self, root):
        # type: (str) -> None
        self.root = root.rstrip("/") or ""
        self.recovered = []  # names rolled forward from `.new` by load (for the event log)
        if self.root:
            try:
                os.mkdir(self.root)
            except OSError:
                pass  # exists (or the root of the filesystem)

    def path(self, name):
        # type: (str) -> str
        return self.root + "/" + name

    def save(self, name, record, schema=1):
        # type: (str, Dict[str, Any], int) -> None
        """Replace record `name` atomically; returns once the new record is durable.

        Writes `<name>.new`, closes it, verifies it, renames it over `<name>`.
        Raises ValueError for a bad name/record; OSError for a flash failure,
        Corrupt if the read-back fails: either way the old record is still in
        place and the new one must be treated as not saved. Touches flash: main loop only
        (RP2040: interrupts stop ~46 ms per 4 KB written)."""
        _check_name(name)
        blob = encode(record, schema)
        main = self.path(name)
        tmp = main + ".new"
        with open(tmp, "wb") as f:
            f.write(blob)
        del blob
        self._read(name, tmp)  # read back: a failed flash write must not replace a good record
        self._replace(tmp, main)

    @staticmethod
    def _replace(tmp, main):
        try:
            os.rename(tmp, main)  # LittleFS: atomic replace
        except OSError:
            # FAT cannot rename over an existing file. Between remove and rename
            # only the valid `.new` exists, and load() rolls forward to it.
            try:
                os.remove(main)
            except OSError:
                pass
            os.rename(tmp, main)

    def load(self, name, schema=None):
        # type: (str, Optional[int]) -> Dict[str, Any]
        """The record `name` as a dict. Raises Missing, Corrupt or (if `schema`
        is given and differs) WrongSchema; all are StoreError. Touches flash."""
        return self.load_versioned(name, schema)[1]

    def load_versioned(self, name, schema=None):
        # type: (str, Optional[int]) -> Tuple[int, Dict[str, Any]]
        """(schema, record) for `name`; same errors and recovery as `load`."""
        _check_name(name)
        main = self.path(name)
        try:
            found, rec = self._read(name, main)
        except StoreError as e:
            tmp = main + ".new"
            try:
                found, rec = self._read(name, tmp)
            except StoreError:
                raise e
            self._replace(tmp, main)  # roll forward: the interrupted save completes now
            self.recovered.append(name)
        if schema is not None and found != schema:
            raise WrongSchema(name, found, schema)
        return found, rec

    def remove(self, name):
        # type: (str) -> None
        """Delete record `name` (and a stale `.new`); absent is fine. Touches flash."""
        _check_name(name)
        for p in (self.path(name), self.path(name) + ".new"):
            try:
                os.remove(p)
            except OSError:
                pass

    def selftest(self, names):
        # type: (Iterable[str]) -> Dict[str, str]
        """Power-on self-test: {name: "ok" | "missing" | "corrupt"} for each name.

        `names` may be a dict {name: expected schema}; an intact record with
        another schema then reports "schema". Run before any dosing; anything
        but "ok" must leave the pump stopped and alarmed. Reads flash and may
        complete an interrupted save (one atomic rename)."""
        out = {}
        for name in names:
            want = names[name] if isinstance(names, dict) else None
            try:
                self.load_versioned(name, want)
                out[name] = OK
            except Missing:
                out[name] = MISSING
            except WrongSchema:
                out[name] = SCHEMA
            except StoreError:
                out[name] = CORRUPT
        return out

    def _read(self, name, path):
        try:
            f = open(path, "rb")
        except OSError as e:
            if e.args and e.args[0] == _ENOENT:
                raise Missing(name, "no record: never saved, or removed")
            raise Corrupt(name, "cannot open (%r)" % (e,))
        try:
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                raise Corrupt(name, "file is %d bytes, shorter than the %d-byte header"
                              % (len(head), HEADER_SIZE))
            magic, fmt, schema, length, crc = struct.unpack(_HDR, head)
            if magic != MAGIC:
                raise Corrupt(name, "bad magic %r" % (magic,))
            if fmt != FORMAT:
                raise Corrupt(name, "unknown header format %d (this firmware reads %d)" % (fmt, FORMAT))
            if length > MAX_PAYLOAD:
                raise Corrupt(name, "length %d above the %d-byte limit" % (length, MAX_PAYLOAD))
            data = f.read(length)
            if len(data) != length or f.read(1):
                raise Corrupt(name, "payload length does not match the header (%d)" % length)
        except OSError as e:
            raise Corrupt(name, "read failed (%r)" % (e,))
        finally:
            f.close()
        calc = binascii.crc32(data, binascii.crc32(head[:12])) & 0xFFFFFFFF
        if calc != crc:
            raise Corrupt(name, "CRC mismatch (stored %08x, computed %08x)" % (crc, calc))
        try:
            rec = json.loads(data)
        except ValueError:  # also UnicodeError
            raise Corrupt(name, "CRC ok but payload is not JSON")
        if not isinstance(rec, dict):
            raise Corrupt(name, "payload is not a JSON object")
        return schema, rec
