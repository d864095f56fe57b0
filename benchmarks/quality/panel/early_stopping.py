#!/usr/bin/env python3
"""What each part of early stopping gains (issue 20): the held-out MSE over naive's of `worker` with defaults
against the same run with one part taken away, seed 0, on a few panel series. The scaling choice is the same
in every variant (the trials do not depend on early stopping, and a seed makes training deterministic).

python3 early_stopping.py --bin .build/release [--steps 1500] [--series ausbeer,h02,...] [--jobs 2]

Variants: defaults (patience steps/4, not before steps/2, judged on a moving average of the weights);
before (patience 1000 steps, no minimum, raw weights: the rule before issue 20); proportional only (raw
weights); average only (patience 1000, no minimum); off (--patience 0, every step trained).
"""
import argparse, concurrent.futures as cf, os, re, subprocess

here = os.path.dirname(os.path.abspath(__file__))
VARIANTS = {
    "defaults": [],
    "before": ["--patience", "1000", "--min-steps", "0", "--average-decay", "0"],
    "proportional only": ["--average-decay", "0"],
    "average only": ["--patience", "1000", "--min-steps", "0"],
    "off": ["--patience", "0"],
}

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=os.path.join(here, "..", "..", "..", ".build", "release"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--series", default="qcement,h02,departures,sunspot_month")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    import json
    meta = {m["name"]: m for m in json.load(open(os.path.join(here, "series.json")))}
    jobs = [(s, v) for s in a.series.split(",") for v in VARIANTS]
    def run(job):
        s, v = job
        m = meta[s]
        cmd = [os.path.join(a.bin, "worker"), "--data", os.path.join(here, m["file"]), "--column", m["column"],
               "--steps", str(a.steps), "--seed", "0", "--horizon", str(m["horizon"]), "--log-every", str(a.steps)] + VARIANTS[v]
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        ratio = float(re.search(r"^held-out MSE .*ratio ([0-9.]+|inf|nan) over", out, re.M).group(1))
        kept = re.search(r"^validation: best MSE \S+ at step (\d+)", out, re.M)
        trained = re.search(r"^trained (\d+) steps", out, re.M)
        return s, v, ratio, kept.group(1) if kept else "-", trained.group(1) if trained else "-"
    results = {}
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for s, v, r, kept, trained in ex.map(run, jobs):
            results[(s, v)] = (r, kept, trained)
            print(f"{s:14s} {v:18s} MSE/naive {r:.3f}  kept step {kept}, trained {trained}", flush=True)
    import math
    print("\n| series | " + " | ".join(VARIANTS) + " |\n| --- |" + " --- |" * len(VARIANTS))
    for s in a.series.split(","):
        print(f"| {s} | " + " | ".join(f"{results[(s, v)][0]:.3f} (kept {results[(s, v)][1]})" for v in VARIANTS) + " |")
    g = {v: math.exp(sum(math.log(results[(s, v)][0]) for s in a.series.split(",")) / len(a.series.split(","))) for v in VARIANTS}
    print("| geometric mean | " + " | ".join(f"{g[v]:.3f}" for v in VARIANTS) + " |")

if __name__ == "__main__":
    main()
