"""The one table of alarm codes and event-log codes (device, host and docs share it).

Codes are small ints that never change meaning once released: add new ones at the end,
never renumber. docs/alarms.md shows this table; tests/device/test_alarms.py checks that
the document and this module agree.

RAM: each table is one literal tuple of constants, which the compiler folds into a single
constant object (one LOAD_CONST_OBJ, no code to build it). Frozen into the firmware the
tables live in flash and cost no heap. Measured on the unix VM (64-bit, so about twice a
board's figure), importing this module from a .mpy costs 10.6 KB of heap, of which the
alarm sentences are ~2 KB; the rest is code and the global names.
Rows are looked up by position (code - 1), so codes are contiguous from 1.

Alarm row:  (code, name, priority, latched, text)
Event row:  (code, name, meaning of the log record's args a0, a1, a2; pump/log.py stores
three signed 32-bit args per record, so no event carries more than three)
"""
try:
    from micropython import const
except ImportError:  # host tools import this file on plain CPython
    def const(__x):  # positional-only, like the stub's
        return __x

# Priorities: a bigger number is more urgent; 0 means "no alarm".
NONE = const(0)
LOW = const(1)
MEDIUM = const(2)
HIGH = const(3)
PRIORITY_NAMES = ("NONE", "LOW", "MEDIUM", "HIGH")

# ---- alarm codes -------------------------------------------------------------------------
RESERVOIR_LOW = const(1)
RESERVOIR_EMPTY = const(2)
OCCLUSION = const(3)
DISCONNECTION = const(4)
MOTOR_STALL = const(5)
MOTOR_FAULT = const(6)
SELF_TEST_FAILED = const(7)
FAULT_SHUTDOWN = const(8)
SUBSYSTEM_SILENT = const(9)
BATTERY_LOW = const(10)
ERI = const(11)
END_OF_SERVICE = const(12)
CLOCK_NOT_CONFIRMED = const(13)
THERAPY_STOPPED = const(14)
DOSE_LIMIT = const(15)
FLOW_DEVIATION = const(16)

ALARMS = (
    (1, "RESERVOIR_LOW", MEDIUM, False,
     "Reservoir low: dosing continues. Schedule a refill before the reservoir runs empty."),
    (2, "RESERVOIR_EMPTY", HIGH, True,
     "Reservoir empty: dosing stopped. Refill the reservoir, then resume therapy."),
    (3, "OCCLUSION", HIGH, True,
     "Occlusion: dosing stopped. Check the line for kinks or blockage, then resume therapy."),
    (4, "DISCONNECTION", HIGH, True,
     "Disconnection or leak suspected: drug may not reach the patient. Check the line and"
     " connections, then resume therapy."),
    (5, "MOTOR_STALL", HIGH, True,
     "Motor stalled: dosing stopped. Check the pump head and line, then resume therapy."),
    (6, "MOTOR_FAULT", HIGH, True,
     "Motor driver fault: dosing stopped. Check the driver and its supply; contact service."),
    (7, "SELF_TEST_FAILED", HIGH, True,
     "Self-test failed, stored settings corrupt or missing: dosing stopped. Re-program therapy"
     " and limits from the programmer."),
    (8, "FAULT_SHUTDOWN", HIGH, True,
     "Internal fault (reason in arg): pump shut down safely, no dosing. Note the reason,"
     " contact service."),
    (9, "SUBSYSTEM_SILENT", HIGH, True,
     "A subsystem stopped responding (watchdog): dosing stopped. Restart the pump; contact"
     " service if it recurs."),
    (10, "BATTERY_LOW", MEDIUM, False,
     "Battery low: dosing continues. Recharge or replace the battery soon."),
    (11, "ERI", MEDIUM, False,
     "Elective replacement indicator: battery near end of life. Schedule battery or pump"
     " replacement."),
    (12, "END_OF_SERVICE", HIGH, True,
     "End of service: battery exhausted, dosing stopped. Replace the battery or pump now."),
    (13, "CLOCK_NOT_CONFIRMED", LOW, False,
     "Clock not confirmed after a reset: times are estimates. Connect the programmer to set"
     " the clock."),
    (14, "THERAPY_STOPPED", MEDIUM, False,
     "Therapy stopped by the programmer: no drug is delivered. Resume therapy when intended."),
    (15, "DOSE_LIMIT", MEDIUM, True,
     "Dose limit: the request was rejected and nothing changed. Check the dose and the limits."),
    (16, "FLOW_DEVIATION", HIGH, True,
     "Delivered flow differs from the setting by more than 10 %: dosing stopped. Check the"
     " pump and line, then resume therapy."),
)

