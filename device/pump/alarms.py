"""The one alarm path: raise, silence (acknowledge), re-arm, clear; and the LED/buzzer output.

Rules (DOMAIN.md: "alarms can be paused, never turned off; they re-arm within 2 min"):
- `raise_` sets an alarm's condition. Raising an alarm whose condition is already present
  changes nothing, so the controller may call it every loop.
- `acknowledge` silences: the alarm's output pauses for `silence_ms` (<= 120 s), then the
  alarm sounds again while it is still active. Acknowledging again restarts the pause; it
  never lengthens it beyond `silence_ms` from now. There is no way to disable an alarm.
- `clear_condition` says the condition is gone. A non-latched alarm then clears at once; a
  latched alarm clears only once it has also been acknowledged (in either order).
- A latched alarm whose condition comes back before it cleared is a new occurrence: it
  sounds again and needs a new acknowledgement.
- Every raise/ack/clear calls `on_event(kind, code, arg, now_ms)` with kind one of
  events.EV_ALARM_RAISED / EV_ALARM_ACK / EV_ALARM_CLEARED (the event-log codes), so the
  controller can log it as is. A silence expiring (re-arm) is not an event.

Times are uptime milliseconds as plain ints (not ticks: no wrap arithmetic here).
"""
from micropython import const

from pump import events
from pump.events import HIGH, EV_ALARM_RAISED, EV_ALARM_ACK, EV_ALARM_CLEARED

MAX_SILENCE_MS = const(120_000)
ALL = const(-1)  # acknowledge(ALL, now): silence every active alarm

# Entry fields (one small list per active alarm; at most len(events.ALARMS) of them).
_CODE = const(0)
_PRIO = const(1)
_ARG = const(2)
_T = const(3)  # uptime ms the (latest occurrence of the) alarm was raised
_COND = const(4)  # condition present
_ACKED = const(5)  # acknowledged since the latest occurrence
_UNTIL = const(6)  # silenced while now < _UNTIL (0: not silenced)


class AlarmManager:
    def __init__(self, on_event=None, silence_ms=MAX_SILENCE_MS):
        if not 0 < silence_ms <= MAX_SILENCE_MS:
            raise ValueError("silence_ms %r out of range: must be 1..%d ms (alarms re-arm"
                             " within 2 min)" % (silence_ms, MAX_SILENCE_MS))
        self._on_event = on_event
        self._silence_ms = silence_ms
        self._list = []  # ordered: priority descending, then raise time ascending

    # -- inputs ------------------------------------------------------------------------
    def raise_(self, code, now_ms, arg=0):
        """Set the condition of alarm `code`. True if this is a new occurrence (logged)."""
        e = self._find(code)
        if e is not None:
            if e[_COND]:
                return False
            # Latched alarm, condition had gone but not yet acknowledged: it is back.
            self._list.remove(e)
        prio = events.priority(code)  # ValueError for an unknown code
        e = [code, prio, arg, now_ms, True, False, 0]
        i = 0
        n = len(self._list)
        while i < n and self._list[i][_PRIO] >= prio:
            i += 1
        self._list.insert(i, e)
        self._emit(EV_ALARM_RAISED, code, arg, now_ms)
        return True

    def clear_condition(self, code, now_ms):
        """The condition of `code` is gone. True if the alarm cleared (latched alarms clear
        only once acknowledged as well)."""
        e = self._find(code)
        if e is None:
            return False
        e[_COND] = False
        if events.latched(code) and not e[_ACKED]:
            return False
        self._remove(e, now_ms)
        return True

    def acknowledge(self, code_or_all, now_ms):
        """Silence one alarm (or ALL / None: every active one): its output pauses for
        silence_ms, then re-arms while the alarm is still active. Returns how many alarms
        were acknowledged."""
        every = code_or_all is None or code_or_all == ALL
        n = 0
        for e in self._list[:]:
            if not every and e[_CODE] != code_or_all:
                continue
            n += 1
            e[_ACKED] = True
            e[_UNTIL] = now_ms + self._silence_ms
            self._emit(EV_ALARM_ACK, e[_CODE], e[_ARG], now_ms)
            if not e[_COND]:
                self._remove(e, now_ms)
        return n

    def set_group(self, codes, active_code, now_ms, arg=0):
        """For mutually exclusive conditions (e.g. RESERVOIR_LOW / RESERVOIR_EMPTY): raise
        `active_code` (None: none of them) and clear the condition of the others."""
        for c in codes:
            if c != active_code:
                self.clear_condition(c, now_ms)
        if active_code is not None:
            self.raise_(active_code, now_ms, arg)

    # -- queries -----------------------------------------------------------------------
    def active(self):
        """Active alarms, most urgent first (priority, then earliest raised), as tuples
        (code, priority, arg, raised_ms, condition_present, acknowledged, silenced_until_ms);
        silenced_until_ms is 0 when the alarm has never been silenced."""
        return [tuple(e) for e in self._list]

    def codes(self):
        """Codes of the active alarms, most urgent first."""
        return [e[_CODE] for e in self._list]

    def is_active(self, code):
        return self._find(code) is not None

    def highest_priority(self):
        """Priority of the most urgent active alarm, silenced or not (events.NONE if none)."""
        return self._list[0][_PRIO] if self._list else 0

    def any_high(self):
        """True while any HIGH-priority alarm is active (silenced or not): no boluses."""
        return bool(self._list) and self._list[0][_PRIO] == HIGH

    def output_priority(self, now_ms):
        """Priority the outputs must show now: the most urgent alarm not silenced (0: none)."""
        for e in self._list:
            if now_ms >= e[_UNTIL]:
                return e[_PRIO]
        return 0

    def next_deadline(self, now_ms):
        """Earliest uptime ms after now at which a silence expires (None: nothing pending)."""
        t = None
        for e in self._list:
            u = e[_UNTIL]
            if u > now_ms and (t is None or u < t):
                t = u
        return t

    # -- internals ---------------------------------------------------------------------
    def _find(self, code):
        for e in self._list:
            if e[_CODE] == code:
                return e
        return None

    def _remove(self, e, now_ms):
        self._list.remove(e)
        self._emit(EV_ALARM_CLEARED, e[_CODE], e[_ARG], now_ms)

    def _emit(self, kind, code, arg, now_ms):
        if self._on_event is not None:
            self._on_event(kind, code, arg, now_ms)


