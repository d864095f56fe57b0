#!/usr/bin/env python3
"""Checks the Kubernetes manifests in cluster/k8s, committed and freshly rendered.

    pip install kubernetes-validate      # once; it validates offline from bundled schemas
    python3 cluster/k8s/check_manifests.py [-v]

For the committed files and for fresh renders (2x2 as committed, 1x1, 3x5 in another namespace):
  * every core object (everything but the TFJob) against the Kubernetes OpenAPI schema with
    kubernetes-validate in strict mode (unknown fields are errors; an object without a schema is an error,
    where the kubernetes-validate command would only warn), for the oldest and newest version below;
  * how the objects fit together: Service/StatefulSet names and selectors, Indexed Job counts and
    subdomain, the TF_CONFIG cluster list, Secret and PVC mounts, probes, grace periods;
  * the start-up wrappers, run with sh against stand-in binaries, give the right TF_CONFIG task and
    refuse a missing index with exit 64;
  * the TFJob's structure (no CRD schema ships with kubernetes-validate): apiVersion/kind, PS and Worker
    replica counts, container tensorflow, port tfjob-port, restartPolicy ExitCode, cleanPodPolicy Running,
    Secret and PVC mounts, grace period, liveness on /healthz, readiness on /readyz;
  * the committed files are exactly what render.sh writes for the default.
Prints one line per failure and ends with "N passed, M failed"; exits 1 if anything failed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
    import kubernetes_validate
    from kubernetes_validate import utils as kv
except ImportError as e:  # pragma: no cover - environment problem, not a manifest problem
    sys.exit(f"check_manifests.py: {e}; install it with: pip install kubernetes-validate")

HERE = os.path.dirname(os.path.abspath(__file__))
RENDER = os.path.join(HERE, "render.sh")
FILES = ["checkpoints-pvc.yaml", "tfjob.yaml", "plain/ps.yaml", "plain/workers.yaml"]
# The oldest Kubernetes these manifests target (Indexed Jobs with podFailurePolicy are GA in 1.31) and the newest
# kubernetes-validate knows.
VERSIONS = ["1.31.0", kv.latest_version()]
PORT, METRICS_PORT = 2222, 9090
VERBOSE = "-v" in sys.argv[1:]


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            if VERBOSE:
                print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
        return ok


R = Results()


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def get(obj, *keys, default=None):
    for k in keys:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


def render(out, servers, workers, name, namespace="default"):
    cmd = ["bash", RENDER, "--servers", str(servers), "--workers", str(workers), "--name", name,
           "--namespace", namespace, "--out", out]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    R.check(p.returncode == 0, f"render.sh {servers}x{workers} --name {name} exits 0", p.stderr.strip())


def validate_core(label, path, obj):
    kind = obj.get("kind", "?")
    name = get(obj, "metadata", "name", default="?")
    for version in VERSIONS:
        what = f"{label}: {os.path.basename(path)} {kind}/{name} is valid Kubernetes {version} (strict)"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
            R.check(True, what)
        except kv.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            R.check(False, what, f"{where}: {e.message}")
        except kv.SchemaNotFoundError as e:
            R.check(False, what, e.message)


def container(pod_spec):
    cs = get(pod_spec, "containers", default=[]) or []
    return cs[0] if len(cs) == 1 else None


def check_pod(label, role, pod, pvc_name, secret_name, variant):
    """Checks one pod template (metadata + spec) of role ps|worker."""
    spec = pod.get("spec", {})
    c = container(spec)
    R.check(c is not None and c.get("name") == "tensorflow", f"{label}: {role} has one container named tensorflow")
    if c is None:
        return
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if role == "ps" or variant == "tfjob":
        R.check(ports.get("tfjob-port") == PORT, f"{label}: {role} exposes containerPort tfjob-port {PORT}",
                f"ports {ports}")
    R.check(ports.get("metrics") == METRICS_PORT, f"{label}: {role} exposes the metrics port {METRICS_PORT}")
    live = get(c, "livenessProbe", "httpGet", default={})
    ready = get(c, "readinessProbe", "httpGet", default={})
    R.check(live.get("path") == "/healthz" and live.get("port") in ("metrics", METRICS_PORT),
            f"{label}: {role} liveness probe is GET /healthz on the metrics port", str(live))
    R.check(ready.get("path") == "/readyz" and ready.get("port") in ("metrics", METRICS_PORT),
            f"{label}: {role} readiness probe is GET /readyz on the metrics port", str(ready))
    ann = get(pod, "metadata", "annotations", default={}) or {}
    R.check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(METRICS_PORT)
            and ann.get("prometheus.io/path") == "/metrics",
            f"{label}: {role} has Prometheus scrape annotations", str(ann))
    grace = spec.get("terminationGracePeriodSeconds")
    need = 120 if role == "ps" else 30
    R.check(isinstance(grace, int) and grace >= need,
            f"{label}: {role} terminationGracePeriodSeconds >= {need}", f"got {grace}")
    sc = spec.get("securityContext", {})
    R.check(sc.get("runAsNonRoot") is True and isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0,
            f"{label}: {role} runs as a non-root user")

    volumes = {v.get("name"): v for v in spec.get("volumes", [])}
    mounts = {m.get("name"): m for m in c.get("volumeMounts", [])}
    secret_mounts = [(n, m) for n, m in mounts.items() if "secret" in volumes.get(n, {})]
    R.check(len(secret_mounts) == 1 and secret_mounts[0][1].get("readOnly") is True
            and get(volumes[secret_mounts[0][0]], "secret", "secretName") == secret_name,
            f"{label}: {role} mounts Secret {secret_name} read-only")
    if secret_mounts:
        sv = volumes[secret_mounts[0][0]]["secret"]
        keys = sorted(i.get("key") for i in sv.get("items", []))
        want = ["authorized_keys", "server.secret"] if role == "ps" else ["server.public", "worker.secret"]
        R.check(keys == want, f"{label}: {role} gets exactly the keys {want} from the Secret", f"got {keys}")
        base = secret_mounts[0][1].get("mountPath", "")
        args = c.get("args", [])
        for key in want:
            R.check(any(a.endswith("=" + base + "/" + key) for a in args),
                    f"{label}: {role} passes the mounted {key} on its command line", str(args))
    pvc_mounts = [n for n in mounts if get(volumes.get(n, {}), "persistentVolumeClaim", "claimName") == pvc_name]
    if role == "ps":
        R.check(len(pvc_mounts) == 1, f"{label}: ps mounts PVC {pvc_name}")
        if pvc_mounts:
            path = mounts[pvc_mounts[0]].get("mountPath")
            R.check(f"--checkpoint-dir={path}" in c.get("args", []),
                    f"{label}: ps checkpoints into the PVC mount {path}")
    args = c.get("args", [])
    for flag in ["--metrics-port=%d" % METRICS_PORT, "--log-format=json"]:
        R.check(flag in args, f"{label}: {role} passes {flag}")
    if role == "ps":
        R.check(any(a.startswith("--curve-authorized-keys=") for a in args),
                f"{label}: ps admits workers by --curve-authorized-keys")
    return c


def run_wrapper(label, role, c, env, expect_index):
    """Runs a plain container's sh wrapper with a stand-in binary; checks the TF_CONFIG it builds."""
    cmd = c.get("command", [])
    ok = R.check(len(cmd) == 4 and cmd[:2] == ["/bin/sh", "-c"], f"{label}: {role} starts through an sh wrapper",
                 str(cmd)[:200])
    if not ok:
        return
    script, argv0 = cmd[2], cmd[3]
    R.check("$(" not in script, f"{label}: {role} wrapper has no $( (Kubernetes would expand it)")
    binary = "ps-server" if role == "ps" else "worker"
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, binary)
        with open(fake, "w") as f:
            f.write('#!/bin/sh\nprintf "%s" "$TF_CONFIG" > "$OUT/tf_config"\nprintf "%s\\n" "$@" > "$OUT/args"\n')
        os.chmod(fake, 0o755)
        # Kubernetes expands $(VAR) in args from the container's env before the shell sees them.
        values = {e["name"]: e.get("value", f"<{e['name']}>") for e in c.get("env", [])}
        args = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values.get(m.group(1), m.group(0)), a)
                for a in c.get("args", [])]
        base = {"PATH": tmp + ":/usr/bin:/bin", "OUT": tmp}
        base.update({k: v for k, v in values.items() if not v.startswith("<")})
        p = subprocess.run(["/bin/sh", "-c", script, argv0] + args, env={**base, **env},
                           capture_output=True, text=True, timeout=10)
        if not R.check(p.returncode == 0, f"{label}: {role} wrapper runs the binary", p.stderr.strip()):
            return
        try:
            tf = json.load(open(os.path.join(tmp, "tf_config")))
        except (OSError, ValueError) as e:
            R.check(False, f"{label}: {role} wrapper exports TF_CONFIG as JSON", str(e))
            return
        R.check(tf.get("task") == {"type": role, "index": expect_index},
                f"{label}: {role} wrapper sets task {{type: {role}, index: {expect_index}}}", str(tf.get("task")))
        passed = open(os.path.join(tmp, "args")).read().splitlines()
        R.check(passed == args, f"{label}: {role} wrapper passes every argument through unchanged")
        # Without an index, the wrapper refuses with the usage exit code.
        bad = {k: v for k, v in {**base, **env}.items() if k not in ("JOB_COMPLETION_INDEX",)}
        if role == "ps":
            bad["HOSTNAME"] = "not-a-statefulset-pod"
        p = subprocess.run(["/bin/sh", "-c", script, argv0] + args, env=bad, capture_output=True, text=True,
                           timeout=10)
        R.check(p.returncode == 64 and not os.path.exists(os.path.join(tmp, "never")),
                f"{label}: {role} wrapper exits 64 without an index", f"exit {p.returncode}: {p.stderr.strip()}")


