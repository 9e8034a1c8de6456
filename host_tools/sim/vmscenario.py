"""Runs one scenario inside the MicroPython VM: the unmodified firmware (pump.app) on
the virtual board with its physics, in virtual time.

    micropython vmscenario.py SPEC.json

SPEC.json is written by host_tools/sim/scenario.py (times in ms, quantities already in
the device's units). Output on stdout, one line each, prefixed so the host can tell
them from the firmware's own prints:
    @S [sample]      trace sample (fields: SAMPLE_FIELDS, in that order)
    @E {event}       a scenario event as applied (ok or the device's refusal)
    @L [record]      a device event-log record: t_ms, seq, uptime_ms, wall, code, a0, a1, a2
    @H [t_ms, dir, line]  a protocol line on the USB link ("in": host -> pump, "out")
    @D {summary}     the end of the run
Everything else on stdout is the firmware's console output.

When the spec has host events ("host_link"), the pump protocol is wired as device/main.py
wires it: a pump.writer.Writer on a simulated port and a pump.protocol.Protocol whose
on_input/on_pass hooks go into app.MainLoop; `host` events queue request lines that the
loop's wait() hands over, and while the host does not read the port is not writable.
"""
import json
import sys

from vboard import machine, vtime
from vboard.clock import CLOCK, TICKS_PERIOD
from vboard.physics import Physics
from pump import app
from pump.dose import COUNT_MASK
from pump.protocol import Protocol
from pump.writer import Writer
from pump.therapy import RUNNING, SUSPENDED, STOPPED, ALARM_STOP

SAMPLE_FIELDS = ("t_ms", "state", "rate_nl_h", "programmed_nl", "commanded_steps", "commanded_nl",
                 "pumped_nl", "delivered_nl", "leaked_nl", "pressure_kpa", "adc_code", "sensor_kpa",
                 "reservoir_fw_nl", "reservoir_true_nl", "alarms")


def emit(tag, obj):
    print(tag, json.dumps(obj))


_IN_CHUNK = 64  # bytes handed to the protocol per wait, as main.py reads them


class HostLink:
    """The board's USB serial port as the scenario's host uses it. Input: bytes queued by
    `host` events. Output: taken whole while the host reads; while it does not, the port
    reports not writable (the Writer must never call write then). Lines the host receives
    are emitted as @H, at most `limit` of them (then only counted)."""

    def __init__(self, t_ms, limit):
        self.t_ms = t_ms
        self.limit = limit
        self.inbox = b""
        self.reading = True
        self.rx = bytearray()
        self.lines_in = 0
        self.lines_out = 0
        self.omitted = 0

    def send(self, line):
        self.inbox += line
        self.lines_in += 1
        self._show("in", line.rstrip(b"\n"))

    def take(self):
        data = self.inbox[:_IN_CHUNK]
        self.inbox = self.inbox[_IN_CHUNK:]
        return data

    def writable(self):
        return self.reading

    def write(self, buf):
        if not self.reading:
            raise RuntimeError("the writer wrote to a port that is not writable (it would block)")
        self.rx += buf
        while True:
            i = self.rx.find(b"\n")
            if i < 0:
                break
            self.lines_out += 1
            self._show("out", self.rx[:i])
            self.rx = self.rx[i + 1:]
        return len(buf)

    def _show(self, d, line):
        if self.lines_in + self.lines_out > self.limit:
            self.omitted += 1
            return
        emit("@H", [self.t_ms(), d, str(bytes(line), "utf-8")])

    def power_off(self):
        self.inbox = b""  # unread input and a half-received line are lost with the board
        self.rx = bytearray()


