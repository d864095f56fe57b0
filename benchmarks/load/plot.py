#!/usr/bin/env python3
"""Plots and a markdown summary of a ps-load grid (benchmarks/load/grid.sh).

    python3 benchmarks/load/plot.py benchmarks/results/ps-load.csv benchmarks/results/ps-load-bandwidth.csv \
        --out benchmarks/results

Writes ps-load.png (throughput, CPU per update, latency, where the cores went, against N workers),
ps-load-servers.png (P servers) and ps-load-summary.md (the tables the README quotes).
"""
import argparse
import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEM = "ps-load"
NAMES = {"4": "280 (tiny)", "64": "58k", "256": "1M (0.92M)", "1024": "15M (14.7M)"}


def num(row, key):
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return float("nan")


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def one_server(rows):
    """Points with one server and whole variables, by (mode, hidden), sorted by N."""
    series = defaultdict(list)
    for r in rows:
        if r["servers"] == "1" and r["parts"] == "1":
            series[(r["mode"], r["hidden"], r.get("label", ""))].append(r)
    for k in series:
        series[k].sort(key=lambda r: int(r["workers"]))
    return series


def plot_workers(rows, out):
    series = one_server(rows)
    fig, ax = plt.subplots(2, 2, figsize=(12, 9))
    for i, ((mode, hidden, tag), rs) in enumerate(sorted(series.items(), key=lambda kv: (kv[0][0], int(kv[0][1]), kv[0][2]))):
        color = f"C{i}"
        n = [int(r["workers"]) for r in rs]
        label = f"{mode} {NAMES.get(hidden, hidden)}" + (f" ({tag})" if tag else "")
        marker = "o" if mode == "async" else "s"
        ax[0][0].plot(n, [num(r, "updates_per_s") for r in rs], "-" + marker, color=color,
                      label=label + (" averaged steps" if mode == "sync" else ""))
        if mode == "sync":
            ax[0][0].plot(n, [num(r, "pushes_per_s") for r in rs], ":" + marker, color=color, label=label + " pushes")
            ax[0][1].plot(n, [num(r, "cpu_ms_per_push") for r in rs], ":" + marker, color=color, label=label + " per push")
        ax[0][1].plot(n, [num(r, "cpu_ms_per_update") for r in rs], "-" + marker, color=color,
                      label=label + (" per averaged step" if mode == "sync" else ""))
        ax[1][0].plot(n, [num(r, "push_p50_ms") for r in rs], "-" + marker, color=color, label=label + " p50")
        ax[1][0].plot(n, [num(r, "push_p99_ms") for r in rs], ":" + marker, color=color, alpha=0.6, label=label + " p99")
    for a in ax.flat[:3]:
        a.set_xscale("log", base=2)
        a.set_xlabel("simulated workers N (1 server)")
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=7)
    ax[0][0].set_yscale("log")
    ax[0][0].set_ylabel("updates/s applied by the server")
    ax[0][0].set_title("throughput")
    ax[0][1].set_yscale("log")
    ax[0][1].set_ylabel("server CPU (user+system) per update, ms")
    ax[0][1].set_title("server CPU per update")
    ax[1][0].set_yscale("log")
    ax[1][0].set_ylabel("push → acknowledgement, ms")
    ax[1][0].set_title("latency (applied in async, queued in sync)")

    # Where the two cores went, per async point.
    a = ax[1][1]
    labels, server, client, other = [], [], [], []
    for (mode, hidden, tag), rs in sorted(series.items(), key=lambda kv: (kv[0][0], int(kv[0][1]), kv[0][2])):
        for r in rs:
            labels.append(f"{mode[0]} {NAMES.get(hidden, hidden).split()[0]}{'*' if tag else ''} N={r['workers']}")
            server.append(num(r, "cpu_util"))
            client.append(num(r, "client_cpu_util") )
            other.append(num(r, "other_cpu_util") * num(r, "cores"))
    x = range(len(labels))
    a.bar(x, server, label="ps-server")
    a.bar(x, client, bottom=server, label="ps-load (workers + ZeroMQ)")
    a.bar(x, other, bottom=[s + c for s, c in zip(server, client)], label="other processes")
    cores = max((num(r, "cores") for r in rows), default=2)
    a.axhline(cores, color="k", lw=1)
    a.text(0, cores * 1.01, f"{int(cores)} cores", fontsize=8)
    a.set_xticks(list(x))
    a.set_xticklabels(labels, rotation=90, fontsize=6)
    a.set_ylabel("cores busy during the window")
    a.set_title("where the cores went")
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{STEM}.png"), dpi=110)


def by_point(rows):
    """Rows grouped by point: (mode, hidden, parts, servers, workers) -> rows of its servers."""
    points = defaultdict(list)
    for r in rows:
        if r.get("label", ""):
            continue
        points[(r["mode"], r["hidden"], r["parts"], r["servers"], r["workers"])].append(r)
    return points


