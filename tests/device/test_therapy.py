"""pump.therapy: programs over time, volumes, boluses, demand ledger, state machine."""
from pump import therapy
from pump.therapy import (Program, rate_at, next_change, volume_between, time_to_deliver,
                          daily_dose, clinician_bolus, prime_bolus, bridge_bolus, BolusLedger,
                          DemandRefused, check_transition, check_action, TransitionError)
from pump.limits import FieldError
from vmtest import raises

DAY = 86_400
H = 3600
T0 = 800_000_000 - 800_000_000 % DAY  # a midnight, ~2025
C500 = 500_000
C2000 = 2_000_000


def cont(dose_ng_day=300_000, conc=C500, **kw):
    d = {"mode": "continuous", "conc_ng_ml": conc, "dose_ng_day": dose_ng_day}
    d.update(kw)
    return Program.from_dict(d)


def flex(steps, conc=C500, key="dose_steps"):
    return Program.from_dict({"mode": "flex", "conc_ng_ml": conc, key: steps})


def ramp(start=100_000, step=50_000, every=12 * H, target=900_000, start_s=T0):
    return Program.from_dict({"mode": "titration", "conc_ng_ml": C2000, "start_ng_day": start,
                              "step_ng_day": step, "every_s": every, "target_ng_day": target,
                              "start_s": start_s})


def brute_acc(program, t0, t1, dt=60):
    """Integral of the rate in nL*s/h, summed minute by minute (boundaries are whole minutes)."""
    acc = 0
    t = t0
    while t < t1:
        acc += rate_at(program, t) * dt
        t += dt
    return acc


def brute(program, t0, t1):
    return brute_acc(program, t0, t1) // H


# ---- programs -----------------------------------------------------------------------

def test_every_program_mode_round_trips_through_its_dict():
    dm = {"dose_ng": 50_000, "duration_s": 600, "lockout_s": 7200, "max_24h": 4}
    dicts = (
        {"mode": "stopped"},
        {"mode": "continuous", "conc_ng_ml": C500, "dose_ng_day": 300_000},
        {"mode": "continuous", "conc_ng_ml": C500, "rate_nl_h": 25_000, "demand": dm},
        {"mode": "flex", "conc_ng_ml": C500, "dose_steps": [[0, 300_000], [21_600, 400_000]]},
        {"mode": "flex", "conc_ng_ml": C500, "rate_steps": [[3600, 10_000]], "start_s": T0},
        {"mode": "titration", "conc_ng_ml": C2000, "start_ng_day": 100_000, "step_ng_day": 50_000,
         "every_s": 43_200, "target_ng_day": 900_000, "start_s": T0},
    )
    for d in dicts:
        assert Program.from_dict(d).to_dict() == d


def test_stopped_program_delivers_nothing_and_never_changes():
    p = Program.stopped()
    assert rate_at(p, T0) == 0 and next_change(p, T0) is None
    assert volume_between(p, T0, T0 + 90 * DAY) == 0 and daily_dose(p) == 0


def test_continuous_dose_program_runs_at_the_converted_rate():
    p = cont(300_000, C500)
    assert rate_at(p, T0) == 25_000 and rate_at(p, T0 + 12_345) == 25_000
    assert next_change(p, T0) is None
    assert daily_dose(p) == 300_000
    assert cont(300_000, C2000).peak_rate() == 6_250


