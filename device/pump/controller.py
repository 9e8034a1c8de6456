"""The pump's state machine: one `service(now_ms)` per main-loop pass.

Everything outside the dose IRQ meets here: counted steps -> reservoir ->
alarms and log; program + boluses -> the engine's step interval; persisted
state -> self-test -> therapy. It owns the one fail-safe path, `shutdown()`.

Persisted records (pump.store), each CRC-checked and replaced atomically:
  config   drug name, calibration, reservoir capacity and low threshold, dead volume
  limits   the hard limits (pump.limits)
  program  the therapy program and the therapy state to resume after a reset
  counters reservoir ledger with steps reserved ahead, service life, demand-bolus
           times, last known wall time
Counters are written *before* the steps they count: the record claims
`reserve` steps more than delivered, and a checkpoint is due once 7/8 of the
reserve is used (the main loop wakes for it: its deadline follows the rate). After an unexpected reset the reservoir is therefore never
over-estimated (it errs on "less left" by at most one reserve).

Times: `now_ms` is uptime in ms (the main loop's monotonic counter); wall time
(s since 2000-01-01) comes from pump.wallclock and drives the therapy program.
"""
from micropython import const

from pump import events as ev
from pump import therapy, units
from pump.alarms import AlarmManager, ALL
from pump.limits import HardLimits, check_bolus
from pump.reservoir import Reservoir, ALARM_GROUP as RESERVOIR_ALARMS
from pump.power import ServiceLife, ALARM_GROUP as POWER_ALARMS
from pump.staging import Stager
from pump.therapy import STOPPED, RUNNING, SUSPENDED, ALARM_STOP, SELFTEST
from pump.wallclock import WallClock
from pump.dose import StepLedger

try:
    from typing import Optional  # noqa: F401
except ImportError:
    pass

SCHEMA = const(1)
RECORDS = ("config", "limits", "program", "counters")
_RESERVE_MS = const(600_000)  # reserve ~10 min of steps per checkpoint (flash endurance)
_RESERVE_MIN = const(100)  # steps
_RESERVE_MAX_NL = const(50_000)  # never claim more than 50 uL ahead
_RESERVE_MARGIN = const(8)  # next checkpoint when 7/8 of the reserve is used (~9 min at 25 uL/h)
_MAX_SLEEP_MS = const(60_000)
_WALL_SAVE_MS = const(6 * 3_600_000)  # persisted wall time is at most 6 h old after a power loss
_SILENT_SLACK_MS = const(2_000)

# FAULT_SHUTDOWN reasons (alarm arg, log a0).
FAULT_EXCEPTION = const(1)  # unhandled exception in the main loop
FAULT_TIMER_SILENT = const(2)  # dose timer stopped emitting steps
FAULT_STORAGE = const(3)  # a persisted write failed
FAULT_DEBT = const(4)  # interrupts blocked beyond what the engine repays
FAULT_HOST_STOP = const(5)  # Ctrl-C / host took over

DEFAULT_CONFIG = {"drug": "", "capacity_nl": 20_000_000, "low_nl": 2_000_000, "dead_volume_nl": 0}


def _end(bolus):
    end = bolus.end_s
    return 0 if end is None else end  # a bolus being delivered has always started


class CommandError(ValueError):
    """A command refused in the current state; nothing changed."""


