# vm-heap: 256K (firmware + protocol + a stand-in host with its buffers in one VM process; at 192K a MemoryError here makes the firmware fail safe and stop; the firmware alone is measured by make bench)
"""pump.writer: bounded, never-blocking output (events dropped first, drops reported);
on the whole firmware: therapy through the protocol, and a host that stops reading for
10 virtual minutes (dosing untouched). ProtoRig here is the host link stand-in that
test_protocol_fuzz.py shares: bytes go 64 per virtual ms into the protocol's input path
(MainLoop.wait -> Protocol.on_input), output goes through pump.writer into Host.
VM heap is tight (the firmware takes ~136 KB of 192 KB): keep this module small.
"""
import binascii
import gc
import json
import os

from vmtest import ON_VM, require_vm

_RX = bytearray(2048)  # the host's receive buffer, before the firmware fragments the heap
_FBUF = bytearray(64)
from pumprig import PumpRig, WALL_2026
from vboard.clock import CLOCK
from pump import events as ev

gc.collect()
_HEAP0 = gc.mem_alloc() if ON_VM else 0
from pump.writer import Writer  # noqa: E402
from pump.protocol import Protocol  # noqa: E402  (imports pump.schema)

gc.collect()
HEAP = gc.mem_alloc() - _HEAP0 if ON_VM else 0

CONT = {"mode": "continuous", "conc_ng_ml": 500_000, "rate_nl_h": 80_000}  # 0.9 s per step
STEP_US = 900_000


class Host:
    def __init__(self):
        self.inbox = []  # bytes, or iterators of 64-byte chunks
        self.reading = True
        self.rx_n = 0
        self.replies = {}
        self.events = []
        self.n = 0  # replies received
        self.codes = {}  # replies per "ok" / error code

    def write(self, buf):
        assert self.reading, "the device wrote while the host was not reading: it would block"
        rx = _RX  # preallocated: the VM heap is fragmented once the firmware runs
        n = self.rx_n
        k = len(buf)
        rx[n:n + k] = buf
        n += k
        start = 0
        while True:
            j = rx.find(b"\n", start, n)
            if j < 0:
                break
            self._msg(json.loads(memoryview(rx)[start:j] if ON_VM else rx[start:j]))
            start = j + 1
        if start:
            rx[0:n - start] = rx[start:n]
            n -= start
        self.rx_n = n
        return k

    def _msg(self, m):
        if "ev" in m:
            self.events.append(m)
            del self.events[:-20]
            return
        assert ("ok" in m) != ("err" in m), m
        self.n += 1
        k = m.get("err", "ok")
        self.codes[k] = self.codes.get(k, 0) + 1
        if m["id"] is not None and m["id"] >= 1_000_000:  # ours, not fuzz
            self.replies[m["id"]] = m

    def writable(self):
        return self.reading

    def chunk(self):
        while self.inbox:
            src = self.inbox[0]
            if isinstance(src, bytes):
                if src:
                    self.inbox[0] = src[64:]
                    return src[:64]
            else:
                for c in src:
                    return c
            self.inbox.pop(0)
        return None