# ---- event-log codes ---------------------------------------------------------------------
EV_BOOT = const(1)
EV_SELF_TEST = const(2)
EV_PROGRAM_COMMITTED = const(3)
EV_LIMITS_COMMITTED = const(4)
EV_BOLUS_STARTED = const(5)
EV_BOLUS_ENDED = const(6)
EV_BOLUS_REFUSED = const(7)
EV_SUSPEND = const(8)
EV_RESUME = const(9)
EV_STOP = const(10)
EV_REFILL = const(11)
EV_ALARM_RAISED = const(12)
EV_ALARM_ACK = const(13)
EV_ALARM_CLEARED = const(14)
EV_CLOCK_SET = const(15)
EV_CHECKPOINT = const(16)
EV_FAULT = const(17)
EV_CALIBRATION_SET = const(18)
EV_CONC_CHANGED = const(19)

EVENTS = (
    (1, "BOOT", "reset cause"),
    (2, "SELF_TEST", "0 passed, else bit mask of failed checks"),
    (3, "PROGRAM_COMMITTED", "program id"),
    (4, "LIMITS_COMMITTED", "limits id"),
    (5, "BOLUS_STARTED", "dose ng, duration s"),
    (6, "BOLUS_ENDED", "dose delivered ng, dose asked ng"),
    (7, "BOLUS_REFUSED", "reason (alarm code)"),
    (8, "SUSPEND", "-"),
    (9, "RESUME", "-"),
    (10, "STOP", "-"),
    (11, "REFILL", "old nL, new nL, new conc ng/mL"),
    (12, "ALARM_RAISED", "alarm code, alarm arg"),
    (13, "ALARM_ACK", "alarm code, alarm arg (silenced)"),
    (14, "ALARM_CLEARED", "alarm code, alarm arg"),
    (15, "CLOCK_SET", "old wall s, new wall s"),
    (16, "CHECKPOINT", "reserved net steps"),
    (17, "FAULT", "reason code"),
    (18, "CALIBRATION_SET", "old pL/step, new pL/step"),
    (19, "CONC_CHANGED", "old conc ng/mL, new conc ng/mL (logged after REFILL)"),
)


def alarm(code):
    """The row (code, name, priority, latched, text) of an alarm code; ValueError if unknown."""
    if 0 < code <= len(ALARMS):
        return ALARMS[code - 1]
    raise ValueError("alarm code %r unknown: must be 1..%d" % (code, len(ALARMS)))


def event(code):
    """The row (code, name, arg meaning) of an event-log code; ValueError if unknown."""
    if 0 < code <= len(EVENTS):
        return EVENTS[code - 1]
    raise ValueError("event code %r unknown: must be 1..%d" % (code, len(EVENTS)))


def priority(code):
    return alarm(code)[2]


def latched(code):
    return alarm(code)[3]


def name(code):
    """Alarm name for a code."""
    return alarm(code)[1]


def text(code):
    """The sentence for an alarm: what is wrong and what to do."""
    return alarm(code)[4]


def by_name(n):
    """Alarm code for a name such as "OCCLUSION" (host side); ValueError if unknown."""
    for row in ALARMS:
        if row[1] == n:
            return row[0]
    raise ValueError("alarm name %r unknown" % (n,))