class Controller:
    """hw: an object with `engine` (pump.dose.DoseEngine), `driver`, `board`
    (the board module), optional `output` (alarms.AlarmOutput factory result),
    `power` (power.PowerMonitor or None) and `wdt` (machine.WDT or None)."""

    def __init__(self, hw, store, log):
        self.hw = hw
        self.engine = hw.engine
        self.store = store
        self.log = log
        self.board = hw.board
        self.max_sps = self.board.MOTOR["max_sps"]
        self.steps_per_rev = self.board.MOTOR["full_steps_per_rev"] * self.board.MOTOR["microsteps"]
        self.state = SELFTEST
        self.clock = WallClock()
        self.alarms = AlarmManager(on_event=self._alarm_event)
        self.ledger = StepLedger(self.engine)
        self.demand = therapy.BolusLedger()
        self.life = ServiceLife(self.steps_per_rev)
        self.config = dict(DEFAULT_CONFIG)
        self.limits = HardLimits()  # type: HardLimits
        self.program = therapy.Program.stopped()  # type: therapy.Program
        self.reservoir = Reservoir(self.config["capacity_nl"], self.board.PUMP["cal_pl_per_step"])
        self.stager = Stager(self)
        self.bolus = None  # type: Optional[therapy.Bolus]
        self._bolus_doses = []  # (wall s, dose ng) of boluses in the last 24 h
        self.rate_nl_h = 0  # what the engine runs now
        self._reserved = 0  # reservoir steps claimed by the last checkpoint
        self._checkpoint_ms = 0
        self._replan_due = False  # a command's engine update failed: the next pass retries
        self._last_progress_ms = 0
        self._now_ms = 0
        self.selftest_result = {}

    # ---- context read by pump.staging ------------------------------------------------
    @property
    def motor_max_nl_h(self):
        return units.motor_max_flow(self.max_sps, self.reservoir.cal_pl)

    @property
    def dead_volume_nl(self):
        return self.config.get("dead_volume_nl", 0)

    def wall(self, now_ms=None):
        return self.clock.now(self._now_ms if now_ms is None else now_ms)

    # ---- boot ------------------------------------------------------------------------
    def boot(self, now_ms, reset_cause=0):
        """Power-on self-test, then resume only from a valid persisted state."""
        self._now_ms = now_ms
        self._motor_off()
        self.state = SELFTEST
        result = self.store.selftest(RECORDS)
        result["log"] = self.log.selftest()
        self.selftest_result = result
        bad = 0
        for i, name in enumerate(RECORDS):
            if result[name] != "ok":
                bad |= 1 << i
        if result["log"] == "corrupt":
            bad |= 1 << len(RECORDS)
        fresh = all(result[n] == "missing" for n in RECORDS)
        self._log(ev.EV_BOOT, reset_cause)
        self._log(ev.EV_SELF_TEST, bad, 1 if fresh else 0)
        if fresh:
            self._persist_all()  # first power-on: safe defaults, pump stopped
            self.state = STOPPED
        elif bad & ((1 << len(RECORDS)) - 1):
            return self._fail_selftest(bad)
        else:
            try:
                self._load_all(now_ms)
            except (ValueError, KeyError, TypeError) as e:  # valid CRC, invalid content
                self._log(ev.EV_FAULT, FAULT_STORAGE)
                print("self-test: stored state rejected:", e)
                return self._fail_selftest(bad | 0x80)
        self._apply_rate(now_ms)
        return self.state

    def _fail_selftest(self, bad):
        self.state = ALARM_STOP
        self.alarms.raise_(ev.SELF_TEST_FAILED, self._now_ms, bad)
        return self.state

    def _load_all(self, now_ms):
        cfg = self.store.load("config", SCHEMA)
        lim = self.store.load("limits", SCHEMA)
        prog = self.store.load("program", SCHEMA)
        cnt = self.store.load("counters", SCHEMA)
        self.config = cfg
        res = Reservoir.from_dict(cnt["res"])  # its steps include the reserve: less left
        limits = HardLimits.from_dict(lim, units.motor_max_flow(self.max_sps, res.cal_pl))
        program = therapy.Program.from_dict(prog["program"])
        saved_state = prog["state"]
        if saved_state not in (STOPPED, RUNNING, SUSPENDED):
            raise ValueError("stored therapy state %r" % saved_state)
        self.reservoir = res
        self.limits = limits
        self.program = program
        self.life = ServiceLife.from_dict(cnt["life"], self.steps_per_rev)
        self.demand = therapy.BolusLedger.from_list(cnt["demand"])
        self._bolus_doses = [(int(x[0]), int(x[1])) for x in cnt.get("boluses", ())]
        self._reserved = res.steps
        self.clock.resume_from(cnt["wall"], now_ms)
        self.alarms.raise_(ev.CLOCK_NOT_CONFIRMED, now_ms)
        self.state = saved_state if res.state() != "empty" else STOPPED
        self._reservoir_alarms(now_ms)

    # ---- persistence -----------------------------------------------------------------
    def _program_record(self):
        return {"program": self.program.to_dict(), "state": self.state if self.state in (
            STOPPED, RUNNING, SUSPENDED) else STOPPED}

    def _persist_all(self):
        self.store.save("config", self.config, SCHEMA)
        self.store.save("limits", self.limits.to_dict(), SCHEMA)
        self.store.save("program", self._program_record(), SCHEMA)
        self._checkpoint(self._now_ms, force=True)

    def _reserve_steps(self):
        """Steps to claim ahead: ~10 min at the current rate, within [100 steps, 50 uL]."""
        cal = self.reservoir.cal_pl
        n = self.rate_nl_h * 1000 * (_RESERVE_MS // 1000) // 3600 // cal
        cap = _RESERVE_MAX_NL * 1000 // cal
        return _RESERVE_MIN if n < _RESERVE_MIN else cap if n > cap else n

    def _checkpoint(self, now_ms, force=False):
        delivered = self.reservoir.steps
        stale = now_ms - self._checkpoint_ms >= _WALL_SAVE_MS  # keep the persisted clock fresh
        if not force and not stale and delivered < self._reserved - self._reserve_steps() // _RESERVE_MARGIN:
            return
        ahead = self._reserve_steps() if self.rate_nl_h else 0
        rec = {"res": self.reservoir.checkpoint_dict(ahead), "life": self.life.to_dict(),
               "demand": self.demand.to_list(), "boluses": self._bolus_doses,
               "wall": self.wall(now_ms)}
        self.store.save("counters", rec, SCHEMA)
        self._checkpoint_ms = now_ms
        self._reserved = delivered + ahead
        self.engine.service()  # a flash write blocked IRQs: start repaying now

    # ---- the main-loop pass ----------------------------------------------------------
    def service(self, now_ms):
        """Account, alarm, re-plan; returns the uptime ms of the next deadline."""
        self._now_ms = now_ms
        self.engine.service()
        net, total = self.ledger.take()
        if total:
            self.reservoir.apply_steps(net)
            self.life.add_steps(total)
            self._last_progress_ms = now_ms
        self.life.tick(now_ms)
        self._reservoir_alarms(now_ms)
        self._watch_engine(now_ms)
        self._power(now_ms)
        b = self.bolus
        if b is not None and self.wall(now_ms) >= _end(b):
            self._log(ev.EV_BOLUS_ENDED, b.volume_nl)
            self.bolus = None
        self._apply_rate(now_ms)
        if self.state != ALARM_STOP:
            self._checkpoint(now_ms)
        return self._next_deadline(now_ms)

    def _reservoir_alarms(self, now_ms):
        edge = self.reservoir.poll_edge()
        if edge is None:
            return
        self.alarms.set_group(RESERVOIR_ALARMS, self.reservoir.alarm_code(), now_ms,
                              self.reservoir.volume_nl)
        if edge == "empty" and self.state in (RUNNING, SUSPENDED):
            self._alarm_stop()  # leaves through refill + clear

    def _power(self, now_ms):
        pm = self.hw.power
        if pm is None:
            return
        if pm.update() is not None:
            self.alarms.set_group(POWER_ALARMS, pm.alarm_code(), now_ms, pm.mv)
            if pm.state() == "eos" and self.state != ALARM_STOP:
                self._alarm_stop()

    def _watch_engine(self, now_ms):
        """A dose timer that should have stepped but did not is a dead subsystem."""
        eng = self.engine
        if eng.debt_clamped:
            return self.shutdown(FAULT_DEBT)
        if not eng.running or eng.interval is None:
            self._last_progress_ms = now_ms
            return
        whole = eng.interval[0]
        allowed = (2 * whole + eng.period_us) // 1000 + _SILENT_SLACK_MS
        if now_ms - self._last_progress_ms > allowed:
            self.alarms.raise_(ev.SUBSYSTEM_SILENT, now_ms, 1)
            self.shutdown(FAULT_TIMER_SILENT)

    def target_rate(self, now_ms):
        """nL/h the engine should run at now: basal (if running) plus any bolus."""
        if self.state not in (RUNNING, STOPPED):
            return 0
        t = self.wall(now_ms)
        rate = therapy.rate_at(self.program, t) if self.state == RUNNING else 0
        b = self.bolus
        if b is not None:
            rate = (rate if b.with_basal else 0) + b.rate_at(t)
        mx = self.motor_max_nl_h
        return mx if rate > mx else rate

    def _apply_rate(self, now_ms):
        rate = self.target_rate(now_ms)
        if not self._replan_due and rate == self.rate_nl_h and (rate == 0) == (not self.engine.running):
            return
        self._replan_due = False
        self.rate_nl_h = rate
        if rate:
            self._checkpoint(now_ms)  # claim steps on flash before commanding them
            self.driver_enable(True)
            self.engine.set_interval(units.step_interval(rate, self.reservoir.cal_pl))
            self._last_progress_ms = now_ms
        else:
            self.engine.stop()
            self.driver_enable(False)

    def _replan(self, now_ms):
        """After a command that is already persisted: apply it to the engine now if we
        can. A failure here (no heap, flash error) does not undo the command; the next
        service pass retries, and a persistent failure there is a fault shutdown."""
        try:
            self._apply_rate(now_ms)
        except Exception:
            self._replan_due = True

    def _next_deadline(self, now_ms):
        due = now_ms + _MAX_SLEEP_MS  # the main loop feeds the watchdog in between
        if self.engine.needs_service():
            return now_ms
        t = self.wall(now_ms)
        until = self.clock.ms_until
        if self.state == RUNNING:
            nxt = therapy.next_change(self.program, t)
            if nxt is not None:
                due = min(due, now_ms + until(nxt, now_ms))
        if self.bolus is not None:
            due = min(due, now_ms + until(_end(self.bolus), now_ms))
        if self.rate_nl_h:
            # wake before the checkpoint reserve runs out
            left = self._reserved - self._reserve_steps() // _RESERVE_MARGIN - self.reservoir.steps
            ms = left * self.reservoir.cal_pl * 3600 // self.rate_nl_h if left > 0 else 0
            due = min(due, now_ms + ms)
            # and when the reservoir crosses its low mark, then empty
            vol = self.reservoir.volume_nl
            mark = self.reservoir.low_nl if vol > self.reservoir.low_nl else 0
            ms = (vol - mark) * 3_600_000 // self.rate_nl_h
            due = min(due, now_ms + max(ms, 1))
        due = min(due, self._checkpoint_ms + _WALL_SAVE_MS)
        a = self.alarms.next_deadline(now_ms)
        if a is not None:
            due = min(due, a)
        return due if due > now_ms else now_ms + 1

    def outputs(self, now_ms):
        """Drive the alarm LED/buzzer pattern; the uptime ms of its next edge, or None.

        The main loop calls this between service passes: a blinking alarm costs a
        pin write per edge, not a full pass (battery, and months of virtual time)."""
        out = self.hw.output
        return None if out is None else out.update(now_ms)

    # ---- the one fail-safe path ------------------------------------------------------
    def _motor_off(self):
        try:
            self.engine.stop()
        finally:
            self.driver_enable(False)

    def driver_enable(self, on):
        self.hw.driver.enable(on)

    def _alarm_stop(self):
        """Motor off, no bolus, state ALARM_STOP (which only `clear` leaves)."""
        try:
            self._motor_off()
        finally:
            self.rate_nl_h = 0
            self.bolus = None
            self.state = ALARM_STOP

    def shutdown(self, reason, arg=0, alarm=ev.FAULT_SHUTDOWN):
        """Motor off, alarm (HIGH unless the host stopped us), logged; no dosing until
        a valid state is restored."""
        try:
            self._alarm_stop()
        finally:
            self.stager.cancel()
            self.alarms.raise_(alarm, self._now_ms, reason)
            try:
                self._log(ev.EV_FAULT, reason, arg)
            except Exception as e:  # the log is on flash; a failing flash must not stop the stop
                print("fault log failed:", e)

    def host_stop(self):
        """Ctrl-C from the host: safe stop, and it stays stopped across the reset that
        follows (therapy resumes only when someone starts it again)."""
        self.shutdown(FAULT_HOST_STOP, alarm=ev.THERAPY_STOPPED)
        try:
            self.store.save("program", self._program_record(), SCHEMA)  # state STOPPED
        except Exception as e:  # flash failing: the stop itself already happened
            print("host stop not persisted:", e)

    # ---- commands (validated first; a refusal changes nothing) ------------------------
    def set_clock(self, wall_s, now_ms):
        self._now_ms = now_ms
        self.clock.set(wall_s, now_ms)
        self.alarms.clear_condition(ev.CLOCK_NOT_CONFIRMED, now_ms)
        self._log(ev.EV_CLOCK_SET, wall_s)
        if self.state != SELFTEST and self.state != ALARM_STOP:
            self._checkpoint(now_ms, force=True)  # a reset without a host resumes from here

    def stage(self, kind, payload, now_ms):
        self._require_clock()
        cid = self.stager.stage(kind, payload, self.wall(now_ms))
        return cid, self.stager.summary()

    def confirm(self, change_id, now_ms):
        """Commit the staged change: persisted first, applied only once durable."""
        self._now_ms = now_ms
        t = self.wall(now_ms)
        staged = self.stager.pending(t)
        blocked = self.bolus_blocked() if staged is not None and staged.kind == "bolus" else None
        if staged is not None and isinstance(staged.obj, therapy.Program) and self.state in (RUNNING, SUSPENDED):
            self._require_drug_matches(staged.obj)
        change = self.stager.confirm(change_id, t, blocked)
        obj = change.obj
        if isinstance(obj, therapy.Program):
            old = self.program
            bridge = therapy.bridge_bolus(old, obj, self.dead_volume_nl, t)
            if bridge is not None:
                # Old drug fills the catheter: push it at the old program's pace first,
                # the new program starts when the bridge ends (docs/therapy.md).
                check_bolus(bridge, self.limits, self.motor_max_nl_h)
                obj = obj.started(_end(bridge))
            self.program = obj
            try:
                self.store.save("program", self._program_record(), SCHEMA)
            except Exception:
                self.program = old
                raise
            self._log(ev.EV_PROGRAM_COMMITTED, obj.daily_dose() // 1000,
                      therapy.daily_volume(obj, t) // 1000)
            if bridge is not None:
                self._start_bolus(bridge)
        elif isinstance(obj, HardLimits):
            self.store.save("limits", obj.to_dict(), SCHEMA)
            self.limits = obj
            self._log(ev.EV_LIMITS_COMMITTED)
        elif isinstance(obj, therapy.Bolus):
            self._start_bolus(obj)
        self._replan(now_ms)
        return change

    def bolus_blocked(self):
        if self.state == SELFTEST:
            return "no bolus during the power-on self-test"
        if self.alarms.any_high():
            return "no bolus while a high-priority alarm is active; resolve it first"
        return therapy.bolus_blocked_by_state(self.state)

    def demand_bolus(self, now_ms):
        self._require_clock()
        t = self.wall(now_ms)
        # A refusal is an error reply only: a rejected command leaves the log as it was.
        b = self.demand.give(self.program, t, self.bolus_blocked())
        self._start_bolus(b)
        self._checkpoint(now_ms, force=True)  # the lockout must survive a reset
        self._replan(now_ms)
        return b

    def _start_bolus(self, b):
        self.bolus = b
        if b.dose_ng:
            t = b.start_s or 0
            self._bolus_doses = [x for x in self._bolus_doses if x[0] > t - 86400][-23:] + [(t, b.dose_ng)]
        self._log(ev.EV_BOLUS_STARTED, b.volume_nl, b.duration_s)

    @property
    def dose_24h_ng(self):
        """Dose in the last 24 h for bolus limit checks, erring high: the program's
        largest 24 h dose plus every bolus started in the last 24 h."""
        t = self.wall()
        return self.program.daily_dose() + sum(d for (s, d) in self._bolus_doses if s > t - 86400)

    def action(self, name, now_ms):
        """start / stop / suspend / resume / clear, by the therapy state machine."""
        self._now_ms = now_ms
        new = therapy.check_action(self.state, name)
        if name == "start" and self.program.mode == therapy.STOPPED_MODE:
            raise CommandError("no program to start: stage and confirm a program first")
        if name in ("start", "resume") and self.reservoir.state() == "empty":
            raise CommandError("reservoir empty: refill before starting")
        if name == "clear":
            return self._clear(now_ms)
        if name in ("start", "resume"):
            self._require_clock()
            self._require_drug_matches(self.program)
        old = self.state
        self.state = new
        try:
            self.store.save("program", self._program_record(), SCHEMA)
        except Exception:
            self.state = old
            raise
        if name in ("stop", "suspend"):
            self.bolus = None
        self._log({"start": ev.EV_RESUME, "resume": ev.EV_RESUME, "stop": ev.EV_STOP,
                   "suspend": ev.EV_SUSPEND}[name], 1 if name == "start" else 0)
        self._replan(now_ms)
        return self.state

    def _clear(self, now_ms):
        """Leave ALARM_STOP only when what stopped the pump is gone."""
        for code in (ev.RESERVOIR_EMPTY, ev.SELF_TEST_FAILED, ev.END_OF_SERVICE):
            if self.alarms.is_active(code) and self._condition(code):
                raise CommandError("cannot clear: %s" % ev.text(code))
        for code in self.alarms.codes():
            if ev.priority(code) == ev.HIGH:
                self.alarms.acknowledge(code, now_ms)
                self.alarms.clear_condition(code, now_ms)
        self.state = STOPPED
        self._log(ev.EV_STOP)
        return self.state

    def _condition(self, code):
        if code == ev.RESERVOIR_EMPTY:
            return self.reservoir.state() == "empty"
        if code == ev.END_OF_SERVICE:
            return self.hw.power is not None and self.hw.power.state() == "eos"
        if code == ev.SELF_TEST_FAILED:
            return any(v != "ok" for v in self.store.selftest(RECORDS).values())
        return False

    def refill(self, volume_nl, conc, now_ms):
        self._now_ms = now_ms
        if self.state == RUNNING:
            raise CommandError("suspend or stop therapy before refilling")
        rec = self.reservoir.refill(volume_nl, conc, self.wall(now_ms))  # validates; raises unchanged
        self._checkpoint(now_ms, force=True)
        self._log(ev.EV_REFILL, rec.old_nl, rec.new_nl, rec.new_conc)
        if rec.conc_changed:
            self._log(ev.EV_CONC_CHANGED, rec.old_conc, rec.new_conc)
        self._reservoir_alarms(now_ms)
        self.alarms.clear_condition(ev.RESERVOIR_EMPTY, now_ms)
        self.alarms.clear_condition(ev.RESERVOIR_LOW, now_ms)
        return rec

    def set_config(self, updates, now_ms):
        """Change config fields (validated all first, persisted, then applied)."""
        self._now_ms = now_ms
        new = dict(self.config)
        cal = None
        for key in updates:
            v = updates[key]
            if key == "drug":
                if not isinstance(v, str) or len(v) > 24:
                    raise CommandError("drug: a name of at most 24 characters")
            elif key == "cal_pl":
                if not isinstance(v, int) or not 1_000 <= v <= 10_000_000:
                    raise CommandError("cal_pl: calibration %r outside 1,000-10,000,000 pL per microstep"
                                       " (0.001-10 uL); re-run the calibration" % (v,))
                if self.state == RUNNING:
                    raise CommandError("cal_pl: suspend or stop therapy before changing calibration")
                cal = v
                continue
            elif key in ("low_nl", "dead_volume_nl"):
                hi = self.reservoir.capacity_nl if key == "low_nl" else 5_000_000
                if not isinstance(v, int) or not 0 <= v <= hi:
                    raise CommandError("%s: %r outside 0-%d nL" % (key, v, hi))
            else:
                raise CommandError("unknown config field %r; fields: drug, cal_pl, low_nl,"
                                   " dead_volume_nl" % (key,))
            new[key] = v
        self.store.save("config", new, SCHEMA)
        self.config = new
        self.reservoir.set_low_threshold(new["low_nl"])
        if cal is not None:
            self.reservoir.set_calibration(cal)
            self._checkpoint(now_ms, force=True)
            self._log(ev.EV_CALIBRATION_SET, cal)
        self._reservoir_alarms(now_ms)
        return new

    def acknowledge(self, code, now_ms):
        """Silence one alarm (code) or all (None) for up to 2 min; they re-arm."""
        if code is not None and not self.alarms.is_active(code):
            raise CommandError("alarm %r is not active; active: %s" % (
                code, ", ".join(ev.name(c) for c in self.alarms.codes()) or "none"))
        return self.alarms.acknowledge(ALL if code is None else code, now_ms)

    def cancel_staged(self):
        """Drop the staged change (if any); nothing else changes."""
        had = self.stager.pending(self.wall()) is not None
        self.stager.cancel()
        return had

    def _require_drug_matches(self, program):
        """A dose program computed for one concentration must not run on another."""
        conc = self.reservoir.conc
        if program.mode != therapy.STOPPED_MODE and conc and program.conc != conc:
            raise CommandError("program is for %s but the reservoir holds %s: stage a program for"
                               " the refilled concentration" % (
                                   units.format_quantity(units.CONC, program.conc),
                                   units.format_quantity(units.CONC, conc)))

    def _require_clock(self):
        if not self.clock.known:
            raise CommandError("device clock not set: connect a host to set the time first")

    # ---- log -------------------------------------------------------------------------
    def _log(self, code, a0=0, a1=0, a2=0):
        return self.log.append(self._now_ms, self.wall(), code, a0, a1, a2)

    def _alarm_event(self, kind, code, arg, now_ms):
        self.log.append(now_ms, self.clock.now(now_ms), kind, code, arg)

    def status(self, now_ms):
        t = self.wall(now_ms)
        vb = self._volume_between
        low_s, empty_s = self.reservoir.seconds_to_low_and_empty(vb, t) if self.state == RUNNING else (None, None)
        return {"state": self.state, "rate_nl_h": self.rate_nl_h, "mode": self.program.mode,
                "volume_nl": self.reservoir.volume_nl, "conc_ng_ml": self.reservoir.conc,
                "s_to_low": low_s, "s_to_empty": empty_s, "wall": t,
                "clock_confirmed": self.clock.confirmed,
                "alarms": [a[0] for a in self.alarms.active()],
                "bolus": None if self.bolus is None else self.bolus.to_dict()}

    def _volume_between(self, t0, t1):
        return therapy.volume_between(self.program, t0, t1)
