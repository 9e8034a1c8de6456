"""The pump protocol's one schema: versions, framing bounds, commands and their arguments.

Data only. The device validates every request against it (pump.protocol), the host
builds its requests from it, docs/protocol.md is checked against it by
tests/device/test_protocol.py. Change a command or an argument here and bump
PROTOCOL for anything a released host could trip over.

COMMANDS is a text table, one command a line: "name args | one-line doc" (Klipper-style
declarations: text costs ~3 KB less VM heap than the same table as tuples). args are
space-separated "name:type[:a:b]"; a "?" after the name makes it optional:
  int:a:b    an integer a..b (JSON number without fraction or exponent; not true/false)
  str:a:b    a string of a..b characters, none below U+0020
  enum:x|y   one of the strings x, y
  obj        a JSON object; the controller validates its fields
Ranges here are the protocol's envelope; the controller checks the finer rules
(the limits in force, the reservoir capacity, the therapy state) and refuses with
its own message. Read it with rows() / command(name) -> (name, args, doc) and args(row).
"""
try:
    from micropython import const
except ImportError:  # host tools import this file on plain CPython
    def const(__x):  # positional-only, like the stub's
        return __x

PROTOCOL = const(1)
FIRMWARE = "0.1.0"
MAX_LINE = const(512)  # bytes of one request line, newline excluded
MAX_ID = const(2_147_483_647)
LOG_PAGE = const(8)  # log records per reply
CAPABILITIES = ("stage-confirm", "events", "log", "clock", "demand-bolus")

# Error codes of {"id": .., "err": CODE, "msg": ".."} and unsolicited events {"ev": NAME, ...};
# their meanings are in docs/protocol.md (a test checks that it lists every one).
ERRORS = ("too_long", "encoding", "json", "request", "unknown_cmd", "arg", "refused", "internal")
EVENTS = ("boot", "state", "alarm", "dropped")

COMMANDS = """\
hello wall?:int:0:2147483647 | identify the pump (firmware, protocol, board, capabilities); 'wall' sets the clock
status | therapy state, rate, reservoir, alarms, clock
stage kind:enum:program|limits|bolus change:obj | validate a change and hold it for confirm; returns its id and old/new summary
confirm change_id:str:6:6 | commit the staged change named by its id
action name:enum:start|stop|suspend|resume|clear | start, stop, suspend, resume or clear (leave ALARM_STOP)
bolus | a patient demand bolus under the program's lockout
refill volume_nl:int:0:1000000000 conc_ng_ml:int:1000:50000000 | record a refill: the volume now in the reservoir and its concentration
config drug?:str:0:24 cal_pl?:int:1000:10000000 low_nl?:int:0:1000000000 dead_volume_nl?:int:0:5000000 | change the config fields given (none: read the config)
ack code?:int:1:255 | silence one alarm by code, or every active alarm
alarms | active alarms: [code, prio, arg, raised_ms, condition, acked, silenced_until_ms]
log since?:int:0:2147483647 n?:int:1:8 | event-log records after seq 'since': [seq, uptime_ms, wall, code, a0, a1, a2]
limits | the hard limits in force
program | the therapy program in force
"""


def _row(line):
    head, doc = line.split(" | ", 1)
    name, _, spec = head.partition(" ")
    return name, spec, doc


def rows():
    """Every command as (name, args, doc)."""
    return [_row(ln) for ln in COMMANDS.split("\n") if ln]


def command(name):
    """(name, args, doc) of a command, or None."""
    i = COMMANDS.find(name + " ")
    while i >= 0:
        if i == 0 or COMMANDS[i - 1] == "\n":
            r = _row(COMMANDS[i:COMMANDS.index("\n", i)])
            return r if r[0] == name else None
        i = COMMANDS.find(name + " ", i + 1)
    return None


def args(row):
    """The arguments of a command row as (name, type, a, b, required): int/str a..b,
    enum a = tuple of choices."""
    out = []
    for tok in row[1].split():
        f = tok.split(":")
        name = f[0]
        req = not name.endswith("?")
        name = name if req else name[:-1]
        typ = f[1]
        if typ in ("int", "str"):
            out.append((name, typ, int(f[2]), int(f[3]), req))
        elif typ == "enum":
            out.append((name, typ, tuple(f[2].split("|")), None, req))
        else:
            out.append((name, typ, None, None, req))
    return out
