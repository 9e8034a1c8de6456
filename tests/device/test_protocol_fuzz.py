# vm-heap: 256K (the fuzz harness: generators, a stand-in host and the simulator beside the firmware; the firmware alone is measured by make bench)
"""Protocol fuzz on the whole firmware (simulated board, virtual time), while dosing.

Acceptance (issue 3): random bytes of every value except 0x03 (Ctrl-C has its own test
in test_controller.py), NUL, invalid UTF-8, 64 KB lines, floods and valid-looking
commands with bad values: every bad line gets an error, nothing changes, dosing stays
within one step of ideal. The host link stand-in is test_writer.ProtoRig. Bounded for
the VM at 192 KB heap: 64 KB lines and floods are generated 64 bytes at a time.
"""
import json

from test_writer import ProtoRig  # first: compiled before the firmware takes the heap
from pump import schema


class Rng:
    """xorshift32: the same bytes on CPython and the VM."""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def byte(self, newline=False):
        """Any byte value but 0x03 (and LF unless newline)."""
        while True:
            b = self.next() & 0xFF
            if b != 3 and (newline or b != 10):
                return b

    def line(self, n, newline=False):
        return bytes(self.byte(newline) for _ in range(n))


def answers(stream):
    """Replies the device owes for a byte stream: one per non-blank line (too long included)."""
    n = 0
    for seg in stream.split(b"\n")[:-1]:
        if len(seg) > schema.MAX_LINE:
            n += 1
        else:
            if seg.endswith(b"\r"):
                seg = seg[:-1]
            n += 1 if seg.strip(b" \t") else 0
    return n


def long_line(rng, kb, tail):
    """A `kb` KB line without the RAM: 64-byte chunks, then `tail`."""
    for _ in range(kb * 16):
        yield rng.line(64) if rng else b"A" * 64
    yield tail


def repeat(unit, n):
    """`unit` n times, in chunks of at most 64 bytes (a flood without the RAM)."""
    k = 64 // len(unit)
    while n > 0:
        yield unit * min(k, n)
        n -= k


def bad_values(spec):
    """Values outside an argument's schema (type or range)."""
    name, typ, a, b, req = spec
    if typ == "int":
        return (a - 1, b + 1, 1.5, "1", True, None, [1], {}, 10 ** 30)
    if typ == "str":
        return (7, "x" * (b + 1), "a\u0001", None, ["x"])
    if typ == "enum":
        return ("nope", "", 1, None, a[0].upper())
    return (1, "x", [], None)


def bad_commands():
    """Every command with each argument in turn given a bad value (the others fine),
    plus unknown and missing arguments; then values the controller refuses."""
    fine = {"kind": "program", "change": {}, "volume_nl": 1, "conc_ng_ml": 500_000,
            "change_id": "abcdef", "name": "resume"}
    for row in schema.rows():
        specs = schema.args(row)
        base = {}
        for s in specs:
            if s[4]:
                base[s[0]] = fine[s[0]]
        for s in specs:
            for v in bad_values(s):
                a = dict(base)
                a[s[0]] = v
                yield row[0], a
            if s[4]:
                a = dict(base)
                del a[s[0]]
                yield row[0], a
        a = dict(base)
        a["bogus"] = 1
        yield row[0], a
    for a in ({"name": "start"}, {"name": "resume"}, {"name": "clear"}):
        yield "action", a  # RUNNING: no such transition
    yield "refill", {"volume_nl": 1_000_000, "conc_ng_ml": 500_000}  # while running
    yield "config", {"cal_pl": 25_000}  # while running
    yield "config", {"low_nl": 30_000_000}  # above the capacity
    yield "confirm", {"change_id": "abcdef"}  # nothing staged
    yield "ack", {"code": 200}
    yield "stage", {"kind": "program", "change": {"mode": "continuous", "conc_ng_ml": 500_000,
                                                  "rate_nl_h": 1_000_000}}  # over max_rate
    yield "stage", {"kind": "bolus", "change": {"kind": "clinician", "dose_ng": 900_000,
                                                "duration_s": 600}}  # over max_bolus
    yield "stage", {"kind": "limits", "change": {"max_rate_nl_h": -1}}
    yield "stage", {"kind": "program", "change": {"mode": "flex", "conc_ng_ml": 500_000,
                                                  "dose_steps": [[0, "x"]]}}
    yield "stage", {"kind": "program", "change": {"mode": "flex", "conc_ng_ml": 500_000,
                                                  "dose_steps": 5}}


def test_fuzz_every_bad_line_gets_an_error_nothing_changes_dosing_exact():
    rig = ProtoRig()
    rig.start()
    rig.run(60_000)
    before = rig.snapshot()
    h = rig.host
    rng = Rng(0x2545F491)
    h.n = 0
    h.codes = {}
    owed = 0

    def feed(data, owe):
        h.inbox.append(data)
        rig.run(5 + (len(data) // 64 if isinstance(data, bytes) else 1100))  # 64 B/ms
        return owe

    # random bytes of every value but 0x03: 150 lines, then a stream with LFs anywhere
    for _ in range(150):
        owed += feed(b"~" + rng.line(1 + rng.next() % 120) + b"\n", 1)
    for _ in range(30):  # short pieces: the test's own heap is fragmented too
        s = rng.line(100, newline=True) + b"\n"
        owed += feed(s, answers(s))
    # NUL and invalid UTF-8
    for raw in (b"\x00", b"\x00" * 40, b'{"id":1,"cmd":"status"}\x00', b"\xff\xfe",
                b'{"id":1,"cmd":"action","args":{"name":"st\xc3"}}', b"\xc0\xaf", b"\x80abc",
                b'{"id":1,"cmd":"hello\xed\xa0\x80"}', b'"\xf4\x90\x80\x80"'):
        owed += feed(raw + b"\n", 1)
    # 64 KB lines: random and plain; a valid command at the end must not run
    owed += feed(long_line(rng, 64, b'{"id":5,"cmd":"action","args":{"name":"stop"}}\n'), 1)
    owed += feed(long_line(None, 64, b"\n"), 1)
    # a flood: 1,500 bad lines back to back
    owed += feed(repeat(b"!\n", 1000), 1000)
    owed += feed(repeat(b'{"id":1}\n', 500), 500)
    # valid-looking commands with bad values
    i = 0
    for cmd, args in bad_commands():
        i += 1
        owed += feed((json.dumps({"id": i, "cmd": cmd, "args": args}) + "\n").encode(), 1)
    assert i > 120, i
    # one byte of a read-only request changed (any value but 0x03 and LF)
    for k in range(150):
        r = bytearray(json.dumps({"id": k, "cmd": ("status", "alarms", "limits", "program", "log",
                                                   "hello", "config")[k % 7]}).encode())
        r[rng.next() % len(r)] = rng.byte()
        owed += feed(bytes(r) + b"\n", 1)
    rig.run(1000)
    assert h.n == owed, (h.n, owed, h.codes)
    bad = h.n - h.codes.get("ok", 0)
    assert bad >= owed - 150, h.codes  # only mutated read-only requests may succeed
    assert h.codes.get("internal", 0) == 0, h.codes
    assert rig.snapshot() == before
    assert rig.ctl.state == "RUNNING"
    rig.check_dosing()
    print("fuzz: %d lines answered, %s" % (h.n, h.codes))
