#!/usr/bin/env python3
"""The README's plot: the last weeks of a series, the model's forecast after its end and the 80% and 95%
split-conformal intervals, all from `forecast --format json` (and the series' CSV for the history).

    python3 benchmarks/forecast_plot.py --forecast-bin .build/release/forecast --restore DIR \
        [--data co2] [--history 156] [--out benchmarks/results/forecast_co2.png]
"""
import argparse, csv, datetime as dt, json, os, subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forecast-bin", default=".build/release/forecast")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--restore")
    src.add_argument("--model")
    ap.add_argument("--data", default="co2")
    ap.add_argument("--history", type=int, default=156)
    ap.add_argument("--out", default="benchmarks/results/forecast_co2.png")
    a = ap.parse_args()
    source = ["--restore", a.restore] if a.restore else ["--model", a.model]
    out = json.loads(subprocess.run(
        [a.forecast_bin, *source, "--data", a.data, "--interval", "80,95", "--format", "json"],
        check=True, capture_output=True, text=True).stdout)
    root = os.path.join(os.path.dirname(__file__), "..", "data")
    path = {"co2": os.path.join(root, "co2_weekly_mauna_loa.csv"), "sunspots": os.path.join(root, "sunspots_yearly.csv")}.get(a.data, a.data)
    rows = list(csv.DictReader(open(path)))
    time_col, col = out["time_column"], out["column"]

    def when(s):
        try:
            return dt.date.fromisoformat(s)
        except ValueError:
            return float(s)

    hist = [(when(r[time_col]), float(r[col])) for r in rows[-a.history:] if r[col]]
    steps = out["forecast"]
    t = [when(s["time"]) for s in steps]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot([h[0] for h in hist], [h[1] for h in hist], color="black", lw=1, label=f"{col} (history)")
    ax.fill_between(t, [s["lo_95"] for s in steps], [s["hi_95"] for s in steps], color="tab:blue", alpha=0.2, label="95% interval")
    ax.fill_between(t, [s["lo_80"] for s in steps], [s["hi_80"] for s in steps], color="tab:blue", alpha=0.35, label="80% interval")
    ax.plot(t, [s["value"] for s in steps], color="tab:blue", lw=2, label="forecast")
    ax.set_title(f"{col}: the next {len(steps)} steps after {out['origin']['time']} "
                 f"(split-conformal, {out['calibration_windows']} held-out calibration windows)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