def test_program_fields_are_validated_with_clear_errors():
    e = raises(FieldError, Program.from_dict, {"mode": "bolus"})
    assert "continuous" in str(e)
    e = raises(FieldError, Program.from_dict, {"mode": "continuous", "dose_ng_day": 1})
    assert "conc_ng_ml" in str(e)
    e = raises(FieldError, Program.from_dict, {"mode": "continuous", "conc_ng_ml": 10,
                                               "dose_ng_day": 1})
    assert "1 mcg/mL" in str(e)
    raises(FieldError, Program.from_dict, {"mode": "continuous", "conc_ng_ml": C500})
    raises(FieldError, Program.from_dict, {"mode": "continuous", "conc_ng_ml": C500,
                                           "dose_ng_day": 1, "rate_nl_h": 1})
    raises(FieldError, Program.from_dict, {"mode": "continuous", "conc_ng_ml": C500,
                                           "dose_ng_day": -1})
    e = raises(FieldError, Program.from_dict, {"mode": "continuous", "conc_ng_ml": C500,
                                               "dose_ng_day": 1, "colour": "red"})
    assert "colour" in str(e)
    raises(FieldError, Program.from_dict, {"mode": "stopped", "conc_ng_ml": C500})
    raises(FieldError, Program.from_dict, "continuous")


# ---- flex ---------------------------------------------------------------------------

def test_flex_schedule_follows_its_steps_through_the_day():
    p = flex([[6 * H, 400_000], [22 * H, 200_000]])
    assert rate_at(p, T0 + 6 * H) == dose_rate(400_000)
    assert rate_at(p, T0 + 21 * H + 3599) == dose_rate(400_000)
    assert rate_at(p, T0 + 22 * H) == dose_rate(200_000)


def dose_rate(ng_day, conc=C500):
    return ng_day * 1_000_000 // (conc * 24)


def test_flex_schedule_wraps_at_midnight_to_the_last_step():
    p = flex([[6 * H, 400_000], [22 * H, 200_000]])
    assert rate_at(p, T0) == dose_rate(200_000)  # 00:00 is still the 22:00 step
    assert rate_at(p, T0 + 6 * H - 1) == dose_rate(200_000)
    assert next_change(p, T0 + 23 * H) == T0 + DAY + 6 * H


def test_flex_allows_ten_steps_and_rejects_eleven():
    ten = [[i * 2 * H, 100_000 + i * 10_000] for i in range(10)]
    assert len(flex(ten).steps) == 10
    e = raises(FieldError, flex, ten + [[23 * H, 1]])
    assert "1-10" in str(e) and "11" in str(e)


def test_flex_steps_must_be_in_time_order_within_the_day():
    e = raises(FieldError, flex, [[6 * H, 1], [6 * H, 2]])
    assert "06:00" in str(e)
    raises(FieldError, flex, [[6 * H, 1], [5 * H, 2]])
    e = raises(FieldError, flex, [[DAY, 1]])
    assert "time_of_day_s" in str(e)
    raises(FieldError, flex, [])
    raises(FieldError, flex, [[0, 1, 2]])


def test_next_change_skips_boundaries_where_the_rate_stays_the_same():
    p = flex([[0, 300_000], [6 * H, 300_000], [12 * H, 600_000]])
    assert next_change(p, T0 + H) == T0 + 12 * H
    assert next_change(p, T0 + 13 * H) == T0 + DAY
    assert next_change(flex([[0, 1], [H, 1]], key="rate_steps"), T0) is None


def test_flex_daily_dose_is_time_weighted():
    p = flex([[0, 300_000], [18 * H, 600_000]])
    assert daily_dose(p) == 375_000


# ---- titration ----------------------------------------------------------------------

def test_titration_ramps_100_to_900_mcg_day_by_50_every_12_h_then_holds():
    p = ramp()
    assert p.dose_rate_at(T0 - 1) == 100_000
    assert p.dose_rate_at(T0) == 100_000
    assert p.dose_rate_at(T0 + 12 * H - 1) == 100_000
    assert p.dose_rate_at(T0 + 12 * H) == 150_000
    assert p.dose_rate_at(T0 + 16 * 12 * H) == 900_000  # reached after 8 days
    assert p.dose_rate_at(T0 + 15 * 12 * H) == 850_000
    assert p.dose_rate_at(T0 + 90 * DAY) == 900_000
    assert rate_at(p, T0 + 30 * DAY) == dose_rate(900_000, C2000)
    assert next_change(p, T0 + 15 * 12 * H) == T0 + 16 * 12 * H
    assert next_change(p, T0 + 16 * 12 * H) is None
    assert daily_dose(p) == 900_000


