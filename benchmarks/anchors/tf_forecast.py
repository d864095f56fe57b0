"""TensorFlow reads our model: loads a model file written by `worker --save` into the TF1 reference graph
(`tf_reference.build`, whose variable names are ours) and forecasts from the same histories as
`forecast --model FILE --backtest K --format json`, then prints the largest difference. Not run in CI.

usage (with the anchors' venv, see README.md here):
    python tf_forecast.py MODEL.safetensors --forecast-bin .build/release/forecast [--data co2] [--origins 100]

The histories are scaled in numpy exactly as `ForecastModel` does (ModelSpec in the file's metadata):
normalise with the training part's mean and std, then global / relative / seasonal inputs, and the level the
outputs are added to in series units.
"""
import argparse, json, os, subprocess, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np
import tensorflow as tf
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(__file__))
from tf_reference import build  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--forecast-bin", default=".build/release/forecast")
    p.add_argument("--data", default=None, help="as forecast's --data (default: the series trained on)")
    p.add_argument("--origins", type=int, default=100)
    a = p.parse_args()
    with safe_open(a.model, "np") as f:
        spec = json.loads(f.metadata()["model"])
    weights = load_file(a.model)
    cfg = spec["config"]
    T, H, D = cfg["window"], cfg["horizon"], cfg["inputDim"]
    args = [a.forecast_bin, "--model", a.model, "--backtest", str(a.origins), "--format", "json"]
    if a.data:
        args += ["--data", a.data]
    ours = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    # The same rows forecast reads: the CSV the built-in series are embedded from, gaps filled linearly and
    # the edges with the nearest value, as `CSVSeries` does.
    data = a.data or spec["series"].replace(" (built-in)", "")
    root = os.path.join(os.path.dirname(__file__), "..", "..", "data")
    path = {"co2": os.path.join(root, "co2_weekly_mauna_loa.csv"), "sunspots": os.path.join(root, "sunspots_yearly.csv")}.get(data, data)
    import pandas as pd
    frame = pd.read_csv(path)
    cols = spec["columns"]
    values = frame[cols].astype(float).interpolate().bfill().ffill().to_numpy()
    mean, std = np.array(spec["normalizer"]["mean"]), np.array(spec["normalizer"]["std"])
    scaling, P = spec["scaling"], spec.get("season") or 0
    L = T
    if scaling == "seasonal":
        S = (H + P - 1) // P * P
        L = max(T + P, S + 1)
    xs, levels = [], []
    for row in ours["origin_rows"]:
        e_abs = row - 1
        hist = values[e_abs - L + 1:e_abs + 1]
        z = (hist - mean) / std
        e = L - 1
        win = z[L - T:]
        if scaling == "global":
            x = win
        elif scaling == "relative":
            x = win - z[e]
        else:
            x = (win - z[L - T - P:L - P]) - (z[e] - z[e - P])
        xs.append(x)
        lv = []
        for h in range(1, H + 1):
            if scaling == "global":
                lv.append(mean[0])
            elif scaling == "relative":
                lv.append(hist[e, 0])
            else:
                back = (h + P - 1) // P * P
                lv.append(hist[e, 0] + hist[e + h - back, 0] - hist[e - back, 0])
        levels.append(lv)
    xs = np.array(xs, dtype=np.float32)
    g = tf.Graph()
    with g.as_default():
        c = {"batch": len(xs), "window": T, "horizon": H, "hidden": cfg["hidden"], "hidden2": cfg["hidden2"], "input_dim": D}
        x, _, pred, _, _ = build(c, tf.float32)
        with tf1.Session(graph=g) as s:
            for v in tf1.global_variables():
                s.run(v.assign(weights[v.op.name]))
            out = s.run(pred, {x: xs})
    tf_values = out.astype(np.float64) * std[0] + np.array(levels)
    mine = np.array(ours["forecasts"])
    diff = np.abs(tf_values - mine)
    rel = diff / np.maximum(np.abs(mine), 1e-6)
    print("row,step,ours,tensorflow")
    for i in range(min(3, len(mine))):
        for h in range(H):
            print(f"{ours['origin_rows'][i]},{h + 1},{mine[i, h]:.6f},{tf_values[i, h]:.6f}")
    print(f"largest difference over {len(mine)} origins x {H} steps: {diff.max():.3g} (relative {rel.max():.3g})")


if __name__ == "__main__":
    main()
