"""The firmware as a whole on the simulated board: boot, therapy, reservoir, faults."""
from pumprig import PumpRig, DAY_MS
from vboard.clock import CLOCK
from pump import events as ev
from pump.therapy import STOPPED, RUNNING, ALARM_STOP
from pump.controller import CommandError
from vmtest import raises

CONT_300 = {"mode": "continuous", "conc_ng_ml": 500_000, "dose_ng_day": 300_000}


def running_pump():
    """20 mL of 500 mcg/mL, 300 mcg/day (25 uL/h) confirmed and started."""
    rig = PumpRig()
    c = rig.ready()
    rig.program(CONT_300)
    c.action("start", rig.now())
    return rig, c


def test_first_power_on_writes_safe_defaults_and_stays_stopped():
    rig = PumpRig()
    c = rig.ctl
    assert c.state == STOPPED
    assert not c.engine.running
    assert set(c.store.selftest(("config", "limits", "program", "counters")).values()) == {"ok"}


def test_a_day_at_300_mcg_per_day_delivers_0_6_ml_within_one_step():
    rig, c = running_pump()
    assert c.state == RUNNING and c.rate_nl_h == 25_000
    rig.run(DAY_MS)
    ideal = 600_000 * 1000 // 20_000  # 0.6 mL at 0.02 uL/step = 30,000 steps
    assert ideal - 1 <= rig.counted() <= ideal, rig.counted()
    assert c.reservoir.volume_nl == 20_000_000 - rig.counted() * 20
    assert c.state == RUNNING and not c.alarms.any_high()


def test_over_limit_program_is_rejected_whole_and_changes_nothing():
    rig = PumpRig()
    c = rig.ready()
    rig.program(CONT_300)
    before = rig.state_files()
    prog, state, seq = c.program.to_dict(), c.state, c.log.read(0, 1000)[-1].seq
    e = raises(ValueError, c.stage, "program",
               {"mode": "continuous", "conc_ng_ml": 2_000_000, "dose_ng_day": 1_200_000}, rig.now())
    assert "max_daily_dose" in str(e) and "1000 mcg/day" in str(e)
    assert c.program.to_dict() == prog and c.state == state
    assert c.log.read(0, 1000)[-1].seq == seq
    assert rig.state_files() == before


def test_over_limit_bolus_is_rejected_and_changes_nothing():
    rig = PumpRig()
    c = rig.ready()
    rig.program(CONT_300)
    before = rig.state_files()
    e = raises(ValueError, c.stage, "bolus",
               {"kind": "clinician", "dose_ng": 500_000, "duration_s": 600}, rig.now())
    assert "max_bolus" in str(e)
    assert c.bolus is None and rig.state_files() == before


def test_unconfirmed_change_is_never_applied_and_expires():
    rig = PumpRig()
    c = rig.ready()
    cid, summary = c.stage("program", CONT_300, rig.now())
    assert summary["new"]["dose_ng_day"] == 300_000
    rig.run(10 * 60_000)
    assert c.program.mode == "stopped"
    assert raises(ValueError, c.confirm, cid, rig.now())
    assert c.program.mode == "stopped" and not c.engine.running


def test_low_and_empty_reservoir_alarms_at_the_right_volumes():
    rig = PumpRig()
    c = rig.ready(volume_ml=3, conc_mcg_ml=50)
    rig.program({"mode": "continuous", "conc_ng_ml": 50_000, "rate_nl_h": 100_000})  # 100 uL/h
    c.action("start", rig.now())
    rig.run(9 * 3_600_000)  # 0.9 mL: 2.1 mL left
    assert not c.alarms.is_active(ev.RESERVOIR_LOW)
    rig.run(2 * 3_600_000)  # 1.1 mL more: 1.9 mL left
    assert c.alarms.is_active(ev.RESERVOIR_LOW)
    assert c.state == RUNNING
    rig.run(19 * 3_600_000 + 60_000)  # past empty
    assert c.alarms.is_active(ev.RESERVOIR_EMPTY)
    assert c.state == ALARM_STOP and not c.engine.running
    assert c.reservoir.volume_nl <= 20  # stopped within one step of empty
    n = rig.counted()
    rig.run(3_600_000)
    assert rig.counted() == n  # nothing after empty
    assert raises(ValueError, c.action, "resume", rig.now())


