"""pump.units: exact integer conversions, parsing without float, formatting, docs table."""
from pump import units
from pump.units import (parse_quantity, parse_as, fmt, format_quantity, step_interval,
                        dose_rate_to_flow, flow_to_dose_rate, dose_to_volume, volume_to_dose,
                        volume_to_steps, steps_to_volume, span_interval, parse_time_of_day,
                        format_time_of_day)
from vmtest import raises

MCG = 1000
MCG_ML = 1000  # ng/mL per mcg/mL


def test_300_mcg_day_at_500_mcg_ml_is_25_ul_h_and_0_6_ml_day():
    r = dose_rate_to_flow(300 * MCG, 500 * MCG_ML)
    assert r == 25_000
    assert units.flow_per_day(r) == 600_000
    assert fmt(r, "uL/h") == "25.0 uL/h"
    assert fmt(r, "mL/day") == "0.600 mL/day"


def test_300_mcg_day_at_2000_mcg_ml_is_6_25_ul_h_and_0_15_ml_day():
    r = dose_rate_to_flow(300 * MCG, 2000 * MCG_ML)
    assert r == 6_250
    assert fmt(r, "uL/h") == "6.25 uL/h"
    assert fmt(r, "mL/day") == "0.150 mL/day"


def test_flow_back_to_dose_rate_is_exact_when_divisible():
    assert flow_to_dose_rate(25_000, 500 * MCG_ML) == 300 * MCG
    assert flow_to_dose_rate(6_250, 2000 * MCG_ML) == 300 * MCG


def test_conversions_round_down_toward_less_delivered_and_up_on_request():
    # 100 mcg/day at 2000 mcg/mL = 2083.33 nL/h
    assert dose_rate_to_flow(100 * MCG, 2000 * MCG_ML) == 2083
    assert dose_rate_to_flow(100 * MCG, 2000 * MCG_ML, up=True) == 2084
    # 50 mcg at 2000 mcg/mL = 25 uL exactly; at 1500 mcg/mL 33.333 uL
    assert dose_to_volume(50 * MCG, 2000 * MCG_ML) == 25_000
    assert dose_to_volume(50 * MCG, 1500 * MCG_ML) == 33_333
    assert volume_to_dose(33_333, 1500 * MCG_ML) == 49_999
    assert volume_to_dose(33_333, 1500 * MCG_ML, up=True) == 50_000
    assert flow_to_dose_rate(2083, 2000 * MCG_ML, up=True) == 99_984  # exact: no rounding
    assert flow_to_dose_rate(2083, 1_234_567) == 61_718  # 61718.47
    assert flow_to_dose_rate(2083, 1_234_567, up=True) == 61_719


def test_volume_to_steps_rounds_down_and_steps_to_volume_is_exact_in_pl():
    assert volume_to_steps(25_000, 20_000) == 1250
    assert volume_to_steps(25_019, 20_000) == 1250
    assert volume_to_steps(25_001, 20_000, up=True) == 1251
    assert steps_to_volume(1250, 20_000) == 25_000
    assert steps_to_volume(3, 20_300) == 60  # 60.9 nL
    assert steps_to_volume(3, 20_300, up=True) == 61
    assert volume_to_steps(1000, 410_000) == 2  # syringe rig: 0.41 uL/step


def test_step_interval_25_ul_h_at_0_02_ul_per_step_is_2_88_s():
    assert step_interval(25_000, 20_000) == (2_880_000, 0)


def test_step_interval_keeps_the_fraction_in_65536ths_of_a_microsecond():
    # 6.25 uL/h at 20_000 pL: 312.5 steps/h -> 11_520_000 us exactly
    assert step_interval(6_250, 20_000) == (11_520_000, 0)
    # 7 uL/h: 350 steps/h -> 10_285_714.2857 us
    w, f = step_interval(7_000, 20_000)
    assert w == 10_285_714
    assert f == (2 * 65536 * 2 + 7) // 14  # nearest of 2/7 * 65536
    # exact: (w + f/65536) * rate == 3_600_000 * cal within half a fraction unit
    assert abs((w * 65536 + f) * 7_000 - 3_600_000 * 20_000 * 65536) * 2 <= 7_000


def test_step_interval_of_rate_zero_is_none_and_too_fast_is_rejected():
    assert step_interval(0, 20_000) is None
    raises(ValueError, step_interval, 10 ** 12, 20_000)
    raises(ValueError, step_interval, 25_000, 0)


