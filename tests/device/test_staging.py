"""pump.staging: two-step changes (stage, confirm), ids, expiry, replacement, summaries."""
from pump.staging import Stager, StagingError, crc16, canonical, format_summary
from pump.limits import HardLimits, LimitError, FieldError
from pump.therapy import Program, Bolus
from vmtest import raises

T0 = 800_000_000
MOTOR_MAX = 144_000_000
C500 = 500_000
C2000 = 2_000_000


class Ctx:
    def __init__(self, program=None, limits=None, dead_volume_nl=0):
        self.program = program or Program.from_dict(prog(300_000))
        self.limits = limits or HardLimits()
        self.motor_max_nl_h = MOTOR_MAX
        self.dead_volume_nl = dead_volume_nl


def prog(dose, conc=C500):
    return {"mode": "continuous", "conc_ng_ml": conc, "dose_ng_day": dose}


def test_crc16_is_the_ccitt_false_check_value():
    assert crc16(b"123456789") == 0x29B1


def test_canonical_form_ignores_dict_order():
    assert canonical({"b": 1, "a": [True, None, "x"]}) == canonical({"a": [True, None, "x"], "b": 1})
    assert canonical({"a": [True, None, "x"]}) == '{"a":[true,null,"x"]}'


def test_staged_program_is_not_applied_until_confirmed():
    ctx = Ctx()
    before = ctx.program.to_dict()
    st = Stager(ctx)
    cid = st.stage("program", prog(400_000), T0)
    assert len(cid) == 6 and int(cid, 16) >= 0
    assert ctx.program.to_dict() == before
    assert st.pending(T0 + 10).kind == "program"
    ch = st.confirm(cid, T0 + 10)
    assert ch.kind == "program" and ch.obj.daily_dose() == 400_000 and ch.obj.start_s == T0 + 10
    assert ctx.program.to_dict() == before  # the caller applies it
    assert st.pending(T0 + 11) is None


def test_wrong_id_is_rejected_and_the_staged_change_stays():
    st = Stager(Ctx())
    cid = st.stage("program", prog(400_000), T0)
    wrong = "%06x" % ((int(cid, 16) + 1) % 0x1000000)
    e = raises(StagingError, st.confirm, wrong, T0 + 5)
    assert "does not name the staged change" in str(e)
    assert st.pending(T0 + 5).id == cid
    assert st.confirm(cid, T0 + 6).obj.daily_dose() == 400_000


def test_unconfirmed_change_expires_after_120_s():
    st = Stager(Ctx())
    cid = st.stage("program", prog(400_000), T0)
    e = raises(StagingError, st.confirm, cid, T0 + 120)
    assert "expired" in str(e) and "120 s" in str(e)
    e = raises(StagingError, st.confirm, cid, T0 + 121)
    assert "no change is staged" in str(e)


def test_expiry_is_configurable_and_a_clock_going_back_expires_too():
    st = Stager(Ctx(), ttl_s=30)
    cid = st.stage("program", prog(400_000), T0)
    assert st.pending(T0 + 29) is not None
    assert st.pending(T0 + 30) is None
    cid = st.stage("program", prog(400_000), T0)
    raises(StagingError, st.confirm, cid, T0 - 1)


def test_staging_a_new_change_replaces_the_old_one():
    st = Stager(Ctx())
    first = st.stage("program", prog(400_000), T0)
    second = st.stage("program", prog(500_000), T0 + 1)
    assert first != second
    raises(StagingError, st.confirm, first, T0 + 2)
    assert st.confirm(second, T0 + 3).obj.daily_dose() == 500_000


def test_same_payload_staged_twice_gets_a_new_id():
    st = Stager(Ctx())
    a = st.stage("program", prog(400_000), T0)
    b = st.stage("program", prog(400_000), T0)
    assert a != b and a[2:] == b[2:]  # counter differs, payload CRC the same
    raises(StagingError, st.confirm, a, T0)


def test_invalid_or_over_limit_change_is_rejected_and_keeps_the_staged_one():
    st = Stager(Ctx())
    cid = st.stage("program", prog(400_000), T0)
    e = raises(LimitError, st.stage, "program", prog(1_200_000), T0 + 1)
    assert "max_daily_dose" in str(e)
    raises(FieldError, st.stage, "program", {"mode": "flex"}, T0 + 1)
    raises(FieldError, st.stage, "firmware", {}, T0 + 1)
    assert st.pending(T0 + 2).id == cid