def test_titration_last_step_stops_at_the_ceiling():
    p = ramp(start=100_000, step=300_000, target=500_000)
    assert p.dose_rate_at(T0 + 12 * H) == 400_000
    assert p.dose_rate_at(T0 + 24 * H) == 500_000
    assert next_change(p, T0 + 24 * H) is None


def test_titration_can_ramp_down_to_its_target():
    p = ramp(start=600_000, step=100_000, target=300_000)
    assert p.dose_rate_at(T0 + 36 * H) == 300_000
    assert p.dose_rate_at(T0 + 90 * DAY) == 300_000


def test_titration_rejects_too_many_steps_and_short_intervals():
    e = raises(FieldError, ramp, 0, 1, 12 * H, 900_000)
    assert "step_ng_day" in str(e)
    raises(FieldError, ramp, 100_000, 50_000, 60)


def test_titration_without_start_holds_the_start_dose_until_confirmed():
    d = ramp().to_dict()
    del d["start_s"]
    p = Program.from_dict(d)
    assert p.dose_rate_at(T0 + 10 * DAY) == 100_000 and next_change(p, T0) is None
    assert p.started(T0).dose_rate_at(T0 + 12 * H) == 150_000


# ---- volumes ------------------------------------------------------------------------

def test_volume_between_matches_a_per_minute_brute_force():
    progs = (cont(), flex([[6 * H, 400_000], [9 * H + 30 * 60, 0], [22 * H, 200_000]]),
             ramp(every=3 * H), ramp(start=700_000, step=50_000, target=100_000, every=2 * H))
    for p in progs:
        for t0, t1 in ((T0, T0 + 2 * DAY), (T0 + 5 * H + 17 * 60, T0 + DAY + 23 * H + 7 * 60)):
            assert volume_between(p, t0, t1) == brute(p, t0, t1), p


def test_volume_between_over_90_days_is_ninety_brute_force_days():
    p = flex([[6 * H, 400_000], [9 * H + 30 * 60, 0], [22 * H, 200_000]], conc=C2000)
    day = brute_acc(p, T0, T0 + DAY)
    assert volume_between(p, T0 + 7 * H, T0 + 7 * H + 90 * DAY) == 90 * day // H
    assert volume_between(cont(), T0, T0 + 90 * DAY) == 25_000 * 24 * 90  # 54 mL


def test_volume_between_titration_over_90_days_integrates_the_ramp():
    p = ramp()
    ramp_part = sum(dose_rate(100_000 + 50_000 * k, C2000) * 12 for k in range(16))
    hold = dose_rate(900_000, C2000) * (90 * 24 - 16 * 12)
    assert volume_between(p, T0, T0 + 90 * DAY) == ramp_part + hold


def test_time_to_deliver_finds_when_the_reservoir_empties_with_scheduled_steps():
    p = cont()  # 25 uL/h
    assert time_to_deliver(p, T0, 20_000_000) == T0 + 800 * H
    f = flex([[0, 0], [12 * H, 600_000]])  # 12 h off, 12 h at 50 uL/h: 0.6 mL/day
    t = time_to_deliver(f, T0, 20_000_000)
    assert volume_between(f, T0, t) == 20_000_000 and volume_between(f, T0, t - 1) < 20_000_000
    assert time_to_deliver(Program.stopped(), T0, 1) is None
    assert time_to_deliver(p, T0, 0) == T0


# ---- boluses ------------------------------------------------------------------------

def test_screening_bolus_of_50_mcg_over_one_minute():
    b = clinician_bolus(C500, 60, dose_ng=50_000, start_s=T0)
    assert b.volume_nl == 100_000 and b.dose_ng == 50_000 and b.with_basal
    assert b.rate_nl_h() == 6_000_000
    assert b.rate_at(T0 - 1) == 0 and b.rate_at(T0) == 6_000_000 and b.rate_at(T0 + 60) == 0
    assert b.delivered_by(T0 + 30) == 50_000 and b.delivered_by(T0 + 600) == 100_000
    assert b.steps(20_000) == 5000 and b.interval(20_000) == (12_000, 0)


