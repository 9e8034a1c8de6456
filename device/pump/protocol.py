"""The pump protocol on the USB serial link: JSON lines (docs/protocol.md, pump.schema).

    request   {"id":7,"cmd":"refill","args":{"volume_nl":20000000,"conc_ng_ml":500000}}
    reply     {"id":7,"ok":{...}}   or   {"id":7,"err":"arg","msg":"refill: ..."}
    event     {"ev":"alarm","code":2,"name":"RESERVOIR_EMPTY","prio":3,"on":1,"t":820000123}

Framing: a line ends with LF (a CR before it is dropped). A line longer than
schema.MAX_LINE bytes is discarded up to its newline without being buffered and
answered with one "too_long" error; blank lines are ignored. Every other line gets
exactly one reply. A bad line changes nothing: requests are validated against the
schema here, then by the controller, which refuses before it changes anything.

Cost: input is copied once into a fixed MAX_LINE buffer; a line is decoded and parsed
only when its newline arrives, so per-pass work is one line's json.loads at most per
line received. The dose IRQ does not depend on any of it.

Events: `on_pass` (once per main-loop pass) compares the therapy state and the
active alarm codes with the last pass and queues an event per difference.
"""
import json

from micropython import const

from pump import events as ev
from pump import schema
from pump.limits import FieldError
from pump.writer import Pages

_MSG_MAX = const(300)  # characters of an error message (a value echoed back is cut)


class ProtoError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def _check(row, args):
    """The validated args dict of a command row, or ProtoError("arg", ...)."""
    name = row[0]
    spec = schema.args(row)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtoError("arg", name + ": 'args' must be an object")
    keys = [a[0] for a in spec]
    for key in args:
        if key not in keys:
            raise ProtoError("arg", "%s: unknown argument %s; arguments: %s" % (
                name, _short(key), ", ".join(keys) or "none"))
    for key, typ, lo, hi, req in spec:
        if key not in args:
            if req:
                raise ProtoError("arg", "%s: missing argument '%s'" % (name, key))
            continue
        v = args[key]
        if typ == "int":
            ok = type(v) is int and lo <= v <= hi
            want = "an integer %d..%d" % (lo, hi)
        elif typ == "str":
            ok = isinstance(v, str) and lo <= len(v) <= hi and not (v and min(v) < " ")
            want = "text of %d..%d printable characters" % (lo, hi)
        elif typ == "enum":
            ok = isinstance(v, str) and v in lo
            want = "one of " + ", ".join(lo)
        else:
            ok = isinstance(v, dict)
            want = "an object"
        if not ok:
            raise ProtoError("arg", "%s: %s must be %s, got %s" % (name, key, want, _short(v)))
    return args


def _short(v):
    """A value for an error message, cut (never a long copy of what the host sent)."""
    if isinstance(v, (dict, list)):
        return "an object" if isinstance(v, dict) else "a list"
    s = json.dumps(v[:40] if isinstance(v, str) else v)
    return s if len(s) <= 44 else s[:41] + "..."


def _enc(o, w):
    """JSON of replies and events in small pieces (w(str) each), never one long string."""
    if isinstance(o, dict):
        c = "{"
        for k in o:
            w(c)
            c = ","
            _enc(str(k), w)
            w(":")
            _enc(o[k], w)
        w("{}" if c == "{" else "}")
    elif isinstance(o, (list, tuple)):
        c = "["
        for v in o:
            w(c)
            c = ","
            _enc(v, w)
        w("[]" if c == "[" else "]")
    elif isinstance(o, str) and len(o) > 48:
        w('"')
        for i in range(0, len(o), 48):
            w(json.dumps(o[i:i + 48])[1:-1])
        w('"')
    else:
        w(json.dumps(o))  # str, int, bool, None (no floats in replies)