def server_series(rows):
    """The 1M async points by (placement, N): P = 1 (the one-server point) and the multi-server ones."""
    series = defaultdict(list)
    for (mode, hidden, parts, servers, workers), rs in by_point(rows).items():
        if mode != "async" or hidden != "256" or workers not in ("16", "64"):
            continue
        kinds = ["partitioned", "whole"] if servers == "1" else (["partitioned"] if parts != "1" else ["whole"])
        for kind in kinds:
            series[(kind, workers)].append((int(servers), rs))
    for k in series:
        series[k].sort(key=lambda p: p[0])
    return {k: v for k, v in series.items() if len(v) > 1}


def plot_servers(rows, out):
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    for (kind, workers), pts in sorted(server_series(rows).items()):
        label = f"{kind}, N={workers}"
        xs = [p for p, _ in pts]
        ax[0].plot(xs, [num(rs[0], "pushes_per_s") for _, rs in pts], "-o", label=label)
        ax[1].plot(xs, [max(num(r, "server_parameters") for r in rs) / sum(num(r, "server_parameters") for r in rs) for _, rs in pts], "-o", label=label)
        ax[2].plot(xs, [sum(num(r, "cpu_ms_per_update") for r in rs) for _, rs in pts], "-o", label=label)
    ax[0].set_xlabel("servers P")
    ax[0].set_ylabel("job steps/s (each step pushes to every server)")
    ax[0].set_title("1M model, async: capacity with servers (2 cores)")
    ax[1].set_xlabel("servers P")
    ax[1].set_ylabel("busiest server's share of the parameters")
    ax[1].set_title("balance")
    ax[2].set_xlabel("servers P")
    ax[2].set_ylabel("server CPU per job step, all servers, ms")
    ax[2].set_title("what splitting costs in all")
    for a in ax:
        a.set_xticks([1, 2, 4])
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{STEM}-servers.png"), dpi=110)


def summary(rows, bandwidth, out):
    lines = []
    if bandwidth:
        lines.append("| threads | copy GB/s | triad GB/s | Adam parameter updates/s at triad |")
        lines.append("| --- | --- | --- | --- |")
        for b in bandwidth:
            lines.append(f"| {b['threads']} | {float(b['copy_bytes_per_s'])/1e9:.2f} | {float(b['triad_bytes_per_s'])/1e9:.2f} | {float(b['adam_parameter_updates_per_s'])/1e6:.0f} M |")
        lines.append("")
    lines.append("| mode | model | N | updates/s | pushes/s | gradient MB/s | server CPU per update (ms) | per push (ms) | push p50 / p99 (ms) | server cores busy | ps-load cores | others' cores | RSS / peak MB | Adam bytes / triad | kernel share of server CPU | page faults per update |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (mode, hidden, tag), rs in sorted(one_server(rows).items()):
        for r in rs:
            lines.append(
                f"| {mode} | {NAMES.get(hidden, hidden)}{' (' + tag + ')' if tag else ''} | {r['workers']} | {num(r,'updates_per_s'):,.0f} | {num(r,'pushes_per_s'):,.0f} | "
                f"{num(r,'grad_bytes_per_s')/1e6:,.0f} | {num(r,'cpu_ms_per_update'):.3f} | {num(r,'cpu_ms_per_push'):.3f} | "
                f"{num(r,'push_p50_ms'):.2f} / {num(r,'push_p99_ms'):.2f} | {num(r,'cpu_util'):.2f} | {num(r,'client_cpu_util'):.2f} | "
                f"{num(r,'other_cpu_util')*num(r,'cores'):.2f} | {num(r,'rss_mb'):.0f} / {num(r,'hwm_mb'):.0f} | {num(r,'apply_fraction'):.3f} | "
                f"{num(r,'cpu_sys_share'):.2f} | {num(r,'faults_per_update'):,.0f} |")
    lines.append("")
    lines.append("| placement | N | servers P | job steps/s | per server: parameters | CPU per update (ms) | cores busy | push p99 (ms) |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (kind, workers), pts in sorted(server_series(rows).items()):
        for servers, rs in pts:
            lines.append(
                f"| {kind} | {workers} | {servers} | {num(rs[0],'pushes_per_s'):,.0f} | "
                + " / ".join(f"{int(num(r,'server_parameters')):,}" for r in rs) + " | "
                + " / ".join(f"{num(r,'cpu_ms_per_update'):.3f}" for r in rs) + " | "
                + " / ".join(f"{num(r,'cpu_util'):.2f}" for r in rs) + f" | {num(rs[0],'push_p99_ms'):.1f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, f"{STEM}-summary.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv")
    p.add_argument("bandwidth", nargs="?")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--stem", default="ps-load", help="file names: STEM.png, STEM-servers.png, STEM-summary.md")
    a = p.parse_args()
    global STEM
    STEM = a.stem
    rows = read(a.csv)
    bandwidth = read(a.bandwidth) if a.bandwidth and os.path.exists(a.bandwidth) else []
    plot_workers(rows, a.out)
    plot_servers(rows, a.out)
    summary(rows, bandwidth, a.out)


if __name__ == "__main__":
    main()
