#!/usr/bin/env bash
# Prints the Secret <JOB>-curve that the manifests mount, with fresh CURVE keys, for kubectl apply.
#
#   cluster/k8s/make-secret.sh --name JOB [--namespace NS] [--bin DIR] | kubectl apply -f -
#
# Keys (made with `ps-server --generate-curve-keys`, from DIR or PATH): server.secret and server.public (one
# pair for every server), worker.secret and worker.public (one client pair shared by the workers), and
# authorized_keys (the workers' public key, which the servers admit). Servers mount only server.secret and
# authorized_keys; workers only server.public and worker.secret. Nothing is written outside a temporary
# directory, which is removed. Keep the output out of version control.
set -euo pipefail
name="" namespace=default bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name=${2-}; shift 2 || { echo "make-secret.sh: --name needs a value" >&2; exit 64; } ;;
        --namespace) namespace=${2-}; shift 2 || { echo "make-secret.sh: --namespace needs a value" >&2; exit 64; } ;;
        --bin) bin=${2-}; shift 2 || { echo "make-secret.sh: --bin needs a value" >&2; exit 64; } ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "make-secret.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
    esac
done
[[ "$name" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "make-secret.sh: --name must be a DNS label, got '$name'" >&2; exit 64; }
ps_server=ps-server
[ -n "$bin" ] && ps_server="$bin/ps-server"
command -v "$ps_server" >/dev/null || { echo "make-secret.sh: no ps-server at '$ps_server' (pass --bin DIR)" >&2; exit 1; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
timeout 30 "$ps_server" --generate-curve-keys "$dir/server" >/dev/null
timeout 30 "$ps_server" --generate-curve-keys "$dir/worker" >/dev/null
{ echo "# workers' CURVE public keys, one per line"; cat "$dir/worker.public"; } > "$dir/authorized_keys"

b64() { base64 -w0 < "$1"; }
cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $name-curve
  namespace: $namespace
  labels:
    app.kubernetes.io/name: scoped-trainer
    app.kubernetes.io/instance: $name
type: Opaque
data:
  server.secret: $(b64 "$dir/server.secret")
  server.public: $(b64 "$dir/server.public")
  worker.secret: $(b64 "$dir/worker.secret")
  worker.public: $(b64 "$dir/worker.public")
  authorized_keys: $(b64 "$dir/authorized_keys")
YAML
