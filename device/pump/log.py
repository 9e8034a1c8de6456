"""Append-only, power-safe event log in a bounded ring of segment files.

Record (32 bytes, little-endian, struct "<HHIIIiiiI"):

    offset size  field
    0      2     magic 0xEC01 (high byte: event log, low byte: record format 1)
    2      2     event code 0..65535 (the code-to-text table lives elsewhere)
    4      4     sequence number, 1.. ; never reused, increases across reboots
    8      4     uptime in ms modulo 2**32 (wraps after 49.7 days; order by seq)
    12     4     wall time, s since 2000-01-01; 0 = unknown
    16     12    three signed 32-bit arguments a0, a1, a2 (no free text in flash)
    28     4     CRC-32 over bytes 0..27

Segments are files `<root>/<first seq, 10 digits>.ev`, each up to
`per_segment` records. When the newest is full the next record starts a new
segment, then the oldest beyond `segments` is deleted: at most
segments * per_segment records (default 4 x 128 x 32 B = 16 KB) are kept and
at least (segments - 1) * per_segment.

`append` opens, writes and closes: LittleFS commits on close, so once it
returns the event survives a power cut. A cut during an append leaves the
record either absent or complete on LittleFS; on a filesystem without atomic
appends a torn tail is caught by length and CRC at the next open and cut off
(rewrite to a temp file + atomic rename). Sequence numbers restart from the
newest segment's name and records, so they keep increasing across reboots.

Every method that reads or writes files touches flash: call it from the main
loop, never from the dose IRQ. On RP2040 a 4 KB flash write stops interrupts
for ~46 ms (worst case ~400 ms); an append on LittleFS erases and rewrites
about one 4 KB block (measured in docs/persistence.md).
"""
import binascii
import os
import struct
from collections import namedtuple

from micropython import const

try:
    from typing import Generator, List, Optional
except ImportError:
    pass

RECORD_SIZE = const(32)
_MAGIC = const(0xEC01)
_FMT = "<HHIIIiiiI"
_CRC_END = const(28)
_SUFFIX = ".ev"
_TMP = "trunc.tmp"
_I32 = const(0x7FFFFFFF)

Event = namedtuple("Event", ("seq", "uptime_ms", "wall", "code", "a0", "a1", "a2"))


def decode(buf):
    """The Event in a 32-byte record, or None if its magic or CRC is wrong."""
    magic, code, seq, up, wall, a0, a1, a2, crc = struct.unpack(_FMT, buf)
    if magic != _MAGIC or binascii.crc32(buf[:_CRC_END]) & 0xFFFFFFFF != crc:
        return None
    return Event(seq, up, wall, code, a0, a1, a2)


def _arg(name, v):
    if not -_I32 - 1 <= v <= _I32:
        raise ValueError("%s must be -2147483648..2147483647, got %r: scale it down" % (name, v))
    return v


