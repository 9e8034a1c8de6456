"""Alarm manager, alarm output and the shared alarm/event table."""
from pump import events
from pump.events import (RESERVOIR_LOW, RESERVOIR_EMPTY, OCCLUSION, CLOCK_NOT_CONFIRMED,
                         BATTERY_LOW, THERAPY_STOPPED, DOSE_LIMIT, HIGH, MEDIUM, LOW,
                         EV_ALARM_RAISED, EV_ALARM_ACK, EV_ALARM_CLEARED)
from pump.alarms import AlarmManager, AlarmOutput, ALL, MAX_SILENCE_MS, PATTERNS
from vmtest import raises

S = 1000  # ms


class Pin:
    def __init__(self):
        self.v = None
        self.writes = 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        self.writes += 1


def test_silence_re_arms_after_120_s_while_condition_remains():
    m = AlarmManager()
    m.raise_(OCCLUSION, 0)
    assert m.output_priority(0) == HIGH
    m.acknowledge(OCCLUSION, 10 * S)
    assert m.output_priority(10 * S) == 0
    assert m.output_priority(129_999) == 0
    assert m.output_priority(130 * S) == HIGH  # re-armed: the condition is still there
    assert m.is_active(OCCLUSION)


def test_silence_period_is_configurable_but_never_above_120_s():
    assert MAX_SILENCE_MS == 120_000
    m = AlarmManager(silence_ms=30 * S)
    m.raise_(BATTERY_LOW, 0)
    m.acknowledge(BATTERY_LOW, 0)
    assert m.output_priority(29_999) == 0
    assert m.output_priority(30 * S) == MEDIUM
    e = raises(ValueError, AlarmManager, None, 120_001)
    assert "silence_ms" in str(e)
    raises(ValueError, AlarmManager, None, 0)


def test_cannot_silence_forever_each_acknowledge_pauses_at_most_120_s_from_now():
    m = AlarmManager()
    m.raise_(OCCLUSION, 0)
    for t in (0, 50 * S, 100 * S):  # pressing silence again restarts the pause, no more
        m.acknowledge(ALL, t)
        assert m.next_deadline(t) == t + 120 * S
    assert m.output_priority(219_999) == 0
    assert m.output_priority(220 * S) == HIGH
    assert m.output_priority(10 ** 9) == HIGH  # still sounding days later


def test_no_api_turns_an_alarm_off():
    names = [n for n in dir(AlarmManager) if not n.startswith("_")]
    for bad in ("disable", "enable", "mute", "off", "remove", "delete", "reset", "clear_all"):
        for n in names:
            assert bad not in n, n


def test_non_latched_alarm_clears_as_soon_as_its_condition_is_gone():
    m = AlarmManager()
    m.raise_(RESERVOIR_LOW, 0)
    assert not events.latched(RESERVOIR_LOW)
    assert m.clear_condition(RESERVOIR_LOW, 5 * S)
    assert m.codes() == []


def test_latched_alarm_stays_until_both_acknowledged_and_cleared():
    assert events.latched(OCCLUSION)
    m = AlarmManager()
    # condition gone first, then acknowledged
    m.raise_(OCCLUSION, 0)
    assert not m.clear_condition(OCCLUSION, 1 * S)
    assert m.codes() == [OCCLUSION]
    assert m.output_priority(1 * S) == HIGH  # still sounding until someone sees it
    assert m.acknowledge(OCCLUSION, 2 * S) == 1
    assert m.codes() == []
    # acknowledged first, then condition gone
    m.raise_(OCCLUSION, 3 * S)
    m.acknowledge(OCCLUSION, 4 * S)
    assert m.codes() == [OCCLUSION]
    assert m.clear_condition(OCCLUSION, 5 * S)
    assert m.codes() == []


def test_latched_alarm_whose_condition_returns_before_ack_is_a_new_occurrence():
    log = []
    m = AlarmManager(lambda k, c, a, t: log.append((k, c, t)))
    m.raise_(OCCLUSION, 0)
    m.clear_condition(OCCLUSION, 1 * S)
    assert m.raise_(OCCLUSION, 2 * S)
    assert log == [(EV_ALARM_RAISED, OCCLUSION, 0), (EV_ALARM_RAISED, OCCLUSION, 2 * S)]
    # an acknowledged latched alarm that comes back needs a new acknowledgement
    m.acknowledge(OCCLUSION, 3 * S)
    m.clear_condition(OCCLUSION, 4 * S)
    m.raise_(OCCLUSION, 5 * S)
    m.clear_condition(OCCLUSION, 6 * S)
    assert m.codes() == [OCCLUSION]
    assert m.output_priority(6 * S) == HIGH