def test_step_interval_matches_the_dose_engine_formula():
    for rate, cal in ((25_000, 20_000), (7_000, 20_300), (144_000_000, 20_000), (1, 410_000)):
        steps, per_us = rate * 1000, 3_600_000_000 * cal
        q = (per_us * 65536 * 2 + steps) // (steps * 2)
        assert step_interval(rate, cal) == (q // 65536, q % 65536)


def test_span_interval_spreads_a_bolus_over_its_duration():
    assert span_interval(1250, 60) == (48_000, 0)
    assert span_interval(0, 60) is None


def test_motor_max_flow_of_reference_pump_is_144_ml_h():
    assert units.motor_max_flow(2000, 20_000) == 144_000_000


def test_parse_quantity_reads_every_documented_example_exactly():
    assert parse_quantity("250mcg/day") == ("dose_rate", 250_000)
    assert parse_quantity("12.5uL/h") == ("flow", 12_500)
    assert parse_quantity("0.5mL/day") == ("flow", 20_833)  # 20833.3 nL/h, rounded down
    assert parse_quantity("2mL") == ("volume", 2_000_000)
    assert parse_quantity("500mcg/mL") == ("conc", 500_000)
    assert parse_quantity("50mcg") == ("dose", 50_000)
    assert parse_quantity("0.0203uL/step") == ("cal", 20_300)
    assert parse_quantity("0.41 uL/step") == ("cal", 410_000)


def test_parse_quantity_accepts_micro_signs_spaces_case_and_aliases():
    assert parse_quantity("12.5 \u00b5L/h") == ("flow", 12_500)  # micro sign
    assert parse_quantity("12.5\u03bcL/h") == ("flow", 12_500)  # greek mu
    assert parse_quantity(" 25 UL/H ") == ("flow", 25_000)
    assert parse_quantity("50ug") == ("dose", 50_000)
    assert parse_quantity("300 mcg/d") == ("dose_rate", 300_000)
    assert parse_quantity("12 hr") == ("duration", 43_200)
    assert parse_quantity("1min") == ("duration", 60)
    assert parse_quantity("1.5mg/mL") == ("conc", 1_500_000)


def test_parse_quantity_rejects_bad_input_naming_accepted_units():
    e = raises(ValueError, parse_quantity, "5 furlongs")
    assert "furlongs" in str(e) and "mcg/day" in str(e) and "uL/h" in str(e)
    e = raises(ValueError, parse_quantity, "25")
    assert "no unit" in str(e)
    e = raises(ValueError, parse_quantity, "mcg")
    assert "number" in str(e)
    e = raises(ValueError, parse_quantity, "-5mcg")
    assert "negative" in str(e)
    raises(ValueError, parse_quantity, "1.2.3mcg")
    raises(ValueError, parse_quantity, "1.mcg")
    raises(ValueError, parse_quantity, ".5mcg")
    e = raises(ValueError, parse_quantity, "0.0001mcg")
    assert "resolution" in str(e) and "ng" in str(e)


def test_parse_with_expected_kind_rejects_other_kinds():
    assert parse_as("25uL/h", "flow") == 25_000
    e = raises(ValueError, parse_as, "300mcg/day", "flow")
    assert "dose rate" in str(e) and "uL/h" in str(e) and "mL/day" in str(e)


def test_parse_is_exact_where_float_would_not_be():
    # 0.1 + 0.2 style traps: decimals are split, never floated
    assert parse_as("0.3uL", "volume") == 300
    assert parse_as("1.005mL", "volume") == 1_005_000
    assert parse_as("123456.789mcg", "dose") == 123_456_789


def test_format_quantity_uses_default_units():
    assert format_quantity("dose_rate", 300_000) == "300 mcg/day"
    assert format_quantity("dose_rate", 312_500) == "312.5 mcg/day"
    assert format_quantity("flow", 25_000) == "25.0 uL/h"
    assert format_quantity("dose", 50_000) == "50 mcg"
    assert format_quantity("volume", 2_000_000) == "2.000 mL"
    assert format_quantity("conc", 500_000) == "500 mcg/mL"
    assert format_quantity("cal", 20_000) == "0.0200 uL/step"
    assert format_quantity("duration", 43_200) == "12 h"
    assert format_quantity("duration", 90) == "90 s"


def test_fmt_rounds_to_nearest_and_handles_negative_differences():
    assert fmt(20_833, "mL/day") == "0.500 mL/day"
    assert fmt(-50_000, "mcg/day") == "-50 mcg/day"
    assert fmt(1234, "uL/h", 1) == "1.2 uL/h"
    assert fmt(1250, "uL/h", 1) == "1.3 uL/h"


def test_parse_format_round_trip_for_exact_units():
    for kind, v in (("dose_rate", 312_500), ("flow", 6_250), ("flow", 1), ("dose", 75_000),
                    ("volume", 2_000_123), ("conc", 2_000_000), ("cal", 20_300),
                    ("duration", 43_200), ("dose", 1)):
        assert parse_quantity(format_quantity(kind, v)) == (kind, v), (kind, v)


def test_time_of_day_parses_and_formats():
    assert parse_time_of_day("06:30") == 23_400
    assert parse_time_of_day("23:59:59") == 86_399
    assert format_time_of_day(23_400) == "06:30"
    assert format_time_of_day(86_399) == "23:59:59"
    for bad in ("24:00", "6", "06:60", "ab:cd", "06:30:00:00", ""):
        raises(ValueError, parse_time_of_day, bad)


def test_every_unit_symbol_parses_to_its_own_kind():
    for sym, kind, num, den, _a, _b in units.UNITS:
        k, v = parse_quantity("24" + sym)
        assert k == kind
        assert v == 24 * num // den


def test_docs_units_table_is_generated_from_the_module():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    f = open(here + "/../../docs/therapy.md")
    try:
        text = f.read()
    finally:
        f.close()
    assert units.units_markdown() in text
