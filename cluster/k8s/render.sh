#!/usr/bin/env bash
# Renders the Kubernetes manifests for P parameter servers and W workers.
#
#   cluster/k8s/render.sh --servers P --workers W --name JOB [--namespace NS] [--image IMG] [--out DIR]
#
# Writes, under DIR (default: this directory):
#   checkpoints-pvc.yaml    the PersistentVolumeClaim the servers checkpoint to (both variants use it)
#   tfjob.yaml              a Kubeflow TFJob (training operator): PS and Worker replicas; the operator sets TF_CONFIG
#   plain/ps.yaml           without the operator: headless Service + StatefulSet for the servers
#   plain/workers.yaml      without the operator: headless Service + Indexed Job for the workers
# Both variants read CURVE keys from the Secret <JOB>-curve (make it with make-secret.sh). Apply one
# variant per job name and namespace, not both: they give their pods the same names.
# Stable names: TFJob  <JOB>-ps-<i>.<NS>.svc:2222
#               plain  <JOB>-ps-<i>.<JOB>-ps.<NS>.svc:2222  and  <JOB>-worker-<i>.<JOB>-worker.<NS>.svc
set -euo pipefail

servers="" workers="" name="" namespace=default image=scoped-trainer:latest
out="$(cd "$(dirname "$0")" && pwd)"
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) servers=${2-}; shift 2 || { echo "render.sh: --servers needs a value" >&2; exit 64; } ;;
        --workers) workers=${2-}; shift 2 || { echo "render.sh: --workers needs a value" >&2; exit 64; } ;;
        --name) name=${2-}; shift 2 || { echo "render.sh: --name needs a value" >&2; exit 64; } ;;
        --namespace) namespace=${2-}; shift 2 || { echo "render.sh: --namespace needs a value" >&2; exit 64; } ;;
        --image) image=${2-}; shift 2 || { echo "render.sh: --image needs a value" >&2; exit 64; } ;;
        --out) out=${2-}; shift 2 || { echo "render.sh: --out needs a value" >&2; exit 64; } ;;
        -h|--help) usage; exit 0 ;;
        *) echo "render.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
    esac
done