def test_raising_an_alarm_whose_condition_is_present_changes_nothing():
    log = []
    m = AlarmManager(lambda k, c, a, t: log.append(k))
    assert m.raise_(BATTERY_LOW, 0, 3550)
    m.acknowledge(BATTERY_LOW, 1 * S)
    assert not m.raise_(BATTERY_LOW, 2 * S, 3540)
    assert m.output_priority(2 * S) == 0  # the silence holds
    assert m.active()[0][2] == 3550 and m.active()[0][3] == 0
    assert log == [EV_ALARM_RAISED, EV_ALARM_ACK]


def test_active_alarms_are_ordered_by_priority_then_time_raised():
    m = AlarmManager()
    m.raise_(CLOCK_NOT_CONFIRMED, 0)
    m.raise_(BATTERY_LOW, 1)
    m.raise_(RESERVOIR_LOW, 2)
    m.raise_(OCCLUSION, 3)
    m.raise_(RESERVOIR_EMPTY, 4)
    assert m.codes() == [OCCLUSION, RESERVOIR_EMPTY, BATTERY_LOW, RESERVOIR_LOW,
                         CLOCK_NOT_CONFIRMED]
    a = m.active()[0]
    assert a == (OCCLUSION, HIGH, 0, 3, True, False, 0)
    assert m.highest_priority() == HIGH


def test_any_high_is_true_only_while_a_high_priority_alarm_is_active_even_if_silenced():
    m = AlarmManager()
    assert not m.any_high() and m.highest_priority() == 0
    m.raise_(BATTERY_LOW, 0)
    m.raise_(CLOCK_NOT_CONFIRMED, 0)
    assert not m.any_high() and m.highest_priority() == MEDIUM
    m.raise_(RESERVOIR_EMPTY, 1)
    m.acknowledge(ALL, 2)
    assert m.any_high()  # silencing does not allow boluses
    m.clear_condition(RESERVOIR_EMPTY, 3)
    assert not m.any_high()


def test_output_priority_is_the_most_urgent_unsilenced_alarm():
    m = AlarmManager()
    m.raise_(OCCLUSION, 0)
    m.raise_(CLOCK_NOT_CONFIRMED, 0)
    m.acknowledge(OCCLUSION, 0)
    assert m.output_priority(1) == LOW
    assert m.highest_priority() == HIGH


def test_next_deadline_is_when_the_earliest_silence_expires():
    m = AlarmManager()
    assert m.next_deadline(0) is None
    m.raise_(OCCLUSION, 0)
    m.raise_(BATTERY_LOW, 0)
    m.acknowledge(BATTERY_LOW, 10 * S)
    m.acknowledge(OCCLUSION, 20 * S)
    assert m.next_deadline(20 * S) == 130 * S
    assert m.next_deadline(130 * S) == 140 * S
    assert m.next_deadline(140 * S) is None


def test_every_raise_acknowledge_and_clear_reaches_on_event_with_log_codes():
    log = []
    m = AlarmManager(lambda k, c, a, t: log.append((k, c, a, t)))
    m.raise_(OCCLUSION, 1, 42)
    m.acknowledge(OCCLUSION, 2)
    m.clear_condition(OCCLUSION, 3)
    assert log == [(EV_ALARM_RAISED, OCCLUSION, 42, 1), (EV_ALARM_ACK, OCCLUSION, 42, 2),
                   (EV_ALARM_CLEARED, OCCLUSION, 42, 3)]


def test_dose_limit_rejection_stays_visible_until_acknowledged():
    m = AlarmManager()
    m.raise_(DOSE_LIMIT, 0, 7)
    m.clear_condition(DOSE_LIMIT, 0)  # the rejection is over at once
    assert m.codes() == [DOSE_LIMIT]
    m.acknowledge(ALL, 1)
    assert m.codes() == []


