#!/usr/bin/env bash
# `make run`: bring up a kite lab cluster and open a shell to use it. Run
# inside hack/netns.sh, so the lab (and all its traffic) lives in a private
# network namespace and disappears when the shell exits.
set -euo pipefail
kite="$1"
export HOME="${KITE_RUN_HOME:-$(mktemp -d)}"
bindir="$HOME/bin"
mkdir -p "$bindir"
ln -sf "$kite" "$bindir/kite"
ln -sf "$kite" "$bindir/kubectl"
export PATH="$bindir:$PATH"
state="$HOME/lab"
trap 'kite down --state-dir "$state" --purge >/dev/null 2>&1 || true' EXIT
kite up --state-dir "$state"
cat <<MSG

kite lab is up. Try:
  kubectl get nodes -o wide
  kubectl create deployment kuard --image=gcr.io/kuar-demo/kuard-amd64:1 --replicas=10
  kubectl expose deployment kuard --type=LoadBalancer --port=80 --target-port=8080
  kubectl get svc kuard                  # then: curl http://<EXTERNAL-IP>/env/api
  kubectl exec -it deploy/kuard -- ash
  kite status
  kite node shell kite-control-plane
Leave this shell (exit) to tear the cluster down.
MSG
if [[ -t 0 ]]; then
  bash -i || true
else
  kite kubectl get nodes -o wide
fi
