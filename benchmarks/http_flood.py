#!/usr/bin/env python3
"""Probe for issue 18 item 1: /healthz latency and training speed of a worker with --metrics-port, undisturbed
and while four connections keep streaming ~3 MB header lines at it (each reconnects as soon as it is cut off).

    python3 benchmarks/http_flood.py [--bin .build/release] [--steps 3000]

Prints one line per run and a summary; figures go to the README by hand.
"""
import argparse, re, socket, statistics, subprocess, sys, threading, time, urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def flood(port, stop, counts):
    chunk = b"a" * 65536
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-big: ")
            sent = 0
            while sent < 3_000_000 and not stop.is_set():
                s.sendall(chunk)
                sent += len(chunk)
            counts["completed"] += 1
            s.close()
        except OSError:
            counts["cut"] += 1
            time.sleep(0.001)


def run(binary, steps, attack):
    port = free_port()
    worker = subprocess.Popen(
        [f"{binary}/worker", "--data", "co2", "--scaling", "relative", "--steps", str(steps), "--log-every", "100000",
         "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    stop = threading.Event()
    counts = {"cut": 0, "completed": 0}
    threads = [threading.Thread(target=flood, args=(port, stop, counts)) for _ in range(4)] if attack else []
    for t in threads:
        t.start()
    latencies, failures = [], 0
    while worker.poll() is None:
        t0 = time.perf_counter()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            latencies.append(time.perf_counter() - t0)
        except OSError:
            if worker.poll() is None:
                failures += 1
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    out = worker.stdout.read()
    m = re.search(r"trained \d+ steps in [\d.]+ s: (\d+) examples/s", out)
    rate = int(m.group(1)) if m else None
    lat = sorted(latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")
    print(f"{'flood' if attack else 'quiet'}: training {rate} examples/s; /healthz p50 {p(0.5):.2f} ms p99 {p(0.99):.2f} ms "
          f"max {p(1.0):.2f} ms over {len(lat)} probes, {failures} failed; flood connections cut {counts['cut']}, "
          f"completed {counts['completed']}")
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("--steps", type=int, default=3000)
    a = ap.parse_args()
    quiet = run(a.bin, a.steps, False)
    loud = run(a.bin, a.steps, True)
    if quiet and loud:
        print(f"training under the flood: {loud / quiet:.2f}x the undisturbed rate")


if __name__ == "__main__":
    main()