class Driver:
    def __init__(self, spec):
        self.spec = spec
        b = __import__("boards." + spec.get("board_name", "virtual"), None, None, ["NAME"])
        self.board = b
        for key, upd in spec.get("board", {}).items():
            cur = getattr(b, key)
            if isinstance(cur, dict):
                new = dict(cur)
                new.update(upd)
                setattr(b, key, new)
            else:
                setattr(b, key, upd)
        self.root = spec["root"]
        CLOCK.reset_hardware()
        CLOCK.now_us = TICKS_PERIOD - 2_000_000  # the ticks wrap 2 s in, as on a long-running board
        self.t0_us = CLOCK.now_us
        machine.PORT["hard_timer"] = True
        self.phys = Physics(CLOCK, spec.get("physics"))
        self.phys.install(machine, b.MOTOR, getattr(b, "PRESSURE", None))
        self.cal_pl = b.PUMP["cal_pl_per_step"]
        self.loop = None
        self.ctl = None
        self.steps_done = 0  # commanded steps of earlier boots
        self.plan_acc = 0  # nL*ms/h of the firmware's target rate, all boots
        self.plan_rate = 0
        self.plan_ms = 0
        self.log_seq = 0
        self.boots = 0
        self.power_on_at = None
        self.link = HostLink(self.t_ms, spec.get("host_io_max", 1000)) if spec.get("host_link") else None
        self.writer = None
        self.dropped_before = 0  # writer drops of earlier boots
        self.boot(machine.PWRON_RESET)

    # ---- time -----------------------------------------------------------------------
    def t_ms(self):
        return (CLOCK.now_us - self.t0_us) // 1000

    def _make_wait(self):
        advance = CLOCK.advance

        def wait(ms):  # the board's sleep: virtual time passes, timers fire
            advance(ms * 1000)
            return None

        return wait

    def _make_link_wait(self, writer):
        """main.py's stdin_waiter on the simulated port: drain what the port takes,
        hand over queued input at once, else sleep the timeout (virtual time)."""
        advance = CLOCK.advance
        link = self.link

        def wait(ms):
            writer.drain()
            if link.inbox:
                return link.take()
            advance(ms * 1000)
            writer.drain()
            return None

        return wait

    def run_to(self, t_ms):
        if self.loop is not None:
            self.loop.run(t_ms - self.boot_at)
        else:  # powered off: time passes, nothing runs
            CLOCK.advance_to(self.t0_us + t_ms * 1000)
        self.phys.maybe_sync()

    # ---- boots ----------------------------------------------------------------------
    def boot(self, cause):
        machine._reset_cause[0] = cause
        self.boot_at = self.t_ms()
        if self.link is None:
            self.loop = app.start(self.board, machine, vtime, self._make_wait(), root=self.root)
        else:  # as main.py: the link first, then the pump with the protocol's hooks
            link = self.link
            w = self.writer = Writer(link.write, link.writable)
            proto = Protocol(w)
            self.loop = app.start(self.board, machine, vtime, self._make_link_wait(w), proto.on_input,
                                  root=self.root, on_pass=proto.on_pass)
        self.boots += 1
        ctl = self.ctl = self.loop.ctl
        self.fwd0 = ctl.engine.fwd
        self.rev0 = ctl.engine.rev
        self.plan_ms = 0
        self.plan_rate = ctl.rate_nl_h
        orig = ctl.service
        phys = self.phys

        def service(now_ms):
            # every main-loop pass (at least once a minute): the firmware's target rate
            # for `programmed`, and the physics integrated about every sync_s
            self.plan_acc += self.plan_rate * (now_ms - self.plan_ms)
            self.plan_ms = now_ms
            if CLOCK.now_us >= phys.next_sync_us:
                phys.sync()
            try:
                return orig(now_ms)
            finally:
                self.plan_rate = ctl.rate_nl_h

        ctl.service = service
        self.read_log()

    def counted(self):
        if self.ctl is None:
            return self.steps_done
        e = self.ctl.engine
        return self.steps_done + ((e.fwd - self.fwd0) & COUNT_MASK) - ((e.rev - self.rev0) & COUNT_MASK)

    def power_off(self):
        self.read_log()
        self.steps_done = self.counted()
        self.plan_now()
        self.plan_rate = 0
        self.ctl.engine.stop()
        CLOCK.reset_hardware()  # every timer (and the watchdog) dies with the power
        self.phys.power_off()
        if self.link is not None:
            self.dropped_before += self.writer.dropped
            self.writer = None
            self.link.power_off()
        self.loop = None
        self.ctl = None

    def plan_now(self):
        """Account the firmware's target rate up to now (before a command changes it)."""
        if self.loop is not None:
            now = self.loop.now()
            self.plan_acc += self.plan_rate * (now - self.plan_ms)
            self.plan_ms = now

    # ---- log ------------------------------------------------------------------------
    def read_log(self):
        ctl = self.ctl
        if ctl is None:
            return
        up = self.loop.now()
        while ctl.log.next_seq - 1 > self.log_seq:
            recs = ctl.log.read(self.log_seq, 32)
            if not recs:
                break
            for r in recs:
                age = (up - r.uptime_ms) & 0xFFFFFFFF
                emit("@L", [self.boot_at + up - age, r.seq, up - age, r.wall, r.code, r.a0, r.a1, r.a2])
                self.log_seq = r.seq

    # ---- events ---------------------------------------------------------------------
    def apply(self, e):
        kind = e["do"]
        out = {"t_ms": self.t_ms(), "do": kind, "ok": True}
        if e.get("label"):
            out["label"] = e["label"]
        if kind == "fault":
            out["kind"] = e["kind"]
            if e.get("value") is not None:
                out["value"] = e["value"]
        try:
            detail = self._apply(kind, e)
            if detail is not None:
                out["detail"] = detail
        except ValueError as x:
            out["ok"] = False
            out["error"] = str(x)
        finally:
            if self.ctl is not None:
                self.plan_rate = self.ctl.rate_nl_h
        emit("@E", out)

    def _need_power(self, kind):
        if self.ctl is None:
            raise ValueError("%s: the board is powered off" % kind)
        self.plan_now()
        return self.ctl, self.loop.now()

    def _apply(self, kind, e):
        phys = self.phys
        if kind == "fault":
            phys.set_fault(e["kind"], e.get("value"))
            return None
        if kind == "note":
            return None
        if kind in ("host", "host_stops_reading", "host_resumes_reading"):
            return self._host(kind, e)
        if kind == "power_loss":
            if self.ctl is None:
                raise ValueError("power_loss: already off")
            self.power_off()
            self.power_on_at = self.t_ms() + e.get("off_ms", 0)
            if not e.get("off_ms", 0):
                self.power_on()
            return None
        if kind == "reset":
            if self.ctl is None:
                raise ValueError("reset: the board is powered off")
            self.power_off()
            self.boot(machine.WDT_RESET if e.get("cause", "wdt") == "wdt" else machine.PWRON_RESET)
            return self.ctl.state
        ctl, now = self._need_power(kind)
        if kind == "set_clock":
            w = e.get("wall")
            ctl.set_clock(self.spec["wall_start"] + self.t_ms() // 1000 if w is None else w, now)
        elif kind == "config":
            ctl.set_config(e["fields"], now)
        elif kind == "limits":
            d = ctl.limits.to_dict()
            d.update(e["fields"])
            cid, _s = ctl.stage("limits", d, now)
            ctl.confirm(cid, now)
        elif kind == "program":
            cid, _s = ctl.stage("program", e["program"], now)
            ctl.confirm(cid, now)
            if e.get("start") and ctl.state == STOPPED:
                ctl.action("start", now)
        elif kind == "bolus":
            b = e["bolus"]
            if b.get("kind") == "demand":
                got = ctl.demand_bolus(now)
            else:
                cid, _s = ctl.stage("bolus", b, now)
                got = ctl.confirm(cid, now).obj
            return {"volume_nl": got.volume_nl, "duration_s": got.duration_s}
        elif kind == "refill":
            was = ctl.state
            if was == RUNNING:
                ctl.action("suspend", now)
            try:
                ctl.refill(e["volume_nl"], e["conc_ng_ml"], now)
            except ValueError:
                if was == RUNNING:
                    ctl.action("resume", now)
                raise
            phys.refill(e.get("true_volume_nl", e["volume_nl"]) / 1000.0)
            if ctl.state == ALARM_STOP and e.get("clear", True):
                ctl.action("clear", now)
            if e.get("resume", was in (RUNNING, ALARM_STOP)):
                if ctl.state == SUSPENDED:
                    ctl.action("resume", now)
                elif ctl.state == STOPPED:
                    ctl.action("start", now)
            return ctl.state
        elif kind == "action":
            return ctl.action(e["name"], now)
        elif kind == "acknowledge":
            from pump import events as ev

            code = e.get("code")
            if isinstance(code, str):
                code = getattr(ev, code)
            ctl.acknowledge(code, now)
        else:
            raise ValueError("event %r unknown" % kind)
        return None

    def host_dropped(self):
        return self.dropped_before + (self.writer.dropped if self.writer is not None else 0)

    def _host(self, kind, e):
        link = self.link
        if kind == "host":
            if self.ctl is None:
                raise ValueError("host: the board is powered off (the line is lost)")
            link.send(e["line"].encode() + b"\n")  # the main loop's wait() hands it over
            return None
        link.reading = kind == "host_resumes_reading"
        w = self.writer
        return {"dropped": self.host_dropped(), "queued_bytes": w._size if w is not None else 0}

    def power_on(self):
        self.power_on_at = None
        self.boot(machine.PWRON_RESET)

    # ---- samples --------------------------------------------------------------------
    def sample(self):
        phys = self.phys
        code = phys.adc_code()  # the same conversion the firmware's ADC would make
        ctl = self.ctl
        steps = self.counted()
        if ctl is not None:
            self.plan_now()
            state, rate = ctl.state, ctl.rate_nl_h
            res_fw = ctl.reservoir.volume_nl
            alarms = [a[0] for a in ctl.alarms.active()]
        else:
            state, rate, res_fw, alarms = "OFF", 0, None, []
        emit("@S", [self.t_ms(), state, rate, self.plan_acc // 3_600_000, steps,
                    steps * self.cal_pl // 1000, int(phys.pumped_ul * 1000), int(phys.delivered_ul * 1000),
                    int(phys.leaked_ul * 1000), round(phys.P, 3), code, round(phys.kpa_from_code(code), 2),
                    res_fw, int(phys.reservoir_ul * 1000), alarms])

    def run(self):
        spec = self.spec
        events = spec["events"]
        duration = spec["duration_ms"]
        step = spec["sample_ms"]
        i = 0
        next_sample = 0
        while True:
            t = self.t_ms()
            nxt = next_sample
            if i < len(events) and events[i]["t_ms"] < nxt:
                nxt = events[i]["t_ms"]
            if self.power_on_at is not None and self.power_on_at < nxt:
                nxt = self.power_on_at
            if nxt > duration:
                nxt = duration
            if nxt > t:
                self.run_to(nxt)
            t = self.t_ms()
            if self.power_on_at is not None and self.power_on_at <= t:
                self.power_on()
            while i < len(events) and events[i]["t_ms"] <= t:
                self.apply(events[i])
                i += 1
            self.read_log()
            if t >= next_sample or t >= duration:
                self.sample()
                while next_sample <= t:
                    next_sample += step
            if t >= duration:
                break
        self.read_log()
        ctl = self.ctl
        st = self.phys.state()
        emit("@D", {"t_ms": self.t_ms(), "boots": self.boots, "commanded_steps": self.counted(),
                    "programmed_nl": self.plan_acc // 3_600_000, "cal_pl": self.cal_pl,
                    "physics": st, "peak_kpa": self.phys.peak_kpa,
                    "status": ctl.status(self.loop.now()) if ctl is not None else None,
                    "wdt_expired": bool(machine.WDT.last and machine.WDT.last.expired()) if ctl else False,
                    "host": None if self.link is None else {
                        "dropped": self.host_dropped(), "lines_in": self.link.lines_in,
                        "lines_out": self.link.lines_out, "io_omitted": self.link.omitted,
                        "reading": self.link.reading,
                        "queued_bytes": self.writer._size if self.writer is not None else 0}})


def main(argv):
    with open(argv[1]) as f:
        spec = json.load(f)
    Driver(spec).run()


main(sys.argv)