def test_bolus_shorter_than_one_minute_is_rejected():
    e = raises(FieldError, clinician_bolus, C500, 59, 50_000)
    assert "duration_s" in str(e) and "1 min" in str(e)


def test_volumetric_bolus_dose_rounds_up_and_bolus_round_trips():
    b = clinician_bolus(1_500_000, 120, volume_nl=33_333)
    assert b.dose_ng == 50_000
    assert therapy.Bolus.from_dict(b.to_dict()) == b
    raises(FieldError, clinician_bolus, C500, 60)
    raises(FieldError, clinician_bolus, C500, 60, 1, 1)


def test_prime_bolus_pauses_the_basal():
    b = prime_bolus(200_000, 120, C500)
    assert not b.with_basal and b.kind == "prime" and b.start_s is None
    assert b.started(T0).start_s == T0


def test_bridge_delivers_the_dead_volume_at_the_old_programs_pace():
    old = cont(300_000, C500)  # 25 uL/h
    new = cont(300_000, C2000)  # 6.25 uL/h
    b = bridge_bolus(old, new, 200_000, T0)
    assert b.kind == "bridge" and not b.with_basal
    assert b.duration_s == 8 * H and b.volume_nl == 200_000
    assert b.rate_nl_h() == 25_000 and b.conc == C500 and b.dose_ng == 100_000


def test_bridge_follows_a_flex_old_program_across_its_steps():
    old = flex([[0, 0], [6 * H, 300_000]])  # off until 06:00, then 25 uL/h
    b = bridge_bolus(old, cont(300_000, C2000), 50_000, T0)
    assert b.duration_s == 8 * H  # 6 h of nothing, 2 h at 25 uL/h


def test_no_bridge_without_a_concentration_change_or_flow():
    assert bridge_bolus(cont(), cont(400_000), 200_000, T0) is None
    assert bridge_bolus(Program.stopped(), cont(), 200_000, T0) is None
    assert bridge_bolus(cont(0), cont(300_000, C2000), 200_000, T0) is None
    assert bridge_bolus(cont(), cont(300_000, C2000), 0, T0) is None


# ---- demand boluses ---------------------------------------------------------------------

def demand_prog(lockout=3 * H, n=4):
    return cont(300_000, C500, demand={"dose_ng": 25_000, "duration_s": 300,
                                       "lockout_s": lockout, "max_24h": n})


def test_demand_bolus_respects_the_lockout_from_the_previous_start():
    p = demand_prog()
    led = BolusLedger()
    b = led.give(p, T0)
    assert b.kind == "demand" and b.volume_nl == 50_000 and b.start_s == T0
    ok, why = led.may_give(p.demand, T0 + 3 * H - 1)
    assert not ok and "lockout" in why and "1 min" in why
    e = raises(DemandRefused, led.give, p, T0 + H)
    assert "2 h 00 min" in str(e)
    assert led.count_24h(T0 + H) == 1  # the refusal recorded nothing
    assert led.may_give(p.demand, T0 + 3 * H) == (True, None)


def test_demand_bolus_24_h_maximum_uses_a_rolling_window():
    p = demand_prog(lockout=H, n=3)
    led = BolusLedger()
    for k in range(3):
        led.give(p, T0 + k * 2 * H)
    ok, why = led.may_give(p.demand, T0 + 10 * H)
    assert not ok and "24 h maximum of 3" in why and "14 h 00 min" in why
    assert led.next_allowed(p.demand, T0 + 10 * H) == T0 + DAY
    assert not led.may_give(p.demand, T0 + DAY - 1)[0]
    assert led.may_give(p.demand, T0 + DAY)[0]
    led.give(p, T0 + DAY)
    assert not led.may_give(p.demand, T0 + DAY + H)[0]  # 3 in the last 24 h again
    assert led.may_give(p.demand, T0 + DAY + 2 * H)[0]


