#!/usr/bin/env python3
"""Largest difference between ONNX Runtime on `forecast --export-onnx`'s graph and `forecast` itself, over the
histories of `forecast --backtest K --format json` (the CI test does the same on untrained models).

    python3 benchmarks/onnx_check.py MODEL.safetensors [--forecast-bin .build/release/forecast] [--origins 100]
"""
import argparse, csv, json, os, subprocess, tempfile

import numpy as np
import onnxruntime as ort
from safetensors import safe_open


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--forecast-bin", default=".build/release/forecast")
    ap.add_argument("--origins", type=int, default=100)
    a = ap.parse_args()
    with safe_open(a.model, "np") as f:
        spec = json.loads(f.metadata()["model"])
    ours = json.loads(subprocess.run([a.forecast_bin, "--model", a.model, "--backtest", str(a.origins), "--format", "json"],
                                     check=True, capture_output=True, text=True).stdout)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        subprocess.run([a.forecast_bin, "--model", a.model, "--export-onnx", path], check=True, capture_output=True)
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        L = s.get_inputs()[0].shape[1]
        name = spec["series"].replace(" (built-in)", "")
        root = os.path.join(os.path.dirname(__file__), "..", "data")
        data = {"co2": os.path.join(root, "co2_weekly_mauna_loa.csv"), "sunspots": os.path.join(root, "sunspots_yearly.csv")}[name]
        rows = list(csv.DictReader(open(data)))
        cols = []
        for c in spec["columns"]:
            raw = [float(r[c]) if r[c] else np.nan for r in rows]
            t = np.arange(len(raw))
            known = ~np.isnan(raw)
            # Linear between neighbours, the nearest value at the edges, as CSVSeries fills gaps.
            cols.append(np.interp(t, t[known], np.array(raw)[known]))
        values = np.stack(cols, axis=1)
        x = np.array([values[r - L:r] for r in ours["origin_rows"]], dtype=np.float32)  # rows are 1-based
        got = s.run(["forecast"], {"history": x})[0].astype(np.float64)
    want = np.array(ours["forecasts"])
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-6)
    print(f"{name}: ONNX input history {list(x.shape)}, largest difference {np.abs(got - want).max():.3g} "
          f"(relative {rel.max():.3g}) over {len(want)} windows x {want.shape[1]} steps")


if __name__ == "__main__":
    main()
