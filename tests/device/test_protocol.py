"""pump.protocol against a stand-in controller: framing, validation, errors, dispatch, events.

The whole firmware behind the protocol (therapy by protocol, fuzz with dosing, a stalled
host) is in test_protocol_fuzz.py; this module stays off the firmware so its VM heap is
small (the firmware takes ~136 KB of the 192 KB).
"""
import json
import sys

if __name__ == "__main__":  # python tests/device/test_protocol.py --write-docs
    sys.path.insert(0, __file__.rsplit("/", 2)[0])
    import conftest  # noqa: F401  (the CPython import paths)

from pump import events as ev
from pump import schema
from pump.limits import FieldError
from pump.protocol import Protocol
from pump.writer import Writer


class Board:
    NAME = "test board"
    MCU = "none"


class Dict:
    def __init__(self, d):
        self.d = d

    def to_dict(self):
        return dict(self.d)


class Alarms:
    def __init__(self):
        self.list = []

    def codes(self):
        return [a[0] for a in self.list]

    def active(self):
        return list(self.list)


class Clock:
    confirmed = False


class Ctl:
    """Records every command it receives; refuses like the controller does."""

    def __init__(self):
        self.calls = []
        self.state = "STOPPED"
        self.board = Board
        self.clock = Clock()
        self.alarms = Alarms()
        self.limits = Dict({"max_rate_nl_h": 100_000})
        self.program = Dict({"mode": "stopped"})
        self.config = {"drug": ""}
        self.log = self

    def read(self, since, n):
        return [(s, 0, 0, 1, 0, 0, 0) for s in range(since + 1, min(since + n, 20) + 1)]

    def wall(self, now=None):
        return 1000

    def set_clock(self, wall, now):
        self.calls.append(("set_clock", wall))
        self.clock.confirmed = True

    def status(self, now):
        return {"state": self.state}

    def stage(self, kind, change, now):
        if change.get("bad"):
            raise FieldError("program: field 'bad' unknown")
        self.calls.append(("stage", kind))
        return "0a1b2c", {"kind": kind}

    def confirm(self, cid, now):
        raise ValueError("no change is staged (or it was replaced); stage it again")

    def action(self, name, now):
        self.calls.append(("action", name))
        self.state = "RUNNING"
        return self.state

    def demand_bolus(self, now):
        raise RuntimeError("boom")

    def refill(self, v, c, now):
        raise ValueError("suspend or stop therapy before refilling")

    def set_config(self, d, now):
        self.calls.append(("set_config", d))
        return d

    def acknowledge(self, code, now):
        self.calls.append(("ack", code))
        return 1


class Link:
    def __init__(self):
        self.out = bytearray()
        self.ctl = Ctl()
        self.proto = Protocol(Writer(self.write, lambda: True))

    def write(self, b):
        self.out += b
        return len(b)

    def feed(self, data):
        self.proto.on_input(self.ctl, data, 5)
        return self.msgs()

    def msgs(self):
        got = [json.loads(x) for x in bytes(self.out).split(b"\n") if x]
        self.out = bytearray()
        return got

    def one(self, line):
        got = self.feed(line if line.endswith(b"\n") else line + b"\n")
        assert len(got) == 1, (line, got)
        return got[0]


def req(cmd, args=None, rid=1):
    r = {"id": rid, "cmd": cmd}
    if args is not None:
        r["args"] = args
    return json.dumps(r).encode()