def test_no_demand_bolus_during_an_alarm_or_self_test_or_without_settings():
    p = demand_prog()
    led = BolusLedger()
    ok, why = led.may_give(p.demand, T0, "high-priority alarm: occlusion")
    assert not ok and "occlusion" in why
    raises(DemandRefused, led.give, p, T0, "power-on self-test")
    assert led.to_list() == []
    assert not led.may_give(None, T0)[0]


def test_ledger_keeps_a_fixed_list_and_survives_a_reset_via_its_list():
    p = demand_prog(lockout=300, n=24)
    led = BolusLedger()
    for k in range(30):
        led.record(T0 + k * 60)
    assert len(led.to_list()) == 24 and min(led.to_list()) == T0 + 6 * 60
    again = BolusLedger.from_list(led.to_list())
    assert sorted(again.to_list()) == sorted(led.to_list())
    assert not again.may_give(p.demand, T0 + 29 * 60 + 30)[0]


def test_ledger_treats_future_timestamps_as_now_after_the_clock_goes_back():
    p = demand_prog()
    led = BolusLedger.from_list([T0 + DAY])
    assert not led.may_give(p.demand, T0)[0]


def test_demand_settings_are_validated():
    bad = {"dose_ng": 25_000, "duration_s": 300, "lockout_s": 200, "max_24h": 4}
    e = raises(FieldError, cont, 300_000, C500, demand=bad)
    assert "lockout_s" in str(e)
    bad = {"dose_ng": 25_000, "duration_s": 30, "lockout_s": 3600, "max_24h": 4}
    raises(FieldError, cont, 300_000, C500, demand=bad)
    bad = {"dose_ng": 25_000, "duration_s": 300, "lockout_s": 3600, "max_24h": 25}
    raises(FieldError, cont, 300_000, C500, demand=bad)


# ---- state machine ------------------------------------------------------------------------

def test_state_machine_allows_the_documented_transitions_only():
    S = therapy
    assert check_transition(S.STOPPED, S.RUNNING)
    assert check_transition(S.RUNNING, S.SUSPENDED)
    assert check_transition(S.SUSPENDED, S.RUNNING)
    assert check_transition(S.RUNNING, S.ALARM_STOP)
    assert check_transition(S.SELFTEST, S.RUNNING)  # restore after power loss
    assert check_transition(S.RUNNING, S.RUNNING) is False
    e = raises(TransitionError, check_transition, S.ALARM_STOP, S.RUNNING)
    assert "STOPPED" in str(e) and "SELFTEST" in str(e)
    raises(TransitionError, check_transition, S.SUSPENDED, S.SELFTEST)
    raises(TransitionError, check_transition, "FLYING", S.RUNNING)
    for old in S.STATES:
        for new in S.TRANSITIONS[old]:
            assert new in S.STATES


def test_actions_map_to_transitions_in_the_table():
    S = therapy
    assert check_action(S.RUNNING, "suspend") == S.SUSPENDED
    assert check_action(S.ALARM_STOP, "clear") == S.STOPPED
    assert check_action(S.RUNNING, "confirm") is None
    raises(TransitionError, check_action, S.SELFTEST, "confirm")
    raises(TransitionError, check_action, S.ALARM_STOP, "resume")
    for action in S.ACTIONS:
        allowed, new = S.ACTIONS[action]
        if new is not None:
            for old in allowed:
                assert check_transition(old, new)


def test_boluses_are_blocked_in_alarm_self_test_and_suspend():
    S = therapy
    assert S.bolus_blocked_by_state(S.RUNNING) is None
    assert S.bolus_blocked_by_state(S.STOPPED) is None
    assert "self-test" in S.bolus_blocked_by_state(S.SELFTEST)
    assert "alarm" in S.bolus_blocked_by_state(S.ALARM_STOP)
    assert S.bolus_blocked_by_state(S.SUSPENDED)