class ProtoRig(PumpRig):
    def __init__(self):
        # The link first, as main.py does: its line buffer before boot fragments the heap.
        self.host = h = Host()
        self.writer = Writer(h.write, h.writable)
        p = Protocol(self.writer)
        PumpRig.__init__(self)
        self.loop.wait = self._wait
        self.loop.on_input = p.on_input
        self.loop.on_pass = p.on_pass
        self._id = 1_000_000
        self.run(1)

    def _wait(self, ms):
        self.writer.drain()
        data = self.host.chunk()
        CLOCK.advance((ms if data is None else 1) * 1000)
        return data

    def ok(self, cmd, args=None):
        self._id += 1
        r = {"id": self._id, "cmd": cmd}
        if args is not None:
            r["args"] = args
        self.host.inbox.append((json.dumps(r) + "\n").encode())
        self.run(20)
        r = self.host.replies.pop(self._id)
        assert "ok" in r, r
        return r["ok"]

    def start(self):
        self.ok("hello", {"wall": WALL_2026})
        self.ok("refill", {"volume_nl": 20_000_000, "conc_ng_ml": 500_000})
        s = self.ok("stage", {"kind": "program", "change": CONT})
        assert s["summary"]["new"]["rate_nl_h"] == 80_000
        self.ok("confirm", {"change_id": s["change_id"]})
        assert self.ok("action", {"name": "start"}) == {"state": "RUNNING"}
        self.ok("ack")  # the boot-time RESERVOIR_EMPTY (latched) goes
        self.t0 = CLOCK.now_us

    def check_dosing(self):
        ideal = (CLOCK.now_us - self.t0) // STEP_US
        n = self.counted()
        assert ideal - 1 <= n <= ideal, (n, ideal)
        assert self.ctl.reservoir.volume_nl == 20_000_000 - n * 20
        return n

    def snapshot(self):
        """What a bad line must not change (the counters record moves with dosing)."""
        c = self.ctl
        files = {}  # CRC per persisted file but the counters (dosing moves them)
        for base in (self.root, self.root + "/log"):
            for name in sorted(os.listdir(base)):
                if "counters" in name or name == "log":
                    continue
                try:
                    f = open(base + "/" + name, "rb")
                except OSError:  # the log directory
                    continue
                crc = 0
                with f:
                    k = f.readinto(_FBUF)
                    while k:
                        crc = binascii.crc32(memoryview(_FBUF)[:k], crc)
                        k = f.readinto(_FBUF)
                files[name] = crc
        return (files, c.state, c.program.to_dict(), c.limits.to_dict(), dict(c.config),
                c.alarms.active(), c.reservoir.conc, c.log.next_seq, c.clock.confirmed,
                c.stager.pending(c.wall()) is not None)


def test_heap_of_the_protocol_modules():
    """VM: heap taken by importing schema, writer and protocol (.mpy), as on a board."""
    require_vm()
    print("pump.schema + pump.writer + pump.protocol: %d bytes of VM heap" % HEAP)
    assert HEAP < 13_000, HEAP


class Port:
    """A stand-in USB port: takes at most `room` bytes per write while `open`; a write
    while closed is a test failure (that is where a real port would block)."""

    def __init__(self, room=1000):
        self.room = room
        self.open = True
        self.got = bytearray()
        self.writes = 0

    def write(self, buf):
        assert self.open, "write while the port is not writable: it would block"
        n = min(len(buf), self.room)
        self.got += bytes(buf[:n])
        self.writes += 1
        return n

    def writable(self):
        return self.open

    def lines(self):
        return [json.loads(x) for x in bytes(self.got).decode().split("\n") if x]


def line(i, kind="r"):
    return ('{"%s":%d,"pad":"%s"}\n' % (kind, i, "x" * 40)).encode()


def test_lines_go_out_whole_and_in_order_through_partial_writes():
    p = Port(room=7)
    w = Writer(p.write, p.writable, cap=1024, chunk=16)
    for i in range(5):
        w.reply(line(i))
    assert w.drain() is False
    assert [d["r"] for d in p.lines()] == [0, 1, 2, 3, 4]
    assert w.dropped == 0 and not w.pending


def test_writes_only_chunk_bytes_at_a_time():
    sizes = []
    w = Writer(lambda b: sizes.append(len(b)) or len(b), lambda: True, chunk=32)
    w.reply(b"y" * 100 + b"\n")
    w.drain()
    assert sizes == [32, 32, 32, 5]


def test_a_port_that_never_takes_anything_is_never_written_and_never_waited_on():
    p = Port()
    p.open = False
    w = Writer(p.write, p.writable, cap=512)
    for i in range(1000):
        w.event(line(i, "e"))
        w.reply(line(i))
        assert w.drain() is True
    assert p.writes == 0
    assert w._size <= 512
    assert w.dropped > 1900


