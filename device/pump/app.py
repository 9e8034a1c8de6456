"""Assembles the pump from a board definition and runs the main loop.

The main loop sleeps until the controller's next deadline or until input
arrives, never spinning at a fixed fast period: that keeps a battery board
alive and lets the virtual board run months of virtual time in seconds. The
watchdog is fed only by a healthy pass; any exception the controller does not
handle goes through its one fail-safe `shutdown()`.
"""
import micropython

from pump.alarms import AlarmOutput
from pump.controller import Controller, FAULT_EXCEPTION, FAULT_HOST_STOP
from pump.dose import DoseEngine
from pump.events import THERAPY_STOPPED
from pump.log import EventLog
from pump.motor import from_board as motor_from_board
from pump.power import monitor_for
from pump.store import Store

_MAX_WAIT_MS = 1000  # without a watchdog, and after a fault
# A started watchdog cannot be stopped (rp2, ESP32). After Ctrl-C a timer feeds it for
# this long so mpremote can work; then the board resets and boots STOPPED. A soft reset
# (Ctrl-D) stops that timer too: the watchdog then resets the board within its timeout.
_MAINTENANCE_MS = 10 * 60_000


class Hardware:
    """What the controller drives, built from the board definition."""

    def __init__(self, board, machine, time_mod, use_wdt=True):
        self.board = board
        Pin = machine.Pin
        self.driver = motor_from_board(board, machine, time_mod)
        self.engine = DoseEngine(self.driver, machine.Timer(board.TIMER_ID), time_mod.ticks_us,
                                 time_mod.ticks_diff, board.MOTOR["max_sps"],
                                 disable_irq=machine.disable_irq, enable_irq=machine.enable_irq)
        buzzer = Pin(board.BUZZER, Pin.OUT, value=0) if board.BUZZER is not None else None
        self.led = Pin(board.LED, Pin.OUT, value=0)
        self.output = None
        supply = board.SUPPLY
        self.power = monitor_for(machine.ADC(Pin(supply["adc"])), supply) if supply else None
        self.wdt_timeout_ms = board.WDT_TIMEOUT_MS if use_wdt else 0
        self.wdt = machine.WDT(timeout=board.WDT_TIMEOUT_MS) if use_wdt else None
        self._machine = machine
        self._feeder = None
        self._buzzer = buzzer

    def keep_watchdog_fed(self, for_ms):
        """Feed the watchdog from a soft timer for `for_ms` (host maintenance)."""
        wdt = self.wdt
        if wdt is None:
            return
        period = self.wdt_timeout_ms // 2
        left = [for_ms // period]

        def feed(t):
            wdt.feed()
            left[0] -= 1
            if left[0] <= 0:
                t.deinit()  # maintenance over: the watchdog resets the board

        self._feeder = self._machine.Timer(getattr(self.board, "AUX_TIMER_ID", -1))
        self._feeder.init(mode=self._feeder.PERIODIC, period=period, callback=feed)

    def attach_outputs(self, alarms):
        self.output = AlarmOutput(alarms, self.led, self._buzzer)


class Uptime:
    """Milliseconds since boot from wrapping ticks_ms; an int that grows past 2**30
    (a bigint on boards after 12 days: fine, it never enters an IRQ)."""

    def __init__(self, time_mod):
        self._t = time_mod
        self._last = time_mod.ticks_ms()
        self.ms = 0

    def now(self):
        t = self._t.ticks_ms()
        self.ms += self._t.ticks_diff(t, self._last)
        self._last = t
        return self.ms


def build(board, machine, time_mod, root="/state", use_wdt=True):
    if hasattr(micropython, "alloc_emergency_exception_buf"):  # absent on the unix port
        micropython.alloc_emergency_exception_buf(100)  # IRQ tracebacks: rp2/esp32 have none
    hw = Hardware(board, machine, time_mod, use_wdt)
    ctl = Controller(hw, Store(root), EventLog(root + "/log"))
    hw.attach_outputs(ctl.alarms)
    return ctl


class MainLoop:
    """Sleep until the controller's next deadline or input; feed the watchdog only
    after a pass that completed; every unhandled exception -> ctl.shutdown()."""

    def __init__(self, ctl, uptime, wait, on_input=None, on_pass=None):
        self.ctl = ctl
        self.uptime = uptime
        self.wait = wait
        self.on_input = on_input
        self.on_pass = on_pass  # on_pass(ctl, now) after each service pass (protocol events)

    def now(self):
        return self.uptime.now()

    def run(self, until_ms=None):
        """Serve forever, or until uptime `until_ms` (the virtual board, tests)."""
        ctl = self.ctl
        uptime = self.uptime
        wdt = ctl.hw.wdt
        feed_ms = ctl.hw.wdt_timeout_ms // 2 if wdt is not None else _MAX_WAIT_MS
        try:
            while True:
                now = uptime.now()
                try:
                    deadline = ctl.service(now)
                    if self.on_pass is not None:
                        self.on_pass(ctl, now)
                except Exception:  # the one fail-safe path (no print: stdout may block)
                    ctl.shutdown(FAULT_EXCEPTION)
                    deadline = now + _MAX_WAIT_MS
                if until_ms is not None and now >= until_ms:
                    break  # the pass at until_ms has accounted for everything
                if until_ms is not None and deadline > until_ms:
                    deadline = until_ms
                # Sleep to the deadline, waking only to feed the watchdog (a pass
                # that completed feeds it, a hung or crashed loop does not) and at
                # the alarm pattern's edges (pin writes only, no service pass).
                edge = ctl.outputs(now)
                while True:
                    if wdt is not None:
                        wdt.feed()
                    now = uptime.now()
                    left = deadline - now
                    if left <= 0:
                        break
                    if edge is not None and now >= edge:
                        edge = ctl.outputs(now)
                    if left > feed_ms:
                        left = feed_ms
                    if edge is not None and edge - now < left:
                        left = edge - now if edge > now else 1
                    data = self.wait(left)
                    if data is not None:
                        if self.on_input is not None:
                            try:
                                self.on_input(ctl, data, uptime.now())
                            except Exception:  # input handling must never crash the pump
                                ctl.shutdown(FAULT_EXCEPTION, 1)
                        break  # input may change the plan: service again
        except KeyboardInterrupt:
            # Ctrl-C from the host (mpremote taking over): stop safely, say so, log it,
            # and keep the watchdog quiet while the host works at the REPL.
            ctl.host_stop()
            ctl.hw.keep_watchdog_fed(_MAINTENANCE_MS)
            raise


def start(board, machine, time_mod, wait, on_input=None, root="/state", use_wdt=True,
          on_pass=None):
    """Build the pump, run the power-on self-test, return the (not yet running) loop."""
    uptime = Uptime(time_mod)
    ctl = build(board, machine, time_mod, root, use_wdt)
    ctl.boot(uptime.now(), machine.reset_cause())
    return MainLoop(ctl, uptime, wait, on_input, on_pass)


def run(board, machine, time_mod, wait, on_input=None, root="/state", on_pass=None):
    """main.py's entry: boot, then serve forever.

    wait(timeout_ms) sleeps until the timeout or until input is ready and returns
    the input bytes (or None); on a board it wraps select.poll on stdin and drains
    the output writer (main.stdio_link). on_input(ctl, data, now) and on_pass(ctl, now)
    are the pump protocol's hooks (pump.protocol.Protocol)."""
    start(board, machine, time_mod, wait, on_input, root, on_pass=on_pass).run()
