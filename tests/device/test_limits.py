"""pump.limits: hard limits, their absolute ranges, and program/bolus checks."""
from pump.limits import HardLimits, LimitError, FieldError, check_program, check_bolus, LIMIT_FIELDS
from pump.therapy import Program, clinician_bolus, prime_bolus
from vmtest import raises

MOTOR_MAX = 144_000_000  # nL/h: 2000 steps/s at 0.02 uL/step
C500 = 500_000  # 500 mcg/mL in ng/mL


def cont(dose_mcg_day, conc=C500, demand=None):
    d = {"mode": "continuous", "conc_ng_ml": conc, "dose_ng_day": dose_mcg_day * 1000}
    if demand:
        d["demand"] = demand
    return Program.from_dict(d)


def test_default_limits_round_trip_through_a_plain_dict():
    lim = HardLimits()
    d = lim.to_dict()
    assert d == {"max_rate_nl_h": 100_000, "max_daily_dose_ng_day": 1_000_000,
                 "max_bolus_ng": 100_000, "min_lockout_s": 3600, "max_boluses_24h": 4,
                 "max_prime_nl": 500_000}
    assert HardLimits.from_dict(d, MOTOR_MAX) == lim


def test_limits_dict_rejects_unknown_missing_and_wrong_type_fields():
    d = HardLimits().to_dict()
    d["max_fun"] = 1
    e = raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX)
    assert "max_fun" in str(e) and "max_rate_nl_h" in str(e)
    d = HardLimits().to_dict()
    del d["max_bolus_ng"]
    assert "max_bolus_ng" in str(raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX))
    d = HardLimits().to_dict()
    d["max_bolus_ng"] = "100"
    raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX)
    d["max_bolus_ng"] = 1.5
    raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX)


def test_max_rate_limit_can_never_exceed_the_motor_maximum():
    d = HardLimits().to_dict()
    d["max_rate_nl_h"] = MOTOR_MAX + 1
    e = raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX)
    assert "max_rate_nl_h" in str(e) and "144000.0 uL/h" in str(e)
    d["max_rate_nl_h"] = MOTOR_MAX
    assert HardLimits.from_dict(d, MOTOR_MAX).max_rate == MOTOR_MAX


def test_every_limit_has_an_absolute_range_that_is_enforced():
    for name, key, kind, default, lo, hi in LIMIT_FIELDS:
        top = MOTOR_MAX if hi is None else hi
        d = HardLimits().to_dict()
        assert lo <= default <= top
        d[key] = top + 1
        raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX)
        if lo > 0:
            d[key] = lo - 1
            raises(FieldError, HardLimits.from_dict, d, MOTOR_MAX)


def test_daily_dose_over_limit_names_the_limit_value_range_and_remedy():
    lim = HardLimits()
    p = cont(1200)
    before = p.to_dict()
    e = raises(LimitError, check_program, p, lim, MOTOR_MAX)
    assert str(e) == ("daily dose 1200 mcg/day exceeds the hard limit max_daily_dose 1000 mcg/day "
                      "(allowed 0-1000 mcg/day); lower the dose or raise the limit with a "
                      "confirmed limits change")
    assert e.limit == "max_daily_dose" and e.value == 1_200_000 and e.hi == 1_000_000
    assert p.to_dict() == before and lim == HardLimits()


def test_limit_error_is_a_value_error():
    assert issubclass(LimitError, ValueError) and issubclass(FieldError, ValueError)


def test_program_at_the_limit_passes():
    assert check_program(cont(1000, conc=2_000_000), HardLimits(), MOTOR_MAX) is not None


def test_basal_rate_over_max_rate_is_rejected_in_ul_h():
    # 1000 mcg/day at 50 mcg/mL = 833.3 uL/h > 100 uL/h
    e = raises(LimitError, check_program, cont(1000, conc=50_000), HardLimits(), MOTOR_MAX)
    assert "max_rate" in str(e) and "100.0 uL/h" in str(e) and "833.333 uL/h" in str(e)


def test_volumetric_program_daily_dose_rounds_up_for_the_check():
    # 41667 nL/h * 24 = 1_000_008 nL/day at 1 mg/mL = 1000.008 mcg/day > 1000
    p = Program.from_dict({"mode": "continuous", "conc_ng_ml": 1_000_000, "rate_nl_h": 41_667})
    lim = HardLimits(max_rate=MOTOR_MAX)
    e = raises(LimitError, check_program, p, lim, MOTOR_MAX)
    assert "max_daily_dose" in str(e)
    p = Program.from_dict({"mode": "continuous", "conc_ng_ml": 1_000_000, "rate_nl_h": 41_666})
    check_program(p, lim, MOTOR_MAX)