BAD = (  # (line, error code, id in the reply)
    (b"x" * 600, "too_long", None),
    (b'{"id":1,"cmd":"status"}\x00', "encoding", None),
    (b'{"id":1,"cmd":"st\xffatus"}', "encoding", None),
    (b"{not json", "json", None),
    (b"[1,2]", "request", None),
    (b'{"cmd":"status"}', "request", None),
    (b'{"id":true,"cmd":"status"}', "request", None),
    (b'{"id":-1,"cmd":"status"}', "request", None),
    (b'{"id":1.5,"cmd":"status"}', "request", None),
    (b'{"id":1,"cmd":"status","x":1}', "request", 1),
    (b'{"id":1,"cmd":"reboot"}', "unknown_cmd", 1),
    (b'{"id":1,"cmd":7}', "unknown_cmd", 1),
    (b'{"id":1,"cmd":"status","args":[]}', "arg", 1),
    (b'{"id":1,"cmd":"status","args":{"verbose":1}}', "arg", 1),
    (b'{"id":1,"cmd":"refill","args":{"volume_nl":1}}', "arg", 1),
    (b'{"id":1,"cmd":"refill","args":{"volume_nl":1.0,"conc_ng_ml":500000}}', "arg", 1),
    (b'{"id":1,"cmd":"refill","args":{"volume_nl":true,"conc_ng_ml":500000}}', "arg", 1),
    (b'{"id":1,"cmd":"refill","args":{"volume_nl":-1,"conc_ng_ml":500000}}', "arg", 1),
    (b'{"id":1,"cmd":"action","args":{"name":"explode"}}', "arg", 1),
    (b'{"id":1,"cmd":"config","args":{"drug":"a\\u0000b"}}', "arg", 1),
    (b'{"id":1,"cmd":"confirm","args":{"change_id":"0a1b2c3"}}', "arg", 1),
    (b'{"id":1,"cmd":"ack","args":{"code":99}}', "arg", 1),
    (b'{"id":1,"cmd":"stage","args":{"kind":"program","change":{"bad":1}}}', "arg", 1),
    (b'{"id":1,"cmd":"refill","args":{"volume_nl":1,"conc_ng_ml":1000}}', "refused", 1),
    (b'{"id":1,"cmd":"bolus"}', "internal", 1),
)


def test_every_kind_of_bad_line_gets_one_error_naming_it_and_changes_nothing():
    k = Link()
    for line, code, rid in BAD:
        r = k.one(line)
        assert r.get("err") == code and r["id"] == rid, (line, r)
        assert 10 < len(r["msg"]) <= 300, r
    assert k.ctl.calls == [] and k.ctl.state == "STOPPED"
    assert k.proto.errors == len(BAD)


def test_messages_name_the_field_and_the_range():
    k = Link()
    m = k.one(req("refill", {"volume_nl": 5, "conc_ng_ml": 10}))["msg"]
    assert "conc_ng_ml" in m and "1000..50000000" in m
    m = k.one(req("config", {"nozzle": 1}))["msg"]
    assert "nozzle" in m and "drug" in m
    m = k.one(req("action", {"name": "go"}))["msg"]
    assert "start" in m and "clear" in m
    m = k.one(req("confirm", {"change_id": "x" * 400}))["msg"]
    assert len(m) < 140  # a long value is cut, not echoed whole


def test_commands_reach_the_controller_with_checked_args():
    k = Link()
    h = k.one(req("hello", {"wall": 820_000_000}))["ok"]
    assert h["fw"] == schema.FIRMWARE and h["proto"] == schema.PROTOCOL and h["board"] == Board.NAME
    assert h["caps"] == list(schema.CAPABILITIES) and h["max_line"] == schema.MAX_LINE
    assert h["clock_confirmed"] is True
    assert k.one(req("stage", {"kind": "limits", "change": {}}))["ok"]["change_id"] == "0a1b2c"
    assert k.one(req("action", {"name": "start"}))["ok"] == {"state": "RUNNING"}
    assert k.one(req("config"))["ok"] == {"drug": ""}
    assert k.one(req("config", {"drug": "baclofen"}))["ok"] == {"drug": "baclofen"}
    assert k.one(req("ack"))["ok"] == {"acked": 1}
    assert k.one(req("ack", {"code": ev.OCCLUSION}))["ok"] == {"acked": 1}
    assert k.ctl.calls == [("set_clock", 820_000_000), ("stage", "limits"), ("action", "start"),
                           ("set_config", {"drug": "baclofen"}), ("ack", None), ("ack", ev.OCCLUSION)]
    assert k.one(req("status"))["ok"] == {"state": "RUNNING", "out_dropped": 0}
    assert k.one(req("limits"))["ok"] == {"max_rate_nl_h": 100_000}
    assert k.one(req("program"))["ok"] == {"mode": "stopped"}
    assert k.one(req("alarms"))["ok"] == {"alarms": []}
    recs = k.one(req("log", {"since": 3, "n": 2}))["ok"]["records"]
    assert [r[0] for r in recs] == [4, 5] and len(recs[0]) == 7


