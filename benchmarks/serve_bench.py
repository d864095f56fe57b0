#!/usr/bin/env python3
"""Serving bench: forecasts per second and request latency (p50, p99) of `forecast --serve`, for 1 and 256
windows per request, over one keep-alive connection.

    python3 benchmarks/serve_bench.py --port P [--requests 300]

It asks GET /v1/model for the history length, then POSTs windows of that length (random walks).
"""
import argparse, http.client, json, random, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--levels", default="80,95")
    a = ap.parse_args()
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    c.request("GET", "/v1/model")
    info = json.loads(c.getresponse().read())
    L, D = info["input_length"], len(info["columns"])
    rng = random.Random(0)
    levels = [float(x) for x in a.levels.split(",") if x] if info.get("levels") else []

    def window():
        v, out = 350.0, []
        for _ in range(L):
            v += rng.gauss(0, 0.5)
            out.append(v if D == 1 else [v] * D)
        return out

    for n in (1, 256):
        body = json.dumps({"windows": [window() for _ in range(n)], "levels": levels}).encode()
        count = max(10, a.requests if n == 1 else a.requests // 10)
        lat = []
        start = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            c.request("POST", "/v1/forecast", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            lat.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
        lat.sort()
        print(f"{n} window(s) per request: {count * n / total:,.0f} forecasts/s, {count / total:,.1f} requests/s, "
              f"p50 {lat[len(lat) // 2] * 1e3:.2f} ms, p99 {lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3:.2f} ms "
              f"({count} requests, history {L}, horizon {info['horizon']})")


if __name__ == "__main__":
    main()
