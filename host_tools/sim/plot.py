"""A scenario report as one PNG: volumes, rate, line pressure, alarms, on a shared time axis."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PRIORITY_COLOURS = {"HIGH": "#d62728", "MEDIUM": "#ff7f0e", "LOW": "#bcbd22"}


def _span(report):
    """x axis unit: hours for runs up to 2 days, else days."""
    total = report["summary"]["duration_s"]
    return (3600.0, "hours") if total <= 2 * 86400 else (86400.0, "days")


def plot(report, path):
    tr = report["trace"]
    div, unit = _span(report)
    x = [t / div for t in tr["t_s"]]
    end = report["summary"]["duration_s"] / div
    fig, axes = plt.subplots(4, 1, figsize=(11, 9.5), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.6, 2.2, 1.4]})
    av, ar, ap, aa = axes
    fig.suptitle(report["scenario"], fontsize=13, fontweight="bold")
    s = report["summary"]
    fig.text(0.5, 0.945, "counted %.3f mL, displaced %.3f mL, reached the patient %.3f mL; peak line pressure "
             "%.0f kPa; final state %s" % (s["commanded_nl"] / 1e6, s["pumped_nl"] / 1e6, s["delivered_nl"] / 1e6,
                                          s["peak_pressure_kpa"], s["final_state"]), ha="center", fontsize=9)

    ml = lambda key: [v / 1e6 for v in tr[key]]  # noqa: E731
    av.plot(x, ml("programmed_nl"), color="#999999", lw=3, alpha=0.6, label="programmed (firmware target)")
    av.plot(x, ml("commanded_nl"), color="#1f77b4", lw=1.5, label="commanded (counted steps)")
    av.plot(x, ml("pumped_nl"), color="#2ca02c", lw=1.2, ls="--", label="displaced by the pump head")
    av.plot(x, ml("delivered_nl"), color="#9467bd", lw=1.2, label="reached the patient")
    if any(tr["leaked_nl"]):
        av.plot(x, ml("leaked_nl"), color="#8c564b", lw=1, label="leaked")
    av.set_ylabel("volume (mL)")
    av.legend(loc="upper left", fontsize=8, framealpha=0.9)
    res = [None if v is None else v / 1e6 for v in tr["reservoir_fw_nl"]]
    av2 = av.twinx()
    av2.plot(x, res, color="#17becf", lw=1, alpha=0.8, label="reservoir, firmware's count")
    av2.plot(x, ml("reservoir_true_nl"), color="#17becf", lw=1, ls=":", label="reservoir, true")
    av2.set_ylabel("reservoir (mL)", color="#17becf")
    av2.set_ylim(bottom=0)
    av2.legend(loc="lower right", fontsize=8, framealpha=0.9)

    rates = [r / 1000 if r else float("nan") for r in tr["rate_nl_h"]]  # gaps: motor stopped
    ar.step(x, rates, where="post", color="#1f77b4", lw=1.2)
    ar.set_ylabel("rate (uL/h)\nlog scale")
    ar.set_yscale("log")
    top = max([r for r in rates if r == r] or [10.0])
    ar.set_ylim(min([r for r in rates if r == r] or [1.0]) / 2, top * 2)

    ap.plot(x, tr["sensor_kpa"], color="#ff9896", lw=0.8, label="sensor reading (0-200 kPa, 12-bit ADC)")
    ap.plot(x, tr["pressure_kpa"], color="#d62728", lw=1.3, label="true line pressure")
    ap.axhline(100, color="k", ls="--", lw=0.8)
    ap.text(0, 100, " 100 kPa", va="bottom", fontsize=8)
    ap.set_ylabel("pressure (kPa)")
    ap.legend(loc="upper center", fontsize=8, framealpha=0.9)

    names = []
    for a in report["alarms"]:
        if a["raised_s"] == 0 and a["cleared_s"] == 0:
            continue  # a new pump's setup transient
        if a["alarm"] not in names:
            names.append(a["alarm"])
    for a in report["alarms"]:
        if a["alarm"] not in names:
            continue
        y = names.index(a["alarm"])
        t0 = a["raised_s"] / div
        t1 = (a["cleared_s"] / div) if a["cleared_s"] is not None else end
        aa.barh(y, max(t1 - t0, end / 400), left=t0, height=0.6, color=PRIORITY_COLOURS.get(a["priority"], "grey"))
    aa.set_yticks(range(len(names)))
    aa.set_yticklabels([n.replace("_", " ").lower() for n in names], fontsize=8)
    aa.set_ylim(-0.7, max(len(names), 1) - 0.3)
    aa.set_ylabel("alarms")
    aa.invert_yaxis()
    aa.set_xlabel("time (%s)" % unit)
    aa.set_xlim(0, end)

    for e in report["events"]:
        if e["t_ms"] == 0 or e["do"] in ("set_clock", "acknowledge", "note"):
            continue
        t = e["t_ms"] / 1000 / div
        for ax in axes:
            ax.axvline(t, color="#555555", lw=0.7, ls=":")
        from sim.scenario import event_label

        label = event_label(e)
        label = label if len(label) <= 30 else label[:29] + "\u2026"
        if not e["ok"]:
            label += " (refused)"
        ap.annotate(label, (t, 0.97), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                    va="top", ha="right", color="#333333")
    for ax in axes:
        ax.grid(alpha=0.25)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