def test_confirm_with_nothing_staged_is_rejected():
    e = raises(StagingError, Stager(Ctx()).confirm, "abcdef", T0)
    assert "no change is staged" in str(e)


def test_limits_change_must_still_fit_the_current_program():
    ctx = Ctx(Program.from_dict(prog(800_000, C2000)))
    st = Stager(ctx)
    d = HardLimits().to_dict()
    d["max_daily_dose_ng_day"] = 700_000
    e = raises(LimitError, st.stage, "limits", d, T0)
    assert "current program" in str(e) and "max_daily_dose" in str(e)
    d["max_daily_dose_ng_day"] = 900_000
    cid = st.stage("limits", d, T0)
    ch = st.confirm(cid, T0 + 1)
    assert isinstance(ch.obj, HardLimits) and ch.obj.max_daily_dose == 900_000
    assert ctx.limits.max_daily_dose == 1_000_000


def test_confirm_revalidates_against_the_limits_in_force_then():
    ctx = Ctx()
    st = Stager(ctx)
    cid = st.stage("program", prog(900_000, C2000), T0)
    ctx.limits = HardLimits(max_daily_dose=800_000)
    raises(LimitError, st.confirm, cid, T0 + 1)
    assert st.pending(T0 + 1) is None


def test_clinician_bolus_is_staged_and_started_at_confirm():
    st = Stager(Ctx())
    cid = st.stage("bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 60}, T0)
    e = raises(StagingError, st.confirm, cid, T0 + 5, "high-priority alarm: occlusion")
    assert "occlusion" in str(e)
    ch = st.confirm(cid, T0 + 6)
    assert isinstance(ch.obj, Bolus) and ch.obj.start_s == T0 + 6 and ch.obj.volume_nl == 100_000


def test_bolus_requests_are_validated_and_limit_checked():
    st = Stager(Ctx())
    raises(LimitError, st.stage, "bolus", {"kind": "clinician", "dose_ng": 150_000, "duration_s": 60}, T0)
    raises(FieldError, st.stage, "bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 30}, T0)
    raises(FieldError, st.stage, "bolus", {"kind": "clinician", "dose_ng": 50_000}, T0)
    raises(FieldError, st.stage, "bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 60,
                                           "conc_ng_ml": C2000}, T0)
    raises(FieldError, st.stage, "bolus", {"kind": "demand"}, T0)
    raises(LimitError, st.stage, "bolus", {"kind": "prime", "volume_nl": 600_000, "duration_s": 600}, T0)
    st.stage("bolus", {"kind": "prime", "volume_nl": 300_000, "duration_s": 600}, T0)


def test_screening_bolus_without_a_program_names_its_concentration():
    st = Stager(Ctx(Program.stopped()))
    raises(FieldError, st.stage, "bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 60}, T0)
    cid = st.stage("bolus", {"kind": "clinician", "dose_ng": 50_000, "duration_s": 60,
                             "conc_ng_ml": C500}, T0)
    assert st.confirm(cid, T0).obj.volume_nl == 100_000


def test_summary_shows_old_and_new_side_by_side():
    st = Stager(Ctx(dead_volume_nl=200_000))
    assert st.summary() is None
    st.stage("program", prog(300_000, C2000), T0)
    s = st.summary()
    assert s["old"]["dose_ng_day"] == 300_000 and s["new"]["dose_ng_day"] == 300_000
    assert s["old"]["volume_nl_day"] == 600_000 and s["new"]["volume_nl_day"] == 150_000
    assert s["old"]["text"]["volume"] == "0.600 mL/day"
    assert s["new"]["text"]["volume"] == "0.150 mL/day"
    assert s["new"]["text"]["rate"] == "6.25 uL/h" and s["new"]["text"]["dose"] == "300 mcg/day"
    assert s["bridge"]["duration_s"] == 8 * 3600
    lines = format_summary(s)
    assert "volume: 0.600 mL/day -> 0.150 mL/day" in lines
    assert any(l.startswith("bridge: 0.200 mL") for l in lines)


def test_limits_summary_lists_each_limit_in_user_units():
    st = Stager(Ctx())
    d = HardLimits().to_dict()
    d["max_bolus_ng"] = 75_000
    st.stage("limits", d, T0)
    s = st.summary()
    assert s["old"]["text"]["max_bolus"] == "100 mcg" and s["new"]["text"]["max_bolus"] == "75 mcg"
    assert "max_bolus: 100 mcg -> 75 mcg" in format_summary(s)
