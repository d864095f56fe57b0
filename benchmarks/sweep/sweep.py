"""Cost curves: examples/s of ours (`bench`) and TensorFlow's (`anchors/tf_bench.py single`) side by side,
varying one setting at a time from the anchor configuration (batch 32, window 24, horizon 12, hidden 64,
hidden2 64, Adam, one thread), plus each run's peak resident memory.

    python sweep.py --bench PATH/bench [--tf PYTHON] [--out DIR] [--scale F]

Writes DIR/sweep.csv (one row per run) and DIR/sweep_<setting>.png (one plot per setting, if matplotlib
imports), and prints, per setting, the fitted growth of the time per step (a power law, the slope of
log time against log setting, by least squares) for each side and how the ratio moves.

Each point is one run per side, ours and TensorFlow's interleaved, after 10 (ours) and 20 (TensorFlow's
default) untimed warm-up steps; timed steps shrink as the step gets dearer (TensorFlow: 500 at the
anchor, at least 60) so the whole sweep takes minutes. On a shared machine single points are noisy: read the trends.
"""
import argparse, csv, json, math, os, subprocess, sys, time

ANCHOR = {"batch": 32, "window": 24, "horizon": 12, "hidden": 64, "hidden2": 64}
SETTINGS = {
    "window": [6, 12, 24, 48, 96],
    "horizon": [3, 6, 12, 24, 48],
    "hidden": [16, 32, 64, 128, 256],
    "batch": [8, 16, 32, 64, 128, 256],
}

p = argparse.ArgumentParser()
p.add_argument("--bench", required=True, help="our bench executable")
p.add_argument("--tf", default="", help="a Python with TensorFlow (empty: ours only)")
p.add_argument("--out", default="benchmarks/results")
p.add_argument("--scale", type=float, default=1.0, help="multiplies every run's step count")
a = p.parse_args()
anchors = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "anchors")
os.makedirs(a.out, exist_ok=True)


def relative_cost(cfg):
    """Work per step relative to the anchor: matrix products dominate, ~ batch * steps * hidden * (hidden + in)."""
    def work(c):
        return c["batch"] * (c["window"] * c["hidden"] * (c["hidden"] + 1)
                             + c["horizon"] * (c["hidden"] + c["hidden2"]) * (c["hidden"] + c["hidden2"] // 4))
    return work(cfg) / work(ANCHOR)


def run(cmd, cwd=None):
    """Runs cmd; returns (last JSON line, peak RSS in MiB) with the child's own rusage (wait4)."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {out[-300:]}")
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


rows = []
started = time.time()
for setting, values in SETTINGS.items():
    for v in values:
        cfg = dict(ANCHOR, **{setting: v})
        cost = relative_cost(cfg)
        steps_ours = max(30, int(round(a.scale * 300 / cost)))
        steps_tf = max(60, int(round(a.scale * 500 / cost)))
        flags = sum([[f"--{k}", str(cfg[k])] for k in ANCHOR], [])
        ours, ours_rss = run([a.bench, "--steps", str(steps_ours), "--warmup", "10"] + flags)
        row = dict(setting=setting, value=v, **cfg, ours_steps=steps_ours,
                   ours_examples_per_s=round(ours["examples_per_s"], 1),
                   ours_cpu_examples_per_s=round(ours.get("cpu_examples_per_s", float("nan")), 1),
                   ours_peak_rss_mib=round(ours_rss, 1), tf_steps="", tf_examples_per_s="", tf_peak_rss_mib="",
                   ratio="")
        if a.tf:
            # TensorFlow runs its first seconds much slower than the rest, warm-up steps or not (80 steps
            # after 20 or after 150 untimed ones: about 850-1,100 examples/s at the anchor; 500 steps:
            # 1,750 on the same machine minutes apart), so its runs are kept to several seconds each.
            theirs, tf_rss = run([a.tf, "tf_bench.py", "single", "--steps", str(steps_tf), "--warmup", "20"] + flags,
                                 cwd=anchors)
            row.update(tf_steps=steps_tf, tf_examples_per_s=round(theirs["examples_per_s"], 1),
                       tf_peak_rss_mib=round(tf_rss, 1),
                       ratio=round(ours["examples_per_s"] / theirs["examples_per_s"], 2))
        rows.append(row)
        print(f"{setting}={v}: ours {row['ours_examples_per_s']} ex/s ({row['ours_peak_rss_mib']} MiB)"
              + (f", TF {row['tf_examples_per_s']} ex/s ({row['tf_peak_rss_mib']} MiB), {row['ratio']}x"
                 if a.tf else ""), flush=True)

with open(os.path.join(a.out, "sweep.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)


def slope(xs, ys):
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / sum((x - mx) ** 2 for x in lx)


summary = []
for setting in SETTINGS:
    pts = [r for r in rows if r["setting"] == setting]
    xs = [r["value"] for r in pts]
    # Time per step = batch / (examples/s).
    ours_t = [r["batch"] / r["ours_examples_per_s"] for r in pts]
    line = f"{setting} {xs[0]}-{xs[-1]}: ours time/step ~ {setting}^{slope(xs, ours_t):.2f}"
    if a.tf:
        tf_t = [r["batch"] / r["tf_examples_per_s"] for r in pts]
        ratios = [r["ratio"] for r in pts]
        trend = slope(xs, ratios)
        line += (f", TensorFlow ~ {setting}^{slope(xs, tf_t):.2f}; ratio {ratios[0]}x at {xs[0]} to {ratios[-1]}x"
                 f" at {xs[-1]} (ratio ~ {setting}^{trend:+.2f}: our lead "
                 + ("grows" if trend > 0.05 else "shrinks" if trend < -0.05 else "holds") + f" as {setting} rises)")
    summary.append(line)
if a.tf:
    mem = [r for r in rows if r["setting"] == "hidden"]
    summary.append("peak RSS by hidden size (MiB, ours / TensorFlow): " + ", ".join(
        f"{r['value']}: {r['ours_peak_rss_mib']:.0f} / {r['tf_peak_rss_mib']:.0f}" for r in mem))
else:
    mem = [r for r in rows if r["setting"] == "hidden"]
    summary.append("peak RSS by hidden size (MiB, ours): " + ", ".join(
        f"{r['value']}: {r['ours_peak_rss_mib']:.0f}" for r in mem))
summary.append(f"sweep took {time.time() - started:.0f} s")
with open(os.path.join(a.out, "sweep_summary.txt"), "w") as f:
    f.write("\n".join(summary) + "\n")
print("\n".join(summary))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not importable by this Python: no plots", file=sys.stderr)
    raise SystemExit
for setting in SETTINGS:
    pts = [r for r in rows if r["setting"] == setting]
    xs = [r["value"] for r in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [r["ours_examples_per_s"] for r in pts], "o-", label="ours (bench)")
    if a.tf:
        ax.plot(xs, [r["tf_examples_per_s"] for r in pts], "s-", label="TensorFlow (tf_bench.py)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(setting + " (others at batch 32, window 24, horizon 12, hidden 64, hidden2 64)")
    ax.set_ylabel("examples/s, one process, one thread")
    if a.tf:
        for r in pts:
            ax.annotate(f"{r['ratio']}x", (r["value"], r["ours_examples_per_s"]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"Training throughput against {setting}")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, f"sweep_{setting}.png"), dpi=110)
    plt.close(fig)
print(f"wrote {a.out}/sweep.csv and sweep_*.png")