fail() { echo "render.sh: $*" >&2; exit 64; }
[[ "$servers" =~ ^[1-9][0-9]*$ ]] || fail "--servers must be a positive integer, got '$servers'"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || fail "--workers must be a positive integer, got '$workers'"
[ "$servers" -le 1000 ] && [ "$workers" -le 1000 ] || fail "--servers and --workers are limited to 1000 here"
# Pod hostnames are <JOB>-worker-<i>; a DNS label holds 63 characters.
[[ "$name" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] && [ ${#name} -le 40 ] \
    || fail "--name must be a DNS label of at most 40 characters (lowercase letters, digits, '-'), got '$name'"
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] && [ ${#namespace} -le 63 ] \
    || fail "--namespace must be a DNS label, got '$namespace'"
[[ "$image" =~ ^[^[:space:]\"\'\\]+$ ]] || fail "--image must be an image reference without spaces or quotes, got '$image'"

port=2222          # ZeroMQ; the training operator's default port, named tfjob-port
metrics_port=9090  # HTTP: /metrics, /healthz, /readyz
keys=/etc/scoped-trainer/curve
ckpt=/checkpoints

# The cluster spec the plain manifests give TF_CONFIG (the operator writes its own for the TFJob).
cluster_json() {
    local i ps=() wk=()
    for ((i = 0; i < servers; i++)); do ps+=("\"$name-ps-$i.$name-ps.$namespace.svc:$port\""); done
    for ((i = 0; i < workers; i++)); do wk+=("\"$name-worker-$i.$name-worker.$namespace.svc:$port\""); done
    local IFS=,
    printf '{"ps":[%s],"worker":[%s]}' "${ps[*]}" "${wk[*]}"
}

labels() { # component
    cat <<YAML
app.kubernetes.io/name: scoped-trainer
app.kubernetes.io/instance: $name
app.kubernetes.io/component: $1
YAML
}

indent() { sed "s/^/$(printf '%*s' "$1" '')/"; }

# A pod's metadata and spec, at column 0. $1: ps|worker; $2: tfjob|plain.
pod_template() {
    local role=$1 variant=$2 grace restart
    local why
    if [ "$role" = ps ]; then
        grace=120 why="for a server to write its checkpoint after SIGTERM"
    else
        grace=60 why="for a worker to finish its step and say goodbye after SIGTERM"
    fi
    if [ "$variant" = tfjob ]; then restart=""; elif [ "$role" = ps ]; then restart=Always; else restart=Never; fi
    cat <<YAML
metadata:
  labels:
$(labels "$role" | indent 4)
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: "$metrics_port"
    prometheus.io/path: /metrics
spec:
YAML
    [ -n "$restart" ] && echo "  restartPolicy: $restart"
    if [ "$variant" = plain ] && [ "$role" = worker ]; then
        # With the headless Service of the same name, each pod is <JOB>-worker-<i>.<JOB>-worker.<NS>.svc.
        echo "  subdomain: $name-worker"
    fi
    cat <<YAML
  # Long enough $why.
  terminationGracePeriodSeconds: $grace
  enableServiceLinks: false
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: tensorflow
      image: $image
      imagePullPolicy: IfNotPresent
YAML
    if [ "$variant" = plain ]; then
        container_command "$role" | indent 6
    elif [ "$role" = ps ]; then
        echo "      command: [ps-server]"
    else
        echo "      command: [worker]"
    fi
    echo "      args:"
    container_args "$role" | indent 8
    # A StatefulSet restarts any container that exits, even with 0: its servers stay up once training is
    # done (checkpoint written) until the StatefulSet is deleted, instead of starting again empty.
    [ "$variant" = plain ] && [ "$role" = ps ] && echo "        - --keep-serving"
    cat <<YAML
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
YAML
    if [ "$variant" = plain ]; then
        cat <<YAML
        - name: TF_CLUSTER
          value: '$(cluster_json)'
YAML
    fi
    cat <<YAML
      ports:
YAML
    # Workers listen on no ZeroMQ port; the operator still expects tfjob-port on every replica's container.
    if [ "$role" = ps ] || [ "$variant" = tfjob ]; then
        cat <<YAML
        - name: tfjob-port
          containerPort: $port
          protocol: TCP
YAML
    fi
    cat <<YAML
        - name: metrics
          containerPort: $metrics_port
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 6
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      resources:
        requests:
          cpu: 500m
          memory: 512Mi
        limits:
          memory: 2Gi
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: curve-keys
          mountPath: $keys
          readOnly: true
        - name: tmp
          mountPath: /tmp
YAML
    if [ "$role" = ps ]; then
        cat <<YAML
        - name: checkpoints
          mountPath: $ckpt
YAML
    fi
    cat <<YAML
  volumes:
    # Each side sees only the keys it needs: servers never get a worker's secret, nor workers the servers'.
    - name: curve-keys
      secret:
        secretName: $name-curve
        defaultMode: 0440
        items:
YAML
    if [ "$role" = ps ]; then
        cat <<YAML
          - key: server.secret
            path: server.secret
          - key: authorized_keys
            path: authorized_keys
YAML
    else
        cat <<YAML
          - key: server.public
            path: server.public
          - key: worker.secret
            path: worker.secret
YAML
    fi
    cat <<YAML
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
YAML
    if [ "$role" = ps ]; then
        cat <<YAML
    - name: checkpoints
      persistentVolumeClaim:
        claimName: $name-checkpoints
YAML
    fi
}

# Flags common to both variants; TF_CONFIG supplies ports, addresses, indices and counts.
container_args() {
    if [ "$1" = ps ]; then
        cat <<YAML
- --mode=async
- --checkpoint-dir=$ckpt
- --checkpoint-secs=60
- --name=\$(POD_NAME)
- --metrics-port=$metrics_port
- --log-format=json
- --worker-timeout=300
- --curve-secret-file=$keys/server.secret
- --curve-authorized-keys=$keys/authorized_keys
YAML
    else
        cat <<YAML
- --data=co2
- --steps=3000
- --metrics-port=$metrics_port
- --log-format=json
- --recovery-timeout=300
- --curve-server-key=$keys/server.public
- --curve-secret-file=$keys/worker.secret
YAML
    fi
}

# Without the operator, a small wrapper builds TF_CONFIG from the pod's index, then execs the binary
# (which stays PID 1 and gets SIGTERM directly). Kubernetes expands $(VAR) in commands, so the scripts use none.
container_command() {
    if [ "$1" = ps ]; then
        cat <<'YAML'
command:
  - /bin/sh
  - -c
  - |
    # Server i runs in pod <JOB>-ps-<i> (the StatefulSet ordinal).
    i="${HOSTNAME##*-}"
    case "$i" in ''|*[!0-9]*) echo "cannot take a server index from hostname '$HOSTNAME'" >&2; exit 64 ;; esac
    export TF_CONFIG="{\"cluster\":$TF_CLUSTER,\"task\":{\"type\":\"ps\",\"index\":$i}}"
    exec ps-server "$@"
  - ps-server
YAML
    else
        cat <<'YAML'
command:
  - /bin/sh
  - -c
  - |
    # Worker i is the Indexed Job's completion index i.
    i="${JOB_COMPLETION_INDEX-}"
    case "$i" in ''|*[!0-9]*) echo "JOB_COMPLETION_INDEX is '$i': run this as an Indexed Job" >&2; exit 64 ;; esac
    export TF_CONFIG="{\"cluster\":$TF_CLUSTER,\"task\":{\"type\":\"worker\",\"index\":$i}}"
    exec worker "$@"
  - worker
YAML
    fi
}

header() { # what
    cat <<YAML
# Rendered by cluster/k8s/render.sh --servers $servers --workers $workers --name $name --namespace $namespace --image $image
# $1
YAML
}

mkdir -p "$out/plain"

{
    header "Checkpoints of the parameter servers (<POD_NAME>.safetensors each). ReadWriteMany because the servers
# may run on different nodes; with one server, ReadWriteOnce is enough."
    cat <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: $name-checkpoints
  namespace: $namespace
  labels:
$(labels checkpoints | indent 4)
spec:
  accessModes: [ReadWriteMany]
  resources:
    requests:
      storage: 1Gi
YAML
} > "$out/checkpoints-pvc.yaml"

{
    header "Kubeflow TFJob (training operator). The operator creates one Service per replica and sets TF_CONFIG.
# ExitCode restarts a pod on a retryable exit (128-255: 138 is a lost peer, 137/143 a kill) and fails the job
# on a permanent one (1-127: 64 is a usage or configuration error)."
    cat <<YAML
apiVersion: kubeflow.org/v1
kind: TFJob
metadata:
  name: $name
  namespace: $namespace
  labels:
$(labels training | indent 4)
spec:
  runPolicy:
    cleanPodPolicy: Running
    backoffLimit: 6
  successPolicy: AllWorkers
  tfReplicaSpecs:
    PS:
      replicas: $servers
      restartPolicy: ExitCode
      template:
$(pod_template ps tfjob | indent 8)
    Worker:
      replicas: $workers
      restartPolicy: ExitCode
      template:
$(pod_template worker tfjob | indent 8)
YAML
} > "$out/tfjob.yaml"

{
    header "Parameter servers without the training operator: a headless Service (stable DNS, published before
# the pods are ready so workers can connect) and a StatefulSet. StatefulSet pods always restart, so the
# servers run with --keep-serving: once the workers' Job completes (checkpoints written), delete these."
    cat <<YAML
apiVersion: v1
kind: Service
metadata:
  name: $name-ps
  namespace: $namespace
  labels:
$(labels ps | indent 4)
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
$(labels ps | indent 4)
  ports:
    - name: tfjob-port
      port: $port
      targetPort: tfjob-port
    - name: metrics
      port: $metrics_port
      targetPort: metrics
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: $name-ps
  namespace: $namespace
  labels:
$(labels ps | indent 4)
spec:
  serviceName: $name-ps
  replicas: $servers
  podManagementPolicy: Parallel
  selector:
    matchLabels:
$(labels ps | indent 6)
  template:
$(pod_template ps plain | indent 4)
YAML
} > "$out/plain/ps.yaml"

{
    header "Workers without the training operator: a headless Service (pod DNS names) and an Indexed Job whose
# completion index is the worker's task index. Exit 138 (lost a server past --recovery-timeout) and kills
# are retried; any other failure (1-127) fails the Job at once."
    cat <<YAML
apiVersion: v1
kind: Service
metadata:
  name: $name-worker
  namespace: $namespace
  labels:
$(labels worker | indent 4)
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
$(labels worker | indent 4)
  ports:
    - name: metrics
      port: $metrics_port
      targetPort: metrics
---
apiVersion: batch/v1
kind: Job
metadata:
  name: $name-worker
  namespace: $namespace
  labels:
$(labels worker | indent 4)
spec:
  completionMode: Indexed
  completions: $workers
  parallelism: $workers
  backoffLimit: $((workers * 3))
  podFailurePolicy:
    rules:
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
            status: "True"
      - action: FailJob
        onExitCodes:
          containerName: tensorflow
          operator: NotIn
          values: [137, 138, 143]
  template:
$(pod_template worker plain | indent 4)
YAML
} > "$out/plain/workers.yaml"

echo "rendered $servers servers and $workers workers as '$name' in namespace $namespace into $out:"
echo "  checkpoints-pvc.yaml tfjob.yaml plain/ps.yaml plain/workers.yaml"
