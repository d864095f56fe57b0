#!/usr/bin/env python3
"""Writes a stationary monthly series in the manner of a sea-surface temperature record: a yearly cycle
(with a half-year harmonic), ENSO-like AR(1) anomalies and measurement noise, and no trend.

python stationary.py OUT.csv [--months 1800] [--seed 0]     (column: sst)
"""
import argparse, math, random
p = argparse.ArgumentParser(); p.add_argument("out"); p.add_argument("--months", type=int, default=1800)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
rng = random.Random(a.seed)
anomaly = 0.0
with open(a.out, "w") as f:
    f.write("month,sst\n")
    for t in range(a.months):
        anomaly = 0.8 * anomaly + rng.gauss(0, 0.45)
        season = 1.2 * math.sin(2 * math.pi * t / 12) + 0.3 * math.cos(2 * math.pi * t / 6)
        f.write(f"{t},{20 + season + anomaly + rng.gauss(0, 0.2):.3f}\n")
