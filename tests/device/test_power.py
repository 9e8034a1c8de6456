"""Supply/battery monitor and service-life counters."""
from pump.power import PowerMonitor, ServiceLife, monitor_for, ALARM_GROUP
from pump.events import BATTERY_LOW, ERI, END_OF_SERVICE
from vmtest import raises


class Adc:
    """A fake ADC: returns the queued codes in turn, then repeats `code`."""

    def __init__(self, code=0):
        self.code = code
        self.queue = []
        self.reads = 0

    def read_u16(self):
        self.reads += 1
        if self.queue:
            return self.queue.pop(0)
        return self.code


def code_for(vsys_mv):
    """read_u16() code a Pico shows for a VSYS voltage (VSYS/3 into a 3.3 V ADC)."""
    return (vsys_mv * 65535 + 4950) // 9900


def at(adc, mv):
    adc.code = code_for(mv)


def test_pico_vsys_divider_turns_adc_codes_into_integer_millivolts():
    adc = Adc(65535)
    m = PowerMonitor(adc)
    assert m.read_mv() == 9900  # full scale: 3.3 V x 3
    adc.code = 32768
    assert m.read_mv() == 4950
    for mv in (3000, 3300, 3600, 4200, 5000):
        at(adc, mv)
        assert m.read_mv() == mv
    assert adc.reads == 7 * 8  # eight conversions per reading


def test_one_reading_ignores_a_dnl_spike_or_a_dip():
    adc = Adc()
    at(adc, 3700)
    m = PowerMonitor(adc)
    adc.queue = [code_for(3700) + 2000]  # a spike at a DNL code
    assert m.read_mv() == 3700
    adc.queue = [0]  # a dip while the motor steps
    assert m.read_mv() == 3700


def test_state_changes_only_after_three_agreeing_readings():
    adc = Adc()
    at(adc, 4000)
    m = PowerMonitor(adc)
    assert m.update() is None and m.state() == "ok" and m.mv == 4000
    at(adc, 3590)
    assert m.update() is None
    assert m.update() is None
    assert m.update() == "low" and m.state() == "low" and m.alarm_code() == BATTERY_LOW
    assert m.update() is None  # the edge is reported once


def test_a_short_supply_dip_does_not_change_the_state():
    adc = Adc()
    at(adc, 4000)
    m = PowerMonitor(adc)
    for mv in (3200, 3200, 4000, 3200, 3200, 4000):
        at(adc, mv)
        assert m.update() is None
    assert m.state() == "ok"


def test_thresholds_fall_through_low_eri_and_end_of_service_at_or_below_each_level():
    adc = Adc()
    m = PowerMonitor(adc, confirm=1)
    seen = []
    for mv in (3601, 3600, 3451, 3450, 3301, 3300):
        at(adc, mv)
        seen.append((m.update(), m.alarm_code()))
    assert seen == [(None, None), ("low", BATTERY_LOW), (None, BATTERY_LOW), ("eri", ERI),
                    (None, ERI), ("eos", END_OF_SERVICE)]
    assert ALARM_GROUP == (BATTERY_LOW, ERI, END_OF_SERVICE)


def test_a_sudden_drop_goes_straight_to_end_of_service():
    adc = Adc()
    m = PowerMonitor(adc, confirm=1)
    at(adc, 3000)
    assert m.update() == "eos"


def test_recovery_needs_the_reading_50_mv_above_the_threshold():
    adc = Adc()
    m = PowerMonitor(adc, confirm=1)
    at(adc, 3440)
    assert m.update() == "eri"
    at(adc, 3500)  # above ERI, but within 50 mV of it
    assert m.update() is None and m.state() == "eri"
    at(adc, 3501)
    assert m.update() == "low"
    at(adc, 3650)
    assert m.update() is None and m.state() == "low"
    at(adc, 3651)
    assert m.update() == "ok" and m.alarm_code() is None


def test_recovery_also_needs_three_agreeing_readings():
    adc = Adc()
    m = PowerMonitor(adc)
    at(adc, 3500)
    for _ in range(3):
        m.update()
    assert m.state() == "low"
    at(adc, 4000)
    assert m.update() is None and m.update() is None and m.update() == "ok"


def test_bad_power_configuration_is_rejected():
    e = raises(ValueError, PowerMonitor, Adc(), 3, 1, 3300, 3400, 3500, 3300)
    assert "low" in str(e) and "eri" in str(e)
    raises(ValueError, PowerMonitor, Adc(), 0)
    raises(ValueError, PowerMonitor, Adc(), 3, 1, 3300, 3600, 3450, 3300, -1)


def test_board_without_a_voltage_input_has_no_monitor():
    assert monitor_for(None) is None
    assert monitor_for(None, None) is None  # e.g. ESP32 DevKitC: no SUPPLY in its board file
    assert monitor_for(None, {"low_mv": 1}) is None


def test_pico_board_supply_settings_give_vsys_in_millivolts():
    from boards import pico
    adc = Adc()
    at(adc, 4200)
    assert monitor_for(adc, pico.SUPPLY).read_mv() == 4200


def test_monitor_for_takes_board_options_and_rejects_unknown_ones():
    adc = Adc()
    at(adc, 1600)
    m = monitor_for(adc, {"adc": 29, "divider_num": 2, "vref_mv": 3300})
    assert m.read_mv() == (code_for(1600) * 6600 + 32767) // 65535
    e = raises(ValueError, monitor_for, adc, {"low_volts": 3})
    assert "low_volts" in str(e) and "low_mv" in str(e)
    assert monitor_for(adc).read_mv() == 1600


def test_hours_of_operation_add_up_across_boots():
    s = ServiceLife()
    s.tick(5_000)  # the first tick of a boot only sets the reference
    assert s.ms == 0
    s.tick(3_605_000)
    assert s.hours == 1
    s2 = ServiceLife.from_dict(s.to_dict())  # reboot: uptime starts again
    s2.tick(100)
    s2.tick(100 + 3 * 3_600_000 - 1)
    assert s2.hours == 3 and s2.ms == 4 * 3_600_000 - 1
    s2.tick(50)  # uptime went backwards: a new boot, nothing added
    assert s2.ms == 4 * 3_600_000 - 1


def test_motor_revolutions_count_steps_in_both_directions():
    s = ServiceLife(3200)
    s.add_steps(3200 * 10 - 1)
    assert s.revolutions == 9
    s.add_steps(-1)
    assert s.revolutions == 10 and s.steps == 32_000
    s.add_steps(2_700_000)  # 90 days at 25 uL/h
    assert s.revolutions == (32_000 + 2_700_000) // 3200
    assert ServiceLife.from_dict(s.to_dict(), 3200).revolutions == s.revolutions
    raises(ValueError, ServiceLife, 0)