class EventLog:
    """The event log in directory `root` (created if absent).

    Opening scans only the newest segment (at most `per_segment` records, one
    32-byte buffer): it drops a torn tail and finds the next sequence number.
    `.dropped` is the number of bytes cut off at open (log it as an event)."""

    def __init__(self, root, segments=4, per_segment=128):
        # type: (str, int, int) -> None
        if segments < 2 or per_segment < 1:
            raise ValueError("segments must be >= 2 and per_segment >= 1, got %d, %d"
                             % (segments, per_segment))
        self.root = root.rstrip("/")
        self.segments = segments
        self.per_segment = per_segment
        self._buf = bytearray(RECORD_SIZE)
        self._segs = []  # first seq of each segment, oldest first
        self._count = 0  # record slots used in the newest segment
        self.next_seq = 1
        self.dropped = 0
        self._stale = True
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        self._open()

    def _path(self, first):
        return "%s/%010d%s" % (self.root, first, _SUFFIX)

    def _list(self):
        segs = []
        for name in os.listdir(self.root):
            if name.endswith(_SUFFIX) and name[:-3].isdigit():
                segs.append(int(name[:-3]))
        segs.sort()
        return segs

    def _open(self):
        """Scan the directory and the newest segment; repair a torn tail. Touches flash."""
        try:
            os.remove(self.root + "/" + _TMP)  # an interrupted repair
        except OSError:
            pass
        segs = self._list()
        while len(segs) > self.segments:  # a cut between starting a segment and pruning
            os.remove(self._path(segs.pop(0)))
        self._segs = segs
        self._count = 0
        self.next_seq = 1
        if not segs:
            self._stale = False
            return
        newest = segs[-1]
        path = self._path(newest)
        size = os.stat(path)[6]
        good_end = 0
        last = newest - 1
        buf = self._buf
        with open(path, "rb") as f:
            pos = 0
            while f.readinto(buf) == RECORD_SIZE:
                pos += RECORD_SIZE
                ev = decode(buf)
                if ev is not None and ev.seq > last:
                    good_end = pos
                    last = ev.seq
        if size > good_end:
            self._truncate(path, good_end)
            self.dropped += size - good_end
        self._count = good_end // RECORD_SIZE
        self.next_seq = last + 1
        self._stale = False

    def _truncate(self, path, end):
        tmp = self.root + "/" + _TMP
        buf = self._buf
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            left = end
            while left > 0:
                src.readinto(buf)
                dst.write(buf)
                left -= RECORD_SIZE
        os.rename(tmp, path)  # atomic: the segment is either torn (retried) or clean

    def append(self, now_ms, wall_s, code, a0=0, a1=0, a2=0):
        # type: (int, Optional[int], int, int, int, int) -> int
        """Write one event; return its sequence number once it is durable.

        `now_ms`: uptime ms (stored mod 2**32); `wall_s`: s since 2000-01-01,
        None/0 if unknown; `code` 0..65535; a0..a2 signed 32-bit. Raises
        ValueError for out-of-range fields (nothing written), OSError if the
        flash write fails (the event is then not logged). Touches flash:
        main loop only (RP2040: ~46 ms without interrupts per 4 KB)."""
        if not 0 <= code <= 0xFFFF:
            raise ValueError("event code must be 0..65535, got %r" % (code,))
        wall = wall_s or 0
        if not 0 <= wall <= 0xFFFFFFFF:
            raise ValueError("wall time must be 0..4294967295 s since 2000, got %r" % (wall,))
        _arg("a0", a0)
        _arg("a1", a1)
        _arg("a2", a2)
        if self._stale:
            self._open()
        seq = self.next_seq
        buf = self._buf
        struct.pack_into(_FMT, buf, 0, _MAGIC, code, seq, now_ms & 0xFFFFFFFF, wall,
                         a0, a1, a2, 0)
        struct.pack_into("<I", buf, _CRC_END, binascii.crc32(buf[:_CRC_END]) & 0xFFFFFFFF)
        new = not self._segs or self._count >= self.per_segment
        self._stale = True  # until this append is known to be complete
        with open(self._path(seq) if new else self._path(self._segs[-1]), "ab") as f:
            f.write(buf)
        if new:
            self._segs.append(seq)
            self._count = 0
            while len(self._segs) > self.segments:
                os.remove(self._path(self._segs.pop(0)))
        self._count += 1
        self.next_seq = seq + 1
        self._stale = False
        return seq

    def records(self, since_seq=0, newest_first=False):
        # type: (int, bool) -> Generator[Event, None, None]
        """Yield the valid events with seq > `since_seq`, oldest or newest first.

        One record in RAM at a time; records failing their CRC are skipped.
        Consume it fully or call `.close()` on it so its file is closed."""
        segs = list(self._segs)
        buf = bytearray(RECORD_SIZE)
        if newest_first:
            for first in reversed(segs):
                path = self._path(first)
                try:
                    n = os.stat(path)[6] // RECORD_SIZE
                except OSError:
                    continue  # pruned meanwhile
                with open(path, "rb") as f:
                    while n > 0:
                        n -= 1
                        f.seek(n * RECORD_SIZE)
                        f.readinto(buf)
                        ev = decode(buf)
                        if ev is None:
                            continue
                        if ev.seq <= since_seq:
                            return
                        yield ev
                if first <= since_seq + 1:
                    return
        else:
            for i in range(len(segs)):
                if i + 1 < len(segs) and segs[i + 1] <= since_seq + 1:
                    continue  # every event in this segment is <= since_seq
                try:
                    f = open(self._path(segs[i]), "rb")
                except OSError:
                    continue
                with f:
                    while f.readinto(buf) == RECORD_SIZE:
                        ev = decode(buf)
                        if ev is not None and ev.seq > since_seq:
                            yield ev

    def read(self, since_seq=0, limit=16, newest_first=False):
        # type: (int, int, bool) -> List[Event]
        """Up to `limit` events with seq > `since_seq` (for the host to page through)."""
        out = []
        if limit <= 0:
            return out
        it = self.records(since_seq, newest_first)
        for ev in it:
            out.append(ev)
            if len(out) >= limit:
                break
        it.close()
        return out

    def selftest(self):
        # type: () -> str
        """Power-on check of every record: "ok", "empty" or "corrupt" (some
        record fails its CRC or breaks the sequence order). Reads flash only."""
        seen = 0
        last = 0
        buf = self._buf
        for first in self._segs:
            try:
                f = open(self._path(first), "rb")
            except OSError:
                return "corrupt"
            with f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    ev = decode(buf) if n == RECORD_SIZE else None
                    if ev is None or ev.seq <= last or ev.seq < first:
                        return "corrupt"
                    last = ev.seq
                    seen += 1
        return "ok" if seen else "empty"