def test_events_are_dropped_before_replies_and_the_host_is_told():
    p = Port()
    p.open = False
    one = len(line(0))
    w = Writer(p.write, p.writable, cap=4 * one)
    w.event(line(0, "e"))
    w.reply(line(1))
    w.event(line(2, "e"))
    w.reply(line(3))
    w.reply(line(4))  # full: the oldest event goes
    w.reply(line(5))  # then the next event
    w.reply(line(6))  # no events left: the oldest reply
    assert w.dropped == 3
    p.open = True
    w.drain()
    got = p.lines()
    assert got[0] == {"ev": "dropped", "n": 3, "total": 3}
    assert [d["r"] for d in got[1:]] == [3, 4, 5, 6]


def test_the_line_being_written_is_never_dropped_or_cut():
    p = Port(room=10)
    w = Writer(p.write, lambda: p.open and p.writes < 1, cap=120, chunk=10)
    w.reply(line(0))  # 53 bytes
    w.drain()  # 10 bytes out, then the port stalls
    assert len(p.got) == 10
    for i in range(1, 6):
        w.reply(line(i))  # each evicts older lines, never line 0 in flight
    w._writable = p.writable
    w.drain()
    got = p.lines()
    assert got[0]["r"] == 0
    assert got[1]["ev"] == "dropped"
    assert got[-1]["r"] == 5


def test_a_line_bigger_than_the_queue_is_dropped_and_counted():
    p = Port()
    w = Writer(p.write, p.writable, cap=64)
    w.reply(b"z" * 100 + b"\n")
    assert w.dropped == 1
    w.drain()
    assert p.lines() == [{"ev": "dropped", "n": 1, "total": 1}]


def test_a_port_taking_zero_bytes_does_not_spin():
    w = Writer(lambda b: 0, lambda: True)
    w.reply(b"{}\n")
    assert w.drain() is True


# ---- the whole firmware behind the link -----------------------------------------------
def test_therapy_by_protocol_doses_within_one_step_and_reports_state():
    rig = ProtoRig()
    assert rig.host.events[0]["ev"] == "boot"
    rig.start()
    assert [e["state"] for e in rig.host.events if e["ev"] == "state"] == ["RUNNING"]
    rig.run(3_600_000)
    rig.check_dosing()
    st = rig.ok("status")
    assert st["state"] == "RUNNING" and st["rate_nl_h"] == 80_000 and st["out_dropped"] == 0


def test_a_host_that_stops_reading_for_10_minutes_leaves_dosing_untouched():
    rig = ProtoRig()
    rig.start()
    rig.run(60_000)
    h = rig.host
    h.reading = False  # holds the port open, reads nothing: a write would block
    for s in range(120):  # 10 min; requests, bad lines and alarm events keep coming
        h.inbox.append(b'{"id":%d,"cmd":"status"}\nnot json\n' % (2_000_000 + s))
        if s % 12 == 0:
            rig.ctl.alarms.raise_(ev.BATTERY_LOW, rig.now(), 3300)
        if s % 12 == 6:
            rig.ctl.alarms.clear_condition(ev.BATTERY_LOW, rig.now())
        rig.run(5_000)
        assert rig.writer._size <= rig.writer.cap
    n = rig.check_dosing()
    assert n >= 700 and rig.ctl.state == "RUNNING"
    dropped = rig.writer.dropped
    assert dropped > 200
    h.reading = True
    rig.run(100)
    d = [e for e in h.events if e["ev"] == "dropped"]
    assert d and d[0]["total"] == dropped, d
    assert 2_000_119 in h.replies  # the newest replies were kept
    assert rig.ok("status")["out_dropped"] == dropped
    rig.run(600_000)
    rig.check_dosing()
