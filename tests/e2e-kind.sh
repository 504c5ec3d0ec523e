#!/bin/sh
# End to end in a real cluster, for anyone with kind (or k3d) and docker: builds the
# image, installs the CRD and the operator, breaks a pod into CrashLoopBackOff and shows
# salve heal it (the pod deleted, its replacement Ready, an Event, the journal).
# Not run in CI: no API server can run there. Everything it makes is in its own
# cluster, deleted at the end, even on failure.
#
#   tests/e2e-kind.sh            # kind (default)
#   SALVE_E2E_TOOL=k3d tests/e2e-kind.sh
set -eu

tool=${SALVE_E2E_TOOL:-kind}
cluster=salve-e2e
image=salve:e2e
here=$(cd "$(dirname "$0")/.." && pwd)

need() { command -v "$1" >/dev/null 2>&1 || { echo "e2e-kind: needs $1 on PATH" >&2; exit 2; }; }
need docker
need kubectl
need "$tool"

cleanup() {
    case $tool in
        kind) kind delete cluster --name "$cluster" >/dev/null 2>&1 || true ;;
        k3d) k3d cluster delete "$cluster" >/dev/null 2>&1 || true ;;
    esac
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

step "cluster $cluster ($tool)"
case $tool in
    kind) kind create cluster --name "$cluster" --wait 120s ;;
    k3d) k3d cluster create "$cluster" --wait ;;
    *) echo "e2e-kind: SALVE_E2E_TOOL is kind or k3d" >&2; exit 2 ;;
esac

step "image $image"
docker build -t "$image" -f "$here/deploy/container/Dockerfile" "$here"
case $tool in
    kind) kind load docker-image "$image" --name "$cluster" ;;
    k3d) k3d image import "$image" -c "$cluster" ;;
esac

step "CRD and operator"
kubectl apply -f "$here/deploy/kubernetes/remediationpolicy.crd.json"
sed "s#image: ghcr.io/salve-dev/salve:0.1.0#image: $image\n          imagePullPolicy: Never#" \
    "$here/deploy/kubernetes/operator.yaml" | kubectl apply -f -
kubectl -n salve-system rollout status deployment/salve-operator --timeout=180s

step "a pod that crash-loops once its emptyDir says so"
kubectl create namespace web
kubectl apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: { name: crashy, namespace: web }
spec:
  replicas: 1
  selector: { matchLabels: { app: crashy } }
  template:
    metadata: { labels: { app: crashy } }
    spec:
      containers:
        - name: app
          image: busybox:1.36
          command: ["sh", "-c", "while true; do [ -f /state/broken ] && exit 1; sleep 1; done"]
          volumeMounts: [{ name: state, mountPath: /state }]
      volumes: [{ name: state, emptyDir: {} }]
---
apiVersion: salve.dev/v1alpha1
kind: RemediationPolicy
metadata: { name: crashy-pods, namespace: web }
spec:
  target: { pods: { selector: { app: crashy } } }
  trigger:
    - pod: { reason: [CrashLoopBackOff] }
  actions:
    - deletePod: {}
  verify: { ready: { within: 2m } }
  guard: { cooldown: 1m, maxAttempts: 3, window: 1h, maxUnhealthy: 2 }
YAML
kubectl -n web rollout status deployment/crashy --timeout=120s
broken=$(kubectl -n web get pods -l app=crashy -o jsonpath='{.items[0].metadata.name}')

step "break $broken"
kubectl -n web exec "$broken" -- touch /state/broken

step "wait for salve to delete it and its replacement to be Ready"
deadline=$(( $(date +%s) + 300 ))
while kubectl -n web get pod "$broken" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "e2e-kind: $broken was never deleted" >&2; exit 1; }
    sleep 5
done
kubectl -n web wait --for=condition=Ready pod -l app=crashy --timeout=180s

step "what salve says"
kubectl -n web get events --field-selector reason=SalveRemediation
kubectl -n web get rp crashy-pods
kubectl -n salve-system logs -l app.kubernetes.io/component=operator --tail=-1 --prefix \
    | grep '"policy":"crashy-pods"' | tail -5
kubectl -n web get events --field-selector reason=SalveRemediation -o name | grep -q . \
    || { echo "e2e-kind: no SalveRemediation Event" >&2; exit 1; }
echo "e2e-kind: healed"