def test_framing_split_lines_several_per_read_crlf_and_blank_lines():
    k = Link()
    assert k.feed(b'{"id":1,"cm') == []
    got = k.feed(b'd":"status"}\r\n\n \t\r\n{"id":2,"cmd":"alarms"}\n{"id":3,')
    assert [m["id"] for m in got] == [1, 2]
    assert [m["id"] for m in k.feed(b'"cmd":"limits"}\n')] == [3]


def test_a_long_line_is_discarded_as_it_arrives_and_answered_once():
    k = Link()
    for _ in range(100):  # 6.4 KB, never buffered
        assert k.feed(b"A" * 64) == []
    got = k.feed(b'A{"id":9,"cmd":"action","args":{"name":"start"}}\n{"id":4,"cmd":"status"}\n')
    assert [m.get("err", "ok") for m in got] == ["too_long", "ok"] and got[1]["id"] == 4
    assert k.ctl.calls == []


def test_events_for_state_and_alarms_once_per_change():
    k = Link()
    c = k.ctl
    k.proto.on_pass(c, 0)
    c.state = "RUNNING"
    c.alarms.list = [(ev.RESERVOIR_LOW, 2, 0, 0, True, False, 0)]
    k.proto.on_pass(c, 1)
    k.proto.on_pass(c, 2)
    c.alarms.list = []
    k.proto.on_pass(c, 3)
    got = k.msgs()
    assert got[0] == {"ev": "boot", "fw": schema.FIRMWARE, "proto": schema.PROTOCOL,
                      "state": "STOPPED", "t": 1000}
    assert got[1] == {"ev": "state", "state": "RUNNING", "was": "STOPPED", "t": 1000}
    assert got[2] == {"ev": "alarm", "code": ev.RESERVOIR_LOW, "name": "RESERVOIR_LOW",
                      "prio": ev.MEDIUM, "on": 1, "t": 1000}
    assert got[3]["ev"] == "alarm" and got[3]["on"] == 0 and len(got) == 4


# ---- the schema and its document ---------------------------------------------------------
def test_schema_envelope_matches_the_device_rules():
    from pump import limits, reservoir

    arg = schema.args
    refill = arg(schema.command("refill"))
    assert refill[0][3] == reservoir.MAX_CAPACITY_NL
    assert (refill[1][2], refill[1][3]) == (limits.MIN_CONC, limits.MAX_CONC)
    assert len(ev.ALARMS) <= arg(schema.command("ack"))[0][3]
    assert arg(schema.command("log"))[1][3] == schema.LOG_PAGE
    assert arg(schema.command("hello"))[0][3] == schema.MAX_ID
    names = [r[0] for r in schema.rows()]
    assert len(set(names)) == len(names) and schema.command("nope") is None
    for bad in ("", "limits |", "status\nlimits", "sta"):
        assert schema.command(bad) is None, bad
    for row in schema.rows():
        assert 10 < len(row[2]) < 100, row
        for a in arg(row):
            assert a[1] in ("int", "str", "enum", "obj"), a


def render():
    """The reference table of docs/protocol.md, from pump.schema."""
    out = ["Protocol %d, firmware %s, lines up to %d bytes." % (
        schema.PROTOCOL, schema.FIRMWARE, schema.MAX_LINE), "",
        "| command | arguments | what it does |", "|---|---|---|"]
    for name, spec, doc in schema.rows():
        spec = "`%s`" % spec.replace("|", "\\|") if spec else "-"
        out.append("| `%s` | %s | %s |" % (name, spec, doc))
    return "\n".join(out)


_BEGIN = "<!-- schema:begin (generated from device/pump/schema.py; do not edit) -->"


def doc_path():
    return __file__.rsplit("/", 1)[0] + "/../../docs/protocol.md"


def test_docs_protocol_md_is_the_schema():
    with open(doc_path()) as f:
        doc = f.read()
    assert render() in doc, ("docs/protocol.md is stale: run "
                             "`.venv/bin/python tests/device/test_protocol.py --write-docs`")
    for name in schema.ERRORS + schema.EVENTS:
        assert "| `%s` |" % name in doc, name


if __name__ == "__main__" and "--write-docs" in sys.argv:
    with open(doc_path()) as f:
        doc = f.read()
    i = doc.index(_BEGIN) + len(_BEGIN)
    j = doc.index("<!-- schema:end -->")
    with open(doc_path(), "w") as f:
        f.write(doc[:i] + "\n" + render() + "\n" + doc[j:])
