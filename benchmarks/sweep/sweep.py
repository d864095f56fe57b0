"""Cost curves: examples/s of ours (`bench`) and TensorFlow's (`anchors/tf_bench.py single`) side by side,
varying one setting at a time from the anchor configuration (batch 32, window 24, horizon 12, hidden 64,
hidden2 64, Adam, one thread), plus each run's peak resident memory.

    python sweep.py --bench PATH/bench [--tf PYTHON] [--out DIR] [--scale F] [--only SETTING,...]

The workers setting runs clusters instead of one process: 1 ps-server and N workers (async, our
`ps-server` and `worker` beside `bench`; with and without `--prefetch`) against TensorFlow's
`tf_bench.py ps|worker` (async), each reporting the examples/s of all its workers together.
--only reruns some settings and keeps the other rows of an existing sweep.csv.

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
    "workers": [1, 2, 3, 4],
}

p = argparse.ArgumentParser()
p.add_argument("--bench", required=True, help="our bench executable")
p.add_argument("--tf", default="", help="a Python with TensorFlow (empty: ours only)")
p.add_argument("--out", default="benchmarks/results")
p.add_argument("--scale", type=float, default=1.0, help="multiplies every run's step count")
p.add_argument("--only", default="", help="comma-separated settings to run; other rows of an existing CSV are kept")
a = p.parse_args()
only = [x for x in a.only.split(",") if x]
for x in only:
    if x not in SETTINGS:
        raise SystemExit(f"sweep.py: --only {x}: not one of {', '.join(SETTINGS)}")
bindir = os.path.dirname(os.path.abspath(a.bench))
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


def free_ports(n):
    import socket
    socks = [socket.socket() for _ in range(n)]
    for x in socks:
        x.bind(("127.0.0.1", 0))
    ports = [x.getsockname()[1] for x in socks]
    for x in socks:
        x.close()
    return ports


def stop(procs):
    """Kills whatever of procs still runs (a failed run leaves nothing behind)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ours_cluster(n, steps, extra=()):
    """1 ps-server + n async workers of ours; the examples/s of all workers together."""
    import tempfile, re
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        ps = subprocess.Popen([os.path.join(bindir, "ps-server"), "--port", "0", "--port-file", port_file, "--mode", "async"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers = []
        try:
            for _ in range(100):
                if os.path.exists(port_file) and open(port_file).read().strip():
                    break
                time.sleep(0.1)
            port = open(port_file).read().strip()
            workers = [subprocess.Popen(
                [os.path.join(bindir, "worker"), "--ps", f"127.0.0.1:{port}", "--task-index", str(i), "--num-workers", str(n),
                 "--steps", str(steps), "--scaling", "relative", "--log-every", "1000000", *extra],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in range(n)]
            total = 0.0
            for w in workers:
                out, _ = w.communicate(timeout=600)
                m = re.search(r"^trained .*: ([0-9.]+) examples/s", out, re.M)
                if w.returncode != 0 or not m:
                    raise RuntimeError(f"a worker of {n} failed ({w.returncode}): {out[-300:]}")
                total += float(m.group(1))
            ps.wait(timeout=30)
            return total
        finally:
            stop([ps] + workers)


def tf_cluster(n, steps):
    """TensorFlow's 1 ps + n async workers (tf_bench.py); the examples/s of all workers together."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    ports = free_ports(n + 1)
    ps_addr = f"127.0.0.1:{ports[0]}"
    workers_addr = ",".join(f"127.0.0.1:{p}" for p in ports[1:])
    ps = subprocess.Popen([a.tf, "tf_cluster_bench.py", "ps", "--task", "0", "--ps", ps_addr, "--workers", workers_addr],
                          cwd=anchors, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers = []
    try:
        workers = [subprocess.Popen(
            [a.tf, "tf_cluster_bench.py", "worker", "--task", str(i), "--ps", ps_addr, "--workers", workers_addr,
             "--steps", str(steps), "--warmup", "20"],
            cwd=anchors, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True) for i in range(n)]
        total = 0.0
        for w in workers:
            out, _ = w.communicate(timeout=900)
            lines = [l for l in out.splitlines() if l.startswith("{")]
            if w.returncode != 0 or not lines:
                raise RuntimeError(f"a TensorFlow worker of {n} failed ({w.returncode}): {out[-300:]}")
            total += json.loads(lines[-1])["examples_per_s"]
        return total
    finally:
        stop([ps] + workers)


rows = []
if only and os.path.exists(os.path.join(a.out, "sweep.csv")):
    with open(os.path.join(a.out, "sweep.csv")) as f:
        for r in csv.DictReader(f):
            if r["setting"] in only:
                continue
            for k in list(r):
                try:
                    r[k] = float(r[k]) if "." in r[k] else int(r[k])
                except ValueError:
                    pass
            rows.append(r)
started = time.time()
for setting, values in SETTINGS.items():
    if only and setting not in only:
        continue
    for v in values:
        if setting == "workers":
            steps_ours = max(200, int(round(a.scale * 1500)))
            steps_tf = max(60, int(round(a.scale * 300)))
            ours = ours_cluster(v, steps_ours)
            ours_pf = ours_cluster(v, steps_ours, ["--prefetch"])
            row = dict(setting=setting, value=v, **ANCHOR, ours_steps=steps_ours, ours_examples_per_s=round(ours, 1),
                       ours_cpu_examples_per_s="", ours_peak_rss_mib="", tf_steps="", tf_examples_per_s="",
                       tf_peak_rss_mib="", ratio="", ours_prefetch_examples_per_s=round(ours_pf, 1))
            if a.tf:
                theirs = tf_cluster(v, steps_tf)
                row.update(tf_steps=steps_tf, tf_examples_per_s=round(theirs, 1), ratio=round(ours / theirs, 2))
            rows.append(row)
            print(f"workers={v}: ours {row['ours_examples_per_s']} ex/s in all ({row['ours_prefetch_examples_per_s']} with"
                  " --prefetch)" + (f", TF {row['tf_examples_per_s']} ex/s in all, {row['ratio']}x" if a.tf else ""),
                  flush=True)
            continue
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
    fields = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    w = csv.DictWriter(f, fieldnames=fields, restval="")
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
    if not pts:
        continue
    if setting == "workers":
        xs = [r["value"] for r in pts]
        one = pts[0]["ours_examples_per_s"]
        one_pf = pts[0]["ours_prefetch_examples_per_s"]
        line = (f"workers 1-{xs[-1]} (1 ps, async): ours in all ~ workers^{slope(xs, [r['ours_examples_per_s'] for r in pts]):.2f}"
                " (efficiency " + ", ".join(f"{r['value']}: {r['ours_examples_per_s'] / (r['value'] * one):.2f}" for r in pts)
                + f"; with --prefetch ~ workers^{slope(xs, [r['ours_prefetch_examples_per_s'] for r in pts]):.2f}, efficiency "
                + ", ".join(f"{r['value']}: {r['ours_prefetch_examples_per_s'] / (r['value'] * one_pf):.2f}" for r in pts) + ")")
        if a.tf:
            tf_one = pts[0]["tf_examples_per_s"]
            line += (f"; TensorFlow in all ~ workers^{slope(xs, [r['tf_examples_per_s'] for r in pts]):.2f} (efficiency "
                     + ", ".join(f"{r['value']}: {r['tf_examples_per_s'] / (r['value'] * tf_one):.2f}" for r in pts)
                     + f"); ratio {pts[0]['ratio']}x at 1 to {pts[-1]['ratio']}x at {xs[-1]}")
        summary.append(line)
        continue
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
summary.append(f"this run ({', '.join(only or SETTINGS)}) took {time.time() - started:.0f} s")
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
    if not pts:
        continue
    xs = [r["value"] for r in pts]
    fig, ax = plt.subplots(figsize=(6, 4))
    if setting == "workers":
        ax.plot(xs, [r["ours_examples_per_s"] for r in pts], "o-", label="ours (ps-server + workers)")
        ax.plot(xs, [r["ours_prefetch_examples_per_s"] for r in pts], "^-", label="ours, --prefetch")
        if a.tf:
            ax.plot(xs, [r["tf_examples_per_s"] for r in pts], "s-", label="TensorFlow (tf_bench.py ps/worker)")
            for r in pts:
                ax.annotate(f"{r['ratio']}x", (r["value"], r["ours_examples_per_s"]), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=8)
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("workers, with 1 parameter server, async, all on one 2-core machine")
        ax.set_ylabel("examples/s, all workers together")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        ax.set_title("Training throughput against workers")
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, f"sweep_{setting}.png"), dpi=110)
        plt.close(fig)
        continue
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