def test_set_group_raises_one_condition_and_clears_the_others():
    m = AlarmManager()
    grp = (RESERVOIR_LOW, RESERVOIR_EMPTY)
    m.set_group(grp, RESERVOIR_LOW, 0)
    assert m.codes() == [RESERVOIR_LOW]
    m.set_group(grp, RESERVOIR_EMPTY, 1)
    assert m.codes() == [RESERVOIR_EMPTY]
    m.set_group(grp, None, 2)  # refilled: EMPTY is latched, waits for acknowledgement
    assert m.codes() == [RESERVOIR_EMPTY]
    m.acknowledge(None, 3)  # None acknowledges all, like ALL
    assert m.codes() == []


def test_unknown_alarm_code_is_rejected_and_nothing_changes():
    m = AlarmManager()
    e = raises(ValueError, m.raise_, 999, 0)
    assert "999" in str(e)
    assert m.codes() == []


def test_output_plays_the_pattern_of_the_highest_unsilenced_priority():
    m = AlarmManager()
    led, buz = Pin(), Pin()
    out = AlarmOutput(m, led, buz)
    assert out.update(0) is None and led.v == 0 and buz.v == 0
    m.raise_(THERAPY_STOPPED, 1000)
    pat = PATTERNS[MEDIUM]
    t = 1000
    seen = []
    for _ in range(len(pat)):  # one full period, segment by segment
        nxt = out.update(t)
        seen.append((led.v, buz.v, nxt - t))
        t = nxt
    assert seen == [(1 - (i & 1), 1 - (i & 1), d) for i, d in enumerate(pat)]
    assert out.update(t) == t + pat[0] and led.v == 1  # the pattern repeats
    m.raise_(OCCLUSION, t + 50)  # a more urgent alarm restarts with its own pattern
    assert out.update(t + 50) == t + 50 + PATTERNS[HIGH][0] and buz.v == 1


def test_output_while_silenced_keeps_the_led_steady_and_the_buzzer_quiet():
    m = AlarmManager()
    led, buz = Pin(), Pin()
    out = AlarmOutput(m, led, buz)
    m.raise_(OCCLUSION, 0)
    out.update(0)
    m.acknowledge(ALL, 100)
    assert out.update(100) == 120_100  # sleep until the silence expires
    assert led.v == 1 and buz.v == 0
    out.update(120_100)
    assert buz.v == 1
    m.clear_condition(OCCLUSION, 120_200)
    assert out.update(120_200) is None and led.v == 0 and buz.v == 0
    out2 = AlarmOutput(m, Pin(), None, paused_led=False)  # no buzzer on this board
    m.raise_(OCCLUSION, 0)
    m.acknowledge(ALL, 0)
    out2.update(1)
    assert out2._led.v == 0


def test_output_does_not_rewrite_pins_that_did_not_change():
    m = AlarmManager()
    led = Pin()
    out = AlarmOutput(m, led)
    for t in range(0, 10_000, 7):
        out.update(t)
    assert led.writes == 1


def test_alarm_and_event_tables_are_contiguous_and_named_like_their_constants():
    for i, row in enumerate(events.ALARMS):
        code, name, prio, latched, text = row
        assert code == i + 1
        assert getattr(events, name) == code
        assert prio in (LOW, MEDIUM, HIGH)
        assert latched in (True, False)
        assert events.alarm(code) is row and events.by_name(name) == code
    for i, row in enumerate(events.EVENTS):
        assert row[0] == i + 1
        assert getattr(events, "EV_" + row[1]) == row[0]
    raises(ValueError, events.alarm, 0)
    raises(ValueError, events.event, len(events.EVENTS) + 1)


def test_every_alarm_text_says_what_is_wrong_and_what_to_do():
    for row in events.ALARMS:
        t = row[4]
        assert ": " in t and t.endswith("."), t
        assert len(t) <= 120, t  # fits a status line and stays cheap in RAM


def _doc_text():
    for p in ("../../docs/alarms.md", "docs/alarms.md"):
        try:
            with open(p) as f:
                return f.read()
        except OSError:
            pass
    raise AssertionError("docs/alarms.md not found")


def test_docs_alarm_table_matches_events_module():
    doc = _doc_text()
    for code, name, prio, latched, text in events.ALARMS:
        row = "| %d | %s | %s | %s | %s |" % (code, name, events.PRIORITY_NAMES[prio],
                                              "yes" if latched else "no", text)
        assert row in doc, row
    for code, name, arg in events.EVENTS:
        row = "| %d | %s | %s |" % (code, name, arg)
        assert row in doc, row