def test_flex_daily_dose_is_the_integral_of_the_day():
    # 12 h at 1200 mcg/day + 12 h at 600 mcg/day = 900 mcg in the day: allowed
    p = Program.from_dict({"mode": "flex", "conc_ng_ml": 2_000_000,
                           "dose_steps": [[0, 1_200_000], [43_200, 600_000]]})
    lim = HardLimits(max_daily_dose=1_000_000, max_rate=MOTOR_MAX)
    check_program(p, lim, MOTOR_MAX)
    lim.max_daily_dose = 899_999
    assert "max_daily_dose" in str(raises(LimitError, check_program, p, lim, MOTOR_MAX))


def test_titration_is_checked_at_its_ceiling():
    p = Program.from_dict({"mode": "titration", "conc_ng_ml": 2_000_000, "start_ng_day": 100_000,
                           "step_ng_day": 50_000, "every_s": 43_200, "target_ng_day": 1_100_000})
    e = raises(LimitError, check_program, p, HardLimits(), MOTOR_MAX)
    assert "1100 mcg/day" in str(e)


def test_demand_settings_are_checked_against_every_bolus_limit():
    dm = {"dose_ng": 50_000, "duration_s": 600, "lockout_s": 7200, "max_24h": 4}
    lim = HardLimits()
    check_program(cont(500, demand=dm), lim, MOTOR_MAX)
    bad = dict(dm)
    bad["dose_ng"] = 150_000
    assert "max_bolus" in str(raises(LimitError, check_program, cont(500, demand=bad), lim, MOTOR_MAX))
    bad = dict(dm)
    bad["max_24h"] = 5
    assert "max_boluses_24h" in str(raises(LimitError, check_program, cont(500, demand=bad), lim,
                                           MOTOR_MAX))
    bad = dict(dm)
    bad["lockout_s"] = 1800
    e = raises(LimitError, check_program, cont(500, demand=bad), lim, MOTOR_MAX)
    assert "min_lockout" in str(e) and "30 min" in str(e) and "1 h" in str(e)


def test_worst_case_day_counts_every_allowed_demand_bolus():
    dm = {"dose_ng": 100_000, "duration_s": 600, "lockout_s": 7200, "max_24h": 4}
    e = raises(LimitError, check_program, cont(700, demand=dm), HardLimits(), MOTOR_MAX)
    assert "worst-case daily dose" in str(e) and "1100 mcg/day" in str(e)
    check_program(cont(600, demand=dm), HardLimits(), MOTOR_MAX)


def test_clinician_bolus_over_max_bolus_is_rejected_and_unchanged():
    b = clinician_bolus(C500, 60, dose_ng=150_000)
    before = b.to_dict()
    e = raises(LimitError, check_bolus, b, HardLimits(), MOTOR_MAX)
    assert "max_bolus" in str(e) and "150 mcg" in str(e) and "0-100 mcg" in str(e)
    assert b.to_dict() == before
    check_bolus(clinician_bolus(C500, 60, dose_ng=100_000), HardLimits(), MOTOR_MAX)


def test_bolus_with_the_days_dose_already_given_may_not_pass_the_daily_limit():
    b = clinician_bolus(C500, 60, dose_ng=50_000)
    check_bolus(b, HardLimits(), MOTOR_MAX, dose_24h_ng=950_000)
    e = raises(LimitError, check_bolus, b, HardLimits(), MOTOR_MAX, 0, 950_001)
    assert "max_daily_dose" in str(e)


def test_prime_is_capped_by_volume_not_dose():
    lim = HardLimits(max_bolus=1)  # would block any dose bolus
    check_bolus(prime_bolus(500_000, 300, C500), lim, MOTOR_MAX)
    e = raises(LimitError, check_bolus, prime_bolus(500_001, 300, C500), lim, MOTOR_MAX)
    assert "max_prime" in str(e) and "0.500001 mL" in str(e)


def test_bolus_rate_plus_basal_may_not_exceed_the_motor():
    b = clinician_bolus(50_000, 60, dose_ng=100_000)  # 2 mL in 60 s = 120 mL/h
    check_bolus(b, HardLimits(), MOTOR_MAX, basal_nl_h=0)
    e = raises(LimitError, check_bolus, b, HardLimits(), MOTOR_MAX, 30_000_000)
    assert "motor_max" in str(e) and "lengthen" in str(e)
