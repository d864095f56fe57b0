#!/usr/bin/env python3
"""Issue 18's file and address findings (3, 5, 7, 8, 9), probed against built executables.

    scripts/probe-hostile-files.py [--bin .build/debug]

Prints one line per case: what was given, the exit status (128 + N for a signal: 132 is SIGILL, a Swift
trap), and the line of output that says why. Each case runs in its own temporary directory, removed
afterwards; every process is bounded and stopped. Loopback only. For before/after figures, run it against
a build of the old commit and of the new one.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

SMALL = ["--batch", "4", "--window", "6", "--horizon", "3", "--hidden", "8", "--hidden2", "5",
         "--data", "synthetic", "--scaling", "relative", "--log-every", "1000"]


def safetensors(header, data=b"", length=None):
    h = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, (bytes, str)) else (
        header.encode() if isinstance(header, str) else header)
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def checkpoint(label, seq, value=(0.5, -0.5), **meta):
    """A format-1 server checkpoint of one variable v (what both old and new servers read)."""
    m = {"format": "scoped-trainer-ps/1", "server": label, "mode": "async", "optimizer": "adam",
         "optimizer_kind": "adam", "updates": str(seq), "step": "0", "sequence": str(seq), "num_workers": "1",
         "scaling": "",
         "variables": json.dumps([{"dtype": "float32", "name": "v", "registeredBy": "worker 0", "step": seq}]),
         "workers": json.dumps([{"done": False, "incarnation": 7, "index": 0, "lastPushRequest": 3,
                                 "lastPushedStep": 3}])}
    m.update(meta)
    tensors = [("v", value), ("optimizer/v/m", (0.0, 0.0)), ("optimizer/v/v", (0.0, 0.0))]
    header, data, off = {"__metadata__": m}, b"", 0
    for name, vals in tensors:
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": [len(vals)], "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return safetensors(text, data)


TWO = struct.pack("<2f", 1, 2)
CRAFTED = {
    "header length 0x7FFF_FFFF_FFFF_FFFF": safetensors("{}", length=0x7FFFFFFFFFFFFFFF),
    "negative data_offsets": safetensors({"v": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, TWO),
    "shape [2^32, 2^32]": safetensors({"v": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 8]}}, TWO),
    "data_offsets near Int.max": safetensors(
        {"v": {"dtype": "F32", "shape": [2], "data_offsets": [2**63 - 8, 2**63 - 1]}}, TWO),
    "NaN in a variable": checkpoint("x", 1, value=(0.5, float("nan"))),
    "updates 2^64-1": checkpoint("x", 1, updates=str(2**64 - 1)),
    "step 2^63": checkpoint("x", 1, step=str(2**63)),
}


class Run:
    def __init__(self, args, env=None, cwd=None):
        self.out = tempfile.TemporaryFile()
        e = dict(os.environ)
        e.pop("TF_CONFIG", None)
        e.update(env or {})
        self.p = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT, env=e, cwd=cwd)

    def wait(self, seconds):
        try:
            return self.p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, seconds=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            if self.wait(seconds) is None:
                self.p.kill()
                self.p.wait()

    @property
    def status(self):
        rc = self.p.returncode
        return None if rc is None else (128 - rc if rc < 0 else rc)

    @property
    def text(self):
        self.out.seek(0)
        return self.out.read().decode(errors="replace")


def why(text, *words):
    lines = [l for l in text.splitlines() if any(w in l for w in words)] or text.strip().splitlines()[-1:]
    return (lines[0] if lines else "")[-170:]


def serve_until(r, word, seconds=10):
    end = time.time() + seconds
    while time.time() < end and r.p.poll() is None and word not in r.text:
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/debug")
    args = ap.parse_args()
    ps = os.path.join(os.path.abspath(args.bin), "ps-server")
    worker = os.path.join(os.path.abspath(args.bin), "worker")
    root = tempfile.mkdtemp(prefix="probe-hostile-")
    try:
        print("== finding 3: crafted checkpoints (exit status; 132 = SIGILL)")
        for name, data in CRAFTED.items():
            d = tempfile.mkdtemp(dir=root)
            with open(os.path.join(d, "ps-c-00000001.safetensors"), "wb") as f:
                f.write(data)
            s = Run([ps, "--port", "0", "--name", "ps-c", "--checkpoint-dir", d, "--keep-serving"])
            serve_until(s, "serving")
            serving = s.p.poll() is None
            s.stop()
            w = Run([worker, "--restore", d, "--steps", "0"] + SMALL)
            w.wait(120)
            w.stop()
            print(f"  {name:38s} ps-server: {'serves' if serving else s.status:>6}  worker --restore: {w.status}"
                  f"  | {why(s.text, 'corrupt', 'damaged', 'Fatal', 'error')}")

        print("== finding 5: a truncated newest checkpoint")
        d = tempfile.mkdtemp(dir=root)
        with open(os.path.join(d, "ps-t-00000001.safetensors"), "wb") as f:
            f.write(checkpoint("ps-t", 1))
        with open(os.path.join(d, "ps-t-00000002.safetensors"), "wb") as f:
            f.write(checkpoint("ps-t", 2)[:-3])
        for extra in (["--strict-restore"], []):  # strict first: the default run writes a new checkpoint at its end
            s = Run([ps, "--port", "0", "--name", "ps-t", "--checkpoint-dir", d, "--keep-serving"] + extra)
            serve_until(s, "serving")
            serving = s.p.poll() is None
            s.stop()
            warned = [l for l in s.text.splitlines() if "ps-t-00000002" in l]
            print(f"  {' '.join(extra) or '(default)':18s} {'serves' if serving else 'exit %s' % s.status};"
                  f" lines naming the damaged file: {len(warned)} | {why(s.text, 'cannot be restored', 'strict', 'restored')}")

        print("== finding 5: 20 random single-bit flips in the header of a server's own newest checkpoint")
        d = tempfile.mkdtemp(dir=root)
        ck = os.path.join(d, "ck")
        for run in range(2):  # two lives of a server, each ending with its checkpoint: an older file to fall back to
            portfile = os.path.join(d, "port%d" % run)
            s = Run([ps, "--port", "0", "--port-file", portfile, "--name", "ps-f", "--checkpoint-dir", ck, "--keep-serving"])
            end = time.time() + 10
            while time.time() < end and not os.path.exists(portfile):
                time.sleep(0.05)
            w = Run([worker, "--ps", "127.0.0.1:" + open(portfile).read().strip(), "--steps", "20",
                     "--recovery-timeout", "5"] + SMALL)
            w.wait(120)
            w.stop()
            s.stop()  # SIGTERM: the final checkpoint
        files = sorted(f for f in os.listdir(ck) if f.endswith(".safetensors"))
        newest = files[-1]
        data = open(os.path.join(ck, newest), "rb").read()
        header = struct.unpack("<Q", data[:8])[0]
        rng = random.Random(18)
        outcomes = {}
        for _ in range(20):
            bit = rng.randrange(8 * 8, 8 * (8 + header))
            trial = tempfile.mkdtemp(dir=root)
            shutil.copytree(ck, os.path.join(trial, "ck"))
            bad = bytearray(data)
            bad[bit // 8] ^= 1 << (bit % 8)
            open(os.path.join(trial, "ck", newest), "wb").write(bad)
            r = Run([ps, "--port", "0", "--name", "ps-f", "--checkpoint-dir", os.path.join(trial, "ck"), "--keep-serving"])
            serve_until(r, "serving")
            serving = r.p.poll() is None
            r.stop()
            restored = [l for l in r.text.splitlines() if " variables at update " in l]
            if not serving:
                kind = "exit %s" % r.status
            elif restored and newest in restored[0]:
                kind = "restored the flipped file"
            elif any(newest in l and " variables at update " not in l for l in r.text.splitlines()):
                kind = "older file restored, the damage reported"
            else:
                kind = "older file restored silently"
            outcomes[kind] = outcomes.get(kind, 0) + 1
            shutil.rmtree(trial, ignore_errors=True)
        print(f"  newest of {len(files)} files, {header}-byte header: " + "; ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))

        print("== finding 7: authorized-keys files")
        d = tempfile.mkdtemp(dir=root)
        subprocess.run([ps, "--generate-curve-keys", os.path.join(d, "srv")], capture_output=True, timeout=30)
        subprocess.run([ps, "--generate-curve-keys", os.path.join(d, "w")], capture_output=True, timeout=30)
        key = open(os.path.join(d, "w.public")).read().strip()
        for name, content in [("CRLF", f"# w\r\n{key}\r\n".encode()), ("BOM", b"\xef\xbb\xbf" + f"{key}\n".encode()),
                              ("comments only", b"# nobody\n"), ("empty", b"")]:
            path = os.path.join(d, "keys-" + name.replace(" ", "-"))
            open(path, "wb").write(content)
            s = Run([ps, "--port", "0", "--curve-secret-file", os.path.join(d, "srv.secret"),
                     "--curve-authorized-keys", path, "--keep-serving"])
            serve_until(s, "serving")
            serving = s.p.poll() is None
            s.stop()
            print(f"  {name:14s} {'serves' if serving else 'exit %s' % s.status} | {why(s.text, 'keys', 'error')}")

        print("== finding 8: a checkpoint directory that stops taking writes (--checkpoint-secs 5), 20 s")
        d = tempfile.mkdtemp(dir=root)
        ck = os.path.join(d, "ck")
        portfile = os.path.join(d, "port")
        s = Run([ps, "--port", "0", "--port-file", portfile, "--name", "ps-ro", "--checkpoint-dir", ck,
                 "--checkpoint-secs", "5", "--keep-serving"])
        end = time.time() + 10
        while time.time() < end and not os.path.exists(portfile):
            time.sleep(0.05)
        port = open(portfile).read().strip()
        w = Run([worker, "--ps", f"127.0.0.1:{port}", "--steps", "30"] + SMALL)
        w.wait(120)
        w.stop()
        shutil.rmtree(ck)
        open(ck, "w").close()  # a file where the directory was: as root, permissions would not stop writes
        stat = lambda: sum(int(x) for x in open(f"/proc/{s.p.pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
        hz = os.sysconf("SC_CLK_TCK")
        n0, c0 = s.text.count("checkpoint failed"), stat()
        time.sleep(20)
        n1, c1 = s.text.count("checkpoint failed"), stat()
        s.stop()
        print(f"  {n1 - n0} failure lines and {(c1 - c0) / hz:.2f} s of CPU in 20 s; SIGTERM then: exit {s.status}"
              f" | {why(s.text, 'final checkpoint', 'failed')}")

        print("== finding 9: TF_CONFIG and addresses (exit status)")
        cases = [
            ("index true", ps, ["--bind", "127.0.0.1"], '{"cluster":{"ps":["a:1","b:1"]},"task":{"type":"ps","index":true}}'),
            ("index 1.5", ps, ["--bind", "127.0.0.1"], '{"cluster":{"ps":["a:1","b:1"]},"task":{"type":"ps","index":1.5}}'),
            ("index \"1\"", ps, ["--bind", "127.0.0.1"], '{"cluster":{"ps":["a:1","b:1"]},"task":{"type":"ps","index":"1"}}'),
            ("port +P (TF_CONFIG)", ps, ["--bind", "127.0.0.1"],
             '{"cluster":{"ps":["127.0.0.1:+2222"]},"task":{"type":"ps","index":0}}'),
            ("--ps h:+P", worker, ["--ps", "127.0.0.1:+5556", "--steps", "1", "--recovery-timeout", "2", "--timeout", "2"] + SMALL, None),
            ("--ps twice (localhost, 127.0.0.1)", worker,
             ["--ps", "127.0.0.1:5556,localhost:5556", "--steps", "1", "--recovery-timeout", "2", "--timeout", "2"] + SMALL, None),
            ("--ps [::1]:P", worker, ["--ps", "[::1]:5556", "--steps", "1", "--recovery-timeout", "2", "--timeout", "2"] + SMALL, None),
            ("cluster of 2000 workers", ps, ["--bind", "127.0.0.1", "--port", "0"],
             json.dumps({"cluster": {"ps": ["p:1"], "worker": ["w%d:1" % i for i in range(2000)]},
                         "task": {"type": "ps", "index": 0}})),
        ]
        for name, exe, argv, tf in cases:
            r = Run([exe] + argv, env={"TF_CONFIG": tf} if tf else None)
            serve_until(r, "serving", 8)
            serving = r.p.poll() is None
            if serving or r.wait(30) is None:
                r.stop()
            print(f"  {name:36s} {'served' if serving else 'exit %s' % r.status} | {why(r.text, 'TF_CONFIG', '--ps', 'error')}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
