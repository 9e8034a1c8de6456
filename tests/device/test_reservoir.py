"""Reservoir accounting: step-exact volume, low/empty edges, refill, time to low/empty."""
from pump.reservoir import Reservoir, ALARM_GROUP, RefillRecord
from pump.events import RESERVOIR_LOW, RESERVOIR_EMPTY
from vmtest import raises

ML = 1_000_000  # nL
DAY = 86_400
H = 3_600
CONC = 500_000  # 500 mcg/mL in ng/mL


def full(cal=20_000, vol=20 * ML):
    return Reservoir(40 * ML, cal, vol, CONC)


def continuous(rate_nl_h):
    """volume_between for a continuous rate: exact cumulative nL, rounded down."""
    def between(t0, t1):
        return t1 * rate_nl_h // H - t0 * rate_nl_h // H
    return between


def test_volume_is_debited_from_steps_with_the_sub_nl_remainder_carried_exactly():
    # 20.123 nL per microstep: every step leaves a fraction of a nL
    one, bulk = full(20_123), full(20_123)
    for _ in range(2_700_000):
        one.apply_steps(1)
    bulk.apply_steps(2_700_000)
    assert one.volume_nl == bulk.volume_nl == 20 * ML - 2_700_000 * 20_123 // 1000
    assert one.volume_nl == 20 * ML - 54_332_100  # no step lost to rounding


def test_reverse_steps_credit_volume_back_exactly():
    r = full(20_123)
    r.apply_steps(1001)
    r.apply_steps(-1001)
    assert r.volume_nl == 20 * ML
    r.apply_steps(7)
    r.apply_steps(-3)
    assert r.volume_nl == (20 * ML * 1000 - 4 * 20_123) // 1000


def test_volume_left_is_rounded_down_never_reporting_more_than_is_left():
    r = full(20_500)
    r.apply_steps(1)  # 20.5 nL gone
    assert r.volume_nl == 20 * ML - 21
    r.apply_steps(1)  # 41 nL gone
    assert r.volume_nl == 20 * ML - 41


def test_low_edge_comes_once_exactly_when_the_volume_reaches_2_ml():
    r = full(20_000, 2 * ML + 100)  # 20 nL per step
    assert r.state() == "ok" and r.poll_edge() is None
    r.apply_steps(4)
    assert r.volume_nl == 2 * ML + 20 and r.state() == "ok" and r.poll_edge() is None
    r.apply_steps(1)
    assert r.volume_nl == 2 * ML and r.state() == "low"
    assert r.poll_edge() == "low" and r.alarm_code() == RESERVOIR_LOW
    r.apply_steps(1000)
    assert r.poll_edge() is None  # once


def test_empty_edge_comes_once_at_zero_and_not_before():
    r = full(20_000, 2 * ML + 100)
    r.apply_steps(5)
    assert r.poll_edge() == "low"
    r.apply_steps(99_999)
    assert r.volume_nl == 20 and r.state() == "low" and r.poll_edge() is None
    r.apply_steps(1)
    assert r.volume_nl == 0 and r.state() == "empty"
    assert r.poll_edge() == "empty" and r.alarm_code() == RESERVOIR_EMPTY
    assert r.poll_edge() is None
    r.apply_steps(3)  # steps that ran on are still counted
    assert r.volume_nl == -60 and r.state() == "empty"


def test_a_reservoir_already_low_at_start_reports_its_edge_once_so_alarms_are_raised():
    r = full(20_000, 1 * ML)
    assert r.poll_edge() == "low" and r.poll_edge() is None
    assert ALARM_GROUP == (RESERVOIR_LOW, RESERVOIR_EMPTY)


def test_reverse_steps_near_a_threshold_do_not_flap_the_state():
    r = full(20_000, 2 * ML)
    assert r.poll_edge() == "low"
    r.apply_steps(-10)  # back-off: 200 nL above the threshold, inside the 10 uL hysteresis
    assert r.state() == "low" and r.poll_edge() is None
    r.apply_steps(-491)  # 10.02 uL above: clear of the threshold
    assert r.state() == "ok" and r.poll_edge() == "ok"


def test_refill_records_old_and_new_volume_and_concentration_and_resets_the_state():
    r = full(20_000, 20)
    r.apply_steps(1)
    assert r.poll_edge() == "empty"
    rec = r.refill(20 * ML, 2_000_000, 1234)
    assert isinstance(rec, RefillRecord)
    assert rec == (1234, 0, 20 * ML, CONC, 2_000_000, True)
    assert rec.conc_changed and rec.old_nl == 0
    assert r.volume_nl == 20 * ML and r.conc == 2_000_000 and r.refill_t == 1234
    assert r.state() == "ok" and r.poll_edge() == "ok" and r.alarm_code() is None
    assert not r.refill(19 * ML, 2_000_000, 2000).conc_changed


def test_rejected_refill_leaves_the_reservoir_exactly_as_it_was():
    r = full(20_123)
    r.apply_steps(12_345)
    before = r.to_dict()
    e = raises(ValueError, r.refill, 40 * ML + 1, CONC, 5)
    assert "refill volume" in str(e) and "40000000" in str(e)
    e = raises(ValueError, r.refill, -1, CONC, 5)
    assert "refill volume" in str(e)
    e = raises(ValueError, r.refill, 10 * ML, 0, 5)
    assert "concentration" in str(e)
    raises(ValueError, r.refill, 1.5, CONC, 5)
    assert r.to_dict() == before