def test_after_power_loss_the_reservoir_is_never_over_estimated():
    rig, c = running_pump()
    rig.run(DAY_MS // 3 + 12_345)
    true_left = c.reservoir.volume_nl - 0
    delivered = rig.counted()
    rig2 = rig.reboot()
    c2 = rig2.ctl
    assert c2.reservoir.volume_nl <= 20_000_000 - delivered * 20
    assert c2.reservoir.volume_nl >= true_left - 50_000  # at most one 50 uL reserve lost
    assert c2.state == RUNNING  # therapy resumes from a valid persisted state
    assert c2.alarms.is_active(ev.CLOCK_NOT_CONFIRMED)


def test_corrupt_state_means_no_dosing_and_a_high_alarm():
    rig, c = running_pump()
    rig.run(60_000)
    with open(rig.root + "/program", "r+b") as f:
        f.seek(20)
        f.write(b"\\xff\\x00garbage")
    rig2 = rig.reboot()
    c2 = rig2.ctl
    assert c2.state == ALARM_STOP
    assert c2.alarms.is_active(ev.SELF_TEST_FAILED)
    n = rig2.counted()
    rig2.run(3_600_000)
    assert rig2.counted() == n and not c2.engine.running


def test_unhandled_fault_stops_the_motor_and_raises_a_high_alarm():
    rig, c = running_pump()
    rig.run(60_000)

    def broken(n):
        raise RuntimeError("simulated bug")

    c.reservoir.apply_steps = broken
    rig.run(3_600_000)
    assert c.state == ALARM_STOP and c.alarms.is_active(ev.FAULT_SHUTDOWN)
    assert not c.engine.running and c.hw.driver.enabled is False
    assert any(e.code == ev.EV_FAULT for e in c.log.read(0, 1000))


def test_a_dead_dose_timer_is_caught_and_the_pump_shut_down():
    rig, c = running_pump()
    rig.run(60_000)
    CLOCK.timers[:] = []  # the timer died (an exception in a hard IRQ stops it)
    rig.run(60_000)
    assert c.alarms.is_active(ev.SUBSYSTEM_SILENT)
    assert c.state == ALARM_STOP and c.hw.driver.enabled is False


def test_no_bolus_during_a_high_priority_alarm():
    rig = PumpRig()
    c = rig.ready()
    rig.program(CONT_300)
    c.alarms.raise_(ev.OCCLUSION, rig.now())
    cid, _ = c.stage("bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 600}, rig.now())
    e = raises(ValueError, c.confirm, cid, rig.now())
    assert "high-priority alarm" in str(e)
    assert c.bolus is None


def test_clinician_bolus_is_delivered_on_top_of_the_basal_rate():
    rig, c = running_pump()
    cid, _ = c.stage("bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 600}, rig.now())
    c.confirm(cid, rig.now())
    rig.run(3_600_000)
    # 50 mcg at 500 mcg/mL = 100 uL = 5,000 steps; plus one hour of 25 uL/h = 1,250 steps
    assert 6_250 - 2 <= rig.counted() <= 6_250, rig.counted()
    assert c.bolus is None


def test_commands_need_the_clock_set_by_a_host():
    rig = PumpRig()
    assert isinstance(raises(ValueError, rig.ctl.stage, "program", CONT_300, rig.now()), CommandError)


def test_a_program_for_another_concentration_will_not_start():
    rig = PumpRig()
    c = rig.ready(conc_mcg_ml=2000)
    rig.program(CONT_300)  # written for 500 mcg/mL
    e = raises(ValueError, c.action, "start", rig.now())
    assert "500 mcg/mL" in str(e) and "2000 mcg/mL" in str(e)
    assert c.state == STOPPED and not c.engine.running


def test_ctrl_c_from_the_host_stops_the_pump_safely_and_says_so():
    rig, c = running_pump()
    rig.run(60_000)

    def host_interrupt(ms):
        raise KeyboardInterrupt

    rig.loop.wait = host_interrupt
    assert raises(KeyboardInterrupt, rig.loop.run, rig.loop.uptime.ms + 60_000)
    assert c.state == ALARM_STOP and not c.engine.running and c.hw.driver.enabled is False
    assert c.alarms.is_active(ev.THERAPY_STOPPED)
    assert any(e.code == ev.EV_FAULT for e in c.log.read(0, 1000))
    CLOCK.advance(9 * 60_000_000)  # the host works at the REPL: the watchdog is fed meanwhile
    e = raises(SystemExit, CLOCK.advance, 2 * 60_000_000)  # then it resets the board
    assert "watchdog" in str(e)
    rig2 = rig.reboot()
    assert rig2.ctl.state == STOPPED and not rig2.ctl.engine.running  # stopped by host stays stopped


def test_a_concentration_change_bridges_the_old_drug_out_of_the_catheter():
    rig, c = running_pump()
    c.set_config({"dead_volume_nl": 100_000}, rig.now())  # 0.1 mL of catheter
    rig.run(3_600_000)
    c.action("suspend", rig.now())
    c.refill(20_000_000, 2_000_000, rig.now())  # now 2000 mcg/mL
    n0 = rig.counted()
    cid, summary = c.stage("program", {"mode": "continuous", "conc_ng_ml": 2_000_000,
                                       "dose_ng_day": 300_000}, rig.now())
    assert summary["bridge"]["volume_nl"] == 100_000
    c.confirm(cid, rig.now())
    assert c.bolus is not None and c.bolus.kind == "bridge"
    c.action("resume", rig.now())
    rig.run(4 * 3_600_000)  # 0.1 mL at the old 25 uL/h: 4 h, then the new 6.25 uL/h
    assert c.bolus is None
    bridged = rig.counted() - n0
    assert 4_999 <= bridged <= 5_001, bridged  # + the step half-done at suspend, kept
    rig.run(4 * 3_600_000)
    new_rate = rig.counted() - n0 - bridged  # 4 h at 6.25 uL/h = 25 uL = 1,250 steps
    assert 1_249 <= new_rate <= 1_251, new_rate


def test_boluses_count_against_the_daily_dose_limit():
    rig, c = running_pump()  # 300 mcg/day basal, max_daily_dose 1000 mcg/day
    bolus = {"kind": "clinician", "dose_ng": 100_000, "duration_s": 600}
    for _ in range(7):  # 300 + 7 x 100 = 1000 mcg: the limit exactly
        cid, _ = c.stage("bolus", bolus, rig.now())
        c.confirm(cid, rig.now())
        rig.run(700_000)
    e = raises(ValueError, c.stage, "bolus", bolus, rig.now())
    assert "max_daily_dose" in str(e)
    rig.run(86_400_000)  # a day later the boluses have aged out
    cid, _ = c.stage("bolus", bolus, rig.now())
    assert cid


def test_config_changes_are_validated_whole():
    rig = PumpRig()
    c = rig.ready()
    before = rig.state_files()
    e = raises(ValueError, c.set_config, {"drug": "baclofen", "dead_volume_nl": -5}, rig.now())
    assert "dead_volume_nl" in str(e)
    assert c.config["drug"] == "" and rig.state_files() == before
    c.set_config({"drug": "baclofen", "low_nl": 4_000_000}, rig.now())
    assert c.reservoir.low_nl == 4_000_000 and c.store.load("config")["drug"] == "baclofen"


def test_after_a_reset_without_host_schedules_run_on_persisted_time_plus_uptime():
    rig = PumpRig()
    c = rig.ready()
    rig.run(13 * 3_600_000)  # stopped pump: the clock is still saved every 6 h
    wall_before = c.wall(rig.now())
    rig2 = rig.reboot()
    c2 = rig2.ctl
    assert c2.alarms.is_active(ev.CLOCK_NOT_CONFIRMED) and not c2.clock.confirmed
    assert wall_before - 6 * 3600 <= c2.wall(rig2.now()) <= wall_before  # errs early, never ahead
    c2.set_clock(wall_before + 10, rig2.now())
    assert not c2.alarms.is_active(ev.CLOCK_NOT_CONFIRMED)


def test_a_sagging_supply_raises_low_battery_then_stops_at_end_of_service():
    from vboard import machine

    volts = [5.0]
    machine.ANALOG[29] = lambda: volts[0] / 3  # VSYS/3 on GP29
    try:
        rig, c = running_pump()
        rig.ctl.hw.power.read_mv()
        volts[0] = 3.55  # below the 3.6 V low-battery mark
        rig.run(10 * 60_000)
        assert c.alarms.is_active(ev.BATTERY_LOW) and c.state == RUNNING
        volts[0] = 3.2  # below end of service: dosing must stop
        rig.run(10 * 60_000)
        assert c.alarms.is_active(ev.END_OF_SERVICE)
        assert c.state == ALARM_STOP and not c.engine.running
    finally:
        machine.ANALOG[29] = lambda: 5.0 / 3


def test_counters_on_flash_always_cover_the_steps_delivered_at_165_writes_a_day():
    rig, c = running_pump()
    saves = [0]
    real_save = c.store.save

    def counting_save(name, record, schema=1):
        if name == "counters":
            saves[0] += 1
        return real_save(name, record, schema)

    c.store.save = counting_save
    for _minute in range(24 * 60):
        rig.run(60_000)
        persisted = c.store.load("counters")["res"]["steps"]
        assert persisted >= rig.counted(), (persisted, rig.counted())  # never over-estimates what is left
    assert 150 <= saves[0] <= 180, saves[0]  # ~one per 9 min at 25 uL/h: flash endurance budget


def test_an_exception_in_input_handling_stops_the_pump_safely():
    rig, c = running_pump()

    def broken_input(ctl, data, now):
        raise RuntimeError("simulated protocol bug")

    def input_arrives(ms):
        CLOCK.advance(1000)
        return b"x"

    rig.loop.on_input = broken_input
    rig.loop.wait = input_arrives
    rig.run(1_000)
    assert c.state == ALARM_STOP and c.alarms.is_active(ev.FAULT_SHUTDOWN)
    assert not c.engine.running and c.hw.driver.enabled is False


def test_acknowledging_an_alarm_that_is_not_active_is_refused():
    rig, c = running_pump()
    assert raises(ValueError, c.acknowledge, ev.OCCLUSION, rig.now())
    c.alarms.raise_(ev.RESERVOIR_LOW, rig.now())
    assert c.acknowledge(ev.RESERVOIR_LOW, rig.now()) == 1


def test_a_hung_main_loop_is_reset_by_the_watchdog():
    rig, c = running_pump()
    rig.run(60_000)
    c.hw.wdt.feed()
    e = raises(SystemExit, CLOCK.advance, 9_000_000)  # nobody feeds for 9 s (timeout 8 s)
    assert "watchdog" in str(e)
    assert not CLOCK.timers  # the board reset: the dose timer is gone with it