def check_set(label, d, servers, workers, name, namespace):
    docs = {}
    for rel in FILES:
        path = os.path.join(d, rel)
        if not R.check(os.path.isfile(path), f"{label}: {rel} exists"):
            continue
        try:
            docs[rel] = load(path)
            R.check(True, f"{label}: {rel} parses as YAML")
        except yaml.YAMLError as e:
            R.check(False, f"{label}: {rel} parses as YAML", str(e))
    objs = [(rel, o) for rel, ds in docs.items() for o in ds]
    for rel, o in objs:
        R.check(get(o, "metadata", "namespace") == namespace,
                f"{label}: {rel} {o.get('kind')} is in namespace {namespace}")
        if o.get("kind") != "TFJob":
            validate_core(label, rel, o)

    by_kind = {}
    for rel, o in objs:
        by_kind.setdefault(o.get("kind"), []).append(o)
    pvcs = by_kind.get("PersistentVolumeClaim", [])
    R.check(len(pvcs) == 1 and pvcs[0]["metadata"]["name"] == f"{name}-checkpoints",
            f"{label}: one PVC named {name}-checkpoints")
    pvc_name, secret_name = f"{name}-checkpoints", f"{name}-curve"

    # TFJob
    tfjobs = by_kind.get("TFJob", [])
    if R.check(len(tfjobs) == 1, f"{label}: tfjob.yaml holds one TFJob"):
        t = tfjobs[0]
        R.check(t.get("apiVersion") == "kubeflow.org/v1" and t.get("kind") == "TFJob",
                f"{label}: TFJob apiVersion kubeflow.org/v1, kind TFJob")
        R.check(get(t, "metadata", "name") == name, f"{label}: TFJob is named {name}")
        R.check(get(t, "spec", "runPolicy", "cleanPodPolicy") == "Running", f"{label}: TFJob cleanPodPolicy Running")
        R.check(get(t, "spec", "successPolicy") in (None, "", "AllWorkers"), f"{label}: TFJob successPolicy is valid")
        specs = get(t, "spec", "tfReplicaSpecs", default={}) or {}
        R.check(sorted(specs) == ["PS", "Worker"], f"{label}: TFJob replica specs are PS and Worker",
                f"got {sorted(specs)}")
        for rtype, count, role in [("PS", servers, "ps"), ("Worker", workers, "worker")]:
            rs = specs.get(rtype, {})
            R.check(rs.get("replicas") == count, f"{label}: TFJob {rtype} replicas {count}",
                    f"got {rs.get('replicas')}")
            R.check(rs.get("restartPolicy") == "ExitCode", f"{label}: TFJob {rtype} restartPolicy ExitCode")
            tpl = rs.get("template", {})
            R.check("restartPolicy" not in tpl.get("spec", {}),
                    f"{label}: TFJob {rtype} pod template leaves restartPolicy to the replica spec")
            c = check_pod(f"{label} TFJob", role, tpl, pvc_name, secret_name, "tfjob")
            if c is not None:
                binary = "ps-server" if role == "ps" else "worker"
                R.check(c.get("command") == [binary], f"{label}: TFJob {rtype} runs {binary}",
                        str(c.get("command")))
                R.check(not any(e.get("name") == "TF_CONFIG" for e in c.get("env", [])),
                        f"{label}: TFJob {rtype} leaves TF_CONFIG to the operator")

    # Plain: servers
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    sts = by_kind.get("StatefulSet", [])
    expected_cluster = {
        "ps": [f"{name}-ps-{i}.{name}-ps.{namespace}.svc:{PORT}" for i in range(servers)],
        "worker": [f"{name}-worker-{i}.{name}-worker.{namespace}.svc:{PORT}" for i in range(workers)],
    }
    if R.check(len(sts) == 1, f"{label}: plain/ps.yaml holds one StatefulSet"):
        s = sts[0]
        svc = services.get(get(s, "spec", "serviceName"))
        R.check(s["metadata"]["name"] == f"{name}-ps" and svc is not None,
                f"{label}: StatefulSet {name}-ps is governed by a Service of its serviceName")
        R.check(get(s, "spec", "replicas") == servers, f"{label}: StatefulSet replicas {servers}")
        tpl_labels = get(s, "spec", "template", "metadata", "labels", default={})
        sel = get(s, "spec", "selector", "matchLabels", default={})
        R.check(sel and all(tpl_labels.get(k) == v for k, v in sel.items()),
                f"{label}: StatefulSet selector matches its pod labels")
        if svc is not None:
            R.check(get(svc, "spec", "clusterIP") == "None", f"{label}: Service {name}-ps is headless")
            R.check(get(svc, "spec", "publishNotReadyAddresses") is True,
                    f"{label}: Service {name}-ps publishes servers before they are ready")
            ssel = get(svc, "spec", "selector", default={})
            R.check(ssel and all(tpl_labels.get(k) == v for k, v in ssel.items()),
                    f"{label}: Service {name}-ps selects the server pods")
            R.check(any(p.get("port") == PORT and p.get("targetPort") in ("tfjob-port", PORT)
                        for p in get(svc, "spec", "ports", default=[])),
                    f"{label}: Service {name}-ps serves port {PORT}")
        tpl = get(s, "spec", "template", default={})
        c = check_pod(f"{label} StatefulSet", "ps", tpl, pvc_name, secret_name, "plain")
        if c is not None:
            check_cluster_env(label, "ps", c, expected_cluster)
            R.check("--keep-serving" in c.get("args", []),
                    f"{label}: StatefulSet servers keep serving (a StatefulSet restarts any exit)")
            run_wrapper(label, "ps", c, {"HOSTNAME": f"{name}-ps-{servers - 1}"}, servers - 1)

    # Plain: workers
    jobs = by_kind.get("Job", [])
    if R.check(len(jobs) == 1, f"{label}: plain/workers.yaml holds one Job"):
        j = jobs[0]
        js = j.get("spec", {})
        R.check(js.get("completionMode") == "Indexed", f"{label}: worker Job completionMode Indexed")
        R.check(js.get("completions") == workers and js.get("parallelism") == workers,
                f"{label}: worker Job completions and parallelism {workers}")
        tspec = get(js, "template", "spec", default={})
        R.check(tspec.get("restartPolicy") == "Never", f"{label}: worker Job restartPolicy Never (podFailurePolicy)")
        sub = tspec.get("subdomain")
        svc = services.get(sub)
        R.check(sub == f"{name}-worker" and svc is not None and get(svc, "spec", "clusterIP") == "None",
                f"{label}: worker pods' subdomain is the headless Service {name}-worker")
        rules = get(js, "podFailurePolicy", "rules", default=[])
        fail_rule = [r for r in rules if r.get("action") == "FailJob"]
        R.check(len(fail_rule) == 1 and get(fail_rule[0], "onExitCodes", "operator") == "NotIn"
                and 138 in get(fail_rule[0], "onExitCodes", "values", default=[]),
                f"{label}: worker Job fails at once on a permanent exit code, retries 138")
        c = check_pod(f"{label} Job", "worker", get(js, "template", default={}), pvc_name, secret_name, "plain")
        if c is not None:
            check_cluster_env(label, "worker", c, expected_cluster)
            run_wrapper(label, "worker", c, {"JOB_COMPLETION_INDEX": str(workers - 1)}, workers - 1)
    return docs


