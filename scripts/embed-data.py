#!/usr/bin/env python3
"""Regenerates Sources/Datasets/EmbeddedSeries.swift from data/*.csv, so the binaries carry the data sets."""
import os
os.chdir(os.path.join(os.path.dirname(__file__), ".."))
out = ['// Generated from data/*.csv by scripts/embed-data.py; do not edit by hand.', '', 'enum EmbeddedSeries {']
for name, fn in (("co2", "co2_weekly_mauna_loa.csv"), ("sunspots", "sunspots_yearly.csv")):
    text = open(f"data/{fn}").read()
    out.append(f'    static let {name} = #"""')
    out.append(text.rstrip("\n"))
    out.append('"""#')
out.append('}')
open("Sources/Datasets/EmbeddedSeries.swift", "w").write("\n".join(out) + "\n")