def test_bad_configuration_is_rejected_naming_the_field():
    assert "capacity" in str(raises(ValueError, Reservoir, 0, 20_000))
    assert "calibration" in str(raises(ValueError, Reservoir, 20 * ML, 0))
    assert "volume" in str(raises(ValueError, Reservoir, 20 * ML, 20_000, 21 * ML))
    assert "low threshold" in str(raises(ValueError, Reservoir, 20 * ML, 20_000, 0, 0, 21 * ML))
    r = full()
    before = r.to_dict()
    raises(ValueError, r.set_calibration, 0)
    assert r.to_dict() == before


def test_calibration_change_applies_to_later_steps_only():
    r = full(20_000)
    r.apply_steps(1000)  # 20 uL
    r.set_calibration(30_500)
    assert r.volume_nl == 20 * ML - 20_000
    r.apply_steps(2)  # 61 nL
    assert r.volume_nl == 20 * ML - 20_061


def test_continuous_25_ul_per_h_from_20_ml_is_30_days_to_low_and_33_3_days_to_empty():
    r = full()
    s_low, s_empty = r.seconds_to_low_and_empty(continuous(25_000), 0)
    assert s_low == 30 * DAY  # (20 - 2) mL / 0.6 mL/day
    assert s_empty == 800 * H  # 20 mL / 0.6 mL/day = 33.33 days
    d_low, d_empty = r.days_to_low_and_empty(continuous(25_000), 0)
    assert d_low == 30.0 and abs(d_empty - 33.333) < 0.001


def test_time_to_low_counts_from_now_and_is_exact_to_the_second():
    r = full()
    now = 777_777_777  # any wall time
    s = r.seconds_to(2 * ML, continuous(25_000), now)
    v = continuous(25_000)
    assert v(now, now + s) >= 18 * ML > v(now, now + s - 1)


def test_daily_schedule_days_to_low_and_empty():
    # flex program: 50 uL/h 08:00-20:00, 10 uL/h otherwise (0.72 mL/day); now = midnight
    def cum(t):  # nL*s delivered from 0 to t
        d, s = divmod(t, DAY)
        x = d * (12 * 50_000 + 12 * 10_000) * H
        if s <= 8 * H:
            return x + s * 10_000
        if s <= 20 * H:
            return x + 8 * H * 10_000 + (s - 8 * H) * 50_000
        return x + 8 * H * 10_000 + 12 * H * 50_000 + (s - 20 * H) * 10_000

    def between(t0, t1):
        return cum(t1) // H - cum(t0) // H

    r = full()
    s_low, s_empty = r.seconds_to_low_and_empty(between, 0)
    assert s_low == 25 * DAY  # 18 mL / 0.72 mL/day, reached at midnight
    # 27 days = 19.44 mL; 0.08 mL by 08:00; 0.48 mL more at 50 uL/h takes 9.6 h
    assert s_empty == 27 * DAY + 8 * H + 34_560


def test_stopped_pump_never_reaches_low_or_empty_and_the_search_is_bounded():
    calls = [0]

    def stopped(t0, t1):
        calls[0] += 1
        return 0

    r = full()
    assert r.seconds_to_low_and_empty(stopped, 0) == (None, None)
    assert r.days_to_low_and_empty(stopped, 0) == (None, None)
    assert calls[0] <= 2 * 2 * 401  # ~400 daily chunks per search


def test_time_to_a_threshold_already_passed_is_zero():
    r = full(20_000, 1 * ML)
    assert r.seconds_to_low_and_empty(continuous(25_000), 0) == (0, 40 * H)


def test_persisted_state_round_trips_exactly():
    r = full(20_123)
    r.apply_steps(123_457)
    r.refill(30 * ML, CONC, 99)
    r.apply_steps(-5)
    r.apply_steps(77_777)
    r.set_calibration(19_999)
    r.apply_steps(3)
    d = r.to_dict()
    q = Reservoir.from_dict(d)
    assert q.to_dict() == d and q.volume_nl == r.volume_nl and q.state() == r.state()
    q.apply_steps(10)
    r.apply_steps(10)
    assert q.volume_nl == r.volume_nl


def test_recovery_from_a_checkpoint_never_over_estimates_the_volume_left():
    r = full(20_123)
    r.apply_steps(1000)
    d = r.checkpoint_dict(500)  # persisted before commanding the next 500 steps
    r.apply_steps(200)  # the board resets after only 200 of them
    q = Reservoir.from_checkpoint(d)
    assert q.recovered
    assert q.volume_nl <= r.volume_nl
    assert q.volume_nl == (20 * ML * 1000 - 1500 * 20_123) // 1000
    raises(ValueError, r.checkpoint_dict, -1)


def test_recovery_with_a_separately_persisted_reserved_step_count():
    r = full(20_000)
    r.apply_steps(100)
    d = r.to_dict()  # persisted rarely
    r.apply_steps(900)
    reserved, gen = r.steps + 250, r.gen  # persisted often (a checkpoint record)
    q = Reservoir.from_checkpoint(d, reserved, gen)
    assert q.volume_nl == 20 * ML - 1250 * 20 and q.volume_nl < r.volume_nl
    # a count smaller than the record's own never adds volume back
    assert Reservoir.from_checkpoint(r.to_dict(), 10, gen).volume_nl == r.volume_nl
    # a count from before a refill (older generation) is ignored
    r.refill(20 * ML, CONC, 5)
    assert Reservoir.from_checkpoint(r.to_dict(), 10 ** 6, gen).volume_nl == 20 * ML
    # a record older than the count: volume unknown, say so
    e = raises(ValueError, Reservoir.from_checkpoint, d, 10, r.gen)
    assert "refill" in str(e)