class Protocol:
    """Line framing, parsing, validation, dispatch and replies for one link.

    writer: a pump.writer.Writer. Hook into app.MainLoop as on_input/on_pass."""

    def __init__(self, writer, max_line=schema.MAX_LINE):
        self.out = writer
        self._buf = bytearray(max_line)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._over = False  # discarding the rest of a too-long line
        self._state = None
        self._alarms = None
        self.errors = 0  # lines answered with an error

    # ---- framing ---------------------------------------------------------------------
    def on_input(self, ctl, data, now_ms):
        """Bytes from the host: frame them into lines and answer each complete one."""
        src = memoryview(data)
        size = len(data)
        cap = len(self._buf)
        i = 0
        while i < size:
            j = data.find(b"\n", i)
            end = size if j < 0 else j
            k = end - i
            if k and not self._over:
                n = self._n
                if n + k > cap:
                    self._over = True
                else:
                    self._mv[n:n + k] = src[i:end]
                    self._n = n + k
            if j < 0:
                break
            self._line(ctl, now_ms)
            i = j + 1
        self.out.drain()

    def _line(self, ctl, now_ms):
        n = self._n
        over = self._over
        self._n = 0
        self._over = False
        rid = None
        try:
            if over:
                raise ProtoError("too_long", "line longer than %d bytes: discarded" % len(self._buf))
            raw = self._mv[:n]
            if n and raw[n - 1] == 13:  # CR LF
                n -= 1
                raw = raw[:n]
            i = 0
            while i < n and raw[i] in (32, 9):
                i += 1
            if i == n:
                return  # blank: keep-alive, nothing to answer
            low = min(raw)
            if low < 32:
                i = 0
                while raw[i] != low:
                    i += 1
                raise ProtoError("encoding", "control byte 0x%02x at column %d: send JSON text"
                                 % (low, i))
            try:
                text = str(raw, "utf-8")
            except UnicodeError:
                raise ProtoError("encoding", "not UTF-8 text")
            try:
                req = json.loads(text)
            except ValueError as e:
                raise ProtoError("json", "not JSON (%s)" % e)
            text = None
            if not isinstance(req, dict):
                raise ProtoError("request", "expected an object {\"id\":N,\"cmd\":NAME[,\"args\":{}]}")
            v = req.get("id")
            if type(v) is int and 0 <= v <= schema.MAX_ID:
                rid = v
            else:
                raise ProtoError("request", "'id' must be an integer 0..%d, got %s"
                                 % (schema.MAX_ID, _short(v)))
            for key in req:
                if key not in ("id", "cmd", "args"):
                    raise ProtoError("request", "unknown key %s; keys: id, cmd, args" % _short(key))
            cmd = req.get("cmd")
            row = schema.command(cmd) if isinstance(cmd, str) else None
            if row is None:
                raise ProtoError("unknown_cmd", "unknown command %s; commands: %s" % (
                    _short(cmd), ", ".join(r[0] for r in schema.rows())))
            args = _check(row, req.get("args"))
            data = self._do(ctl, row[0], args, now_ms)
            self._send(False, {"id": rid, "ok": data})
            return
        except ProtoError as e:
            code, msg = e.code, str(e)
        except FieldError as e:
            code, msg = "arg", str(e)
        except ValueError as e:  # the controller refused; nothing changed
            code, msg = "refused", str(e)
        except Exception as e:  # a bug: answer, keep the loop (and the pump) going
            code, msg = "internal", "%s: %s" % (type(e).__name__, e)
        if len(msg) > _MSG_MAX:
            msg = msg[:_MSG_MAX - 3] + "..."
        self.errors += 1
        self._send(False, {"id": rid, "err": code, "msg": msg})

    def _send(self, is_event, obj):
        pg = Pages()
        _enc(obj, pg.write)
        pg.write("\n")
        pg.close()
        if is_event:
            self.out.event(pg.pages, pg.size)
        else:
            self.out.reply(pg.pages, pg.size)
        self.out.drain()  # a host that reads gets every reply of a flood

    # ---- events, once per main-loop pass ---------------------------------------------
    def on_pass(self, ctl, now_ms):
        st = ctl.state
        t = ctl.wall(now_ms)
        if self._state is None:
            self._send(True, {"ev": "boot", "fw": schema.FIRMWARE, "proto": schema.PROTOCOL,
                              "state": st, "t": t})
        elif st != self._state:
            self._send(True, {"ev": "state", "state": st, "was": self._state, "t": t})
        self._state = st
        codes = ctl.alarms.codes()
        old = self._alarms
        if old is None:
            old = []
        if codes != old:
            for c in codes:
                if c not in old:
                    self._alarm(c, 1, t)
            for c in old:
                if c not in codes:
                    self._alarm(c, 0, t)
        self._alarms = codes
        self.out.drain()

    def _alarm(self, code, on, t):
        row = ev.alarm(code)
        self._send(True, {"ev": "alarm", "code": code, "name": row[1], "prio": row[2], "on": on,
                          "t": t})

    # ---- commands (args already checked against the schema) --------------------------
    def _do(self, ctl, cmd, a, now):
        g = a.get
        if cmd == "status":
            d = ctl.status(now)
            d["out_dropped"] = self.out.dropped
            return d
        if cmd == "hello":
            if "wall" in a:
                ctl.set_clock(a["wall"], now)
            b = ctl.board
            return {"fw": schema.FIRMWARE, "proto": schema.PROTOCOL, "board": b.NAME,
                    "mcu": getattr(b, "MCU", ""), "caps": schema.CAPABILITIES,
                    "max_line": len(self._buf), "wall": ctl.wall(now),
                    "clock_confirmed": ctl.clock.confirmed}
        if cmd == "stage":
            cid, summary = ctl.stage(a["kind"], a["change"], now)
            return {"change_id": cid, "summary": summary}
        if cmd == "confirm":
            ch = ctl.confirm(a["change_id"], now)
            return {"change_id": ch.id, "kind": ch.kind, "state": ctl.state}
        if cmd == "action":
            return {"state": ctl.action(a["name"], now)}
        if cmd == "bolus":
            return {"bolus": ctl.demand_bolus(now).to_dict()}
        if cmd == "refill":
            r = ctl.refill(a["volume_nl"], a["conc_ng_ml"], now)
            return {"volume_nl": r.new_nl, "conc_ng_ml": r.new_conc, "conc_changed": r.conc_changed}
        if cmd == "config":
            return ctl.set_config(a, now) if a else dict(ctl.config)
        if cmd == "ack":
            code = g("code")
            if code is not None:
                try:
                    ev.alarm(code)
                except ValueError as e:
                    raise ProtoError("arg", "ack: %s" % e)
            return {"acked": ctl.acknowledge(code, now)}
        if cmd == "alarms":
            return {"alarms": ctl.alarms.active()}
        if cmd == "log":
            return {"records": [list(r) for r in ctl.log.read(g("since", 0), g("n", schema.LOG_PAGE))]}
        if cmd == "limits":
            return ctl.limits.to_dict()
        if cmd == "program":
            return ctl.program.to_dict()
        raise ProtoError("internal", "%s: in the schema but not handled" % cmd)