def check_cluster_env(label, role, c, expected):
    env = {e.get("name"): e.get("value") for e in c.get("env", [])}
    try:
        got = json.loads(env.get("TF_CLUSTER") or "null")
    except ValueError as e:
        got = f"not JSON: {e}"
    R.check(got == expected, f"{label}: {role} TF_CLUSTER lists every server and worker by stable DNS name",
            f"got {str(got)[:300]}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_set("committed", HERE, 2, 2, "scoped-trainer", "default")
        fresh = os.path.join(tmp, "default")
        render(fresh, 2, 2, "scoped-trainer")
        for rel in FILES:
            a, b = os.path.join(HERE, rel), os.path.join(fresh, rel)
            same = os.path.isfile(a) and os.path.isfile(b) and open(a).read() == open(b).read()
            R.check(same, f"committed {rel} is render.sh's current output",
                    "re-run: cluster/k8s/render.sh --servers 2 --workers 2 --name scoped-trainer")
        for servers, workers, name, ns in [(1, 1, "tiny", "default"), (3, 5, "forecast-big", "ml-train")]:
            d = os.path.join(tmp, f"{servers}x{workers}")
            render(d, servers, workers, name, ns)
            check_set(f"{servers}x{workers}", d, servers, workers, name, ns)
        # Bad input is refused with the usage exit code, not rendered.
        for bad in (["--servers", "0", "--workers", "1", "--name", "x"],
                    ["--servers", "1", "--workers", "1", "--name", "Bad_Name"],
                    ["--servers", "1", "--workers", "1"]):
            p = subprocess.run(["bash", RENDER, *bad, "--out", os.path.join(tmp, "bad")], capture_output=True,
                               text=True, timeout=30)
            R.check(p.returncode == 64 and p.stderr.strip() != "", f"render.sh {' '.join(bad)} is refused with 64",
                    f"exit {p.returncode}")
    print(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