# Output patterns per priority (index = priority), in ms, alternating on/off and starting
# with "on"; the pattern repeats. Placeholders shaped like IEC 60601-1-8 (high: pulse
# bursts with short spacing; medium: 3 pulses; low: 1 pulse, rare); the exact tone bursts
# come later.
PATTERNS = (
    None,
    (200, 14_800),  # LOW: one pulse every 15 s
    (200, 200, 200, 200, 200, 4_000),  # MEDIUM: 3 pulses, then a pause
    (100, 100, 100, 100, 100, 300, 100, 100, 100, 1_800),  # HIGH: 3 + 2 pulses, short pause
)


class AlarmOutput:
    """Drives an LED pin and an optional buzzer pin (objects with `.value(v)`) with the
    pattern of the most urgent unsilenced alarm.

    While alarms are active but all silenced, the buzzer is quiet and the LED shows steady
    on (`paused_led=True`, the default: IEC 60601-1-8 keeps the visual signal during an
    audio pause); pass paused_led=False to turn the LED off as well.

    Call `update(now_ms)` after any alarm change and whenever the time it returned has come;
    it returns the next uptime ms it needs a call, or None when nothing is pending.
    """

    def __init__(self, manager, led, buzzer=None, patterns=PATTERNS, paused_led=True):
        self._m = manager
        self._led = led
        self._buz = buzzer
        self._pat = patterns
        self._paused_led = paused_led
        self._prio = 0
        self._t0 = 0
        self._led_v = -1
        self._buz_v = -1
        self._set(0, 0)

    def _set(self, led_v, buz_v):
        if led_v != self._led_v:
            self._led.value(led_v)
            self._led_v = led_v
        if self._buz is not None and buz_v != self._buz_v:
            self._buz.value(buz_v)
            self._buz_v = buz_v

    def update(self, now_ms):
        m = self._m
        prio = m.output_priority(now_ms)
        deadline = m.next_deadline(now_ms)
        if prio == 0:
            self._prio = 0
            self._set(1 if (self._paused_led and m.highest_priority()) else 0, 0)
            return deadline
        if prio != self._prio:  # a new or more/less urgent pattern starts with "on"
            self._prio = prio
            self._t0 = now_ms
        pat = self._pat[prio]
        period = 0
        for d in pat:
            period += d
        pos = (now_ms - self._t0) % period
        i = 0
        while pos >= pat[i]:
            pos -= pat[i]
            i += 1
        on = 1 - (i & 1)  # even segments are "on"
        self._set(on, on)
        nxt = now_ms + pat[i] - pos
        if deadline is not None and deadline < nxt:
            return deadline
        return nxt
