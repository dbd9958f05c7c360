#!/usr/bin/env bash
# Fetches Debian's kubectl 1.20 (package kubernetes-client) for the e2e suite
# without installing it: `apt install kubernetes-client` would clash with
# /usr/bin/kubectl, so the .deb is downloaded and unpacked with dpkg -x.
# The suite uses $KITE_KUBECTL_120_DIR/usr/bin/kubectl when it exists and
# skips kubectl 1.20 otherwise. Run outside any private network namespace
# (it needs the Debian mirror). Idempotent; exits 0 with a note when apt
# cannot fetch the package, so `make test` still runs everything else.
set -euo pipefail

dest="${KITE_KUBECTL_120_DIR:-/var/cache/kite-test/kubectl-1.20}"
bin="$dest/usr/bin/kubectl"

if [[ -x "$bin" ]]; then
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# _apt must be able to write the download directory, or apt warns and
# downloads unsandboxed.
chmod 0777 "$tmp"

if ! (cd "$tmp" && apt-get download -q kubernetes-client >"$tmp/log" 2>&1); then
  # Package lists may be missing on a fresh machine.
  if ! (apt-get update -qq && cd "$tmp" && apt-get download -q kubernetes-client >"$tmp/log" 2>&1); then
    echo "get-kubectl-1.20: apt-get download kubernetes-client failed; e2e tests will skip kubectl 1.20:" >&2
    cat "$tmp/log" >&2
    exit 0
  fi
fi

mkdir -p "$dest"
dpkg -x "$tmp"/kubernetes-client_*.deb "$dest"
"$bin" version --client >/dev/null
echo "get-kubectl-1.20: $("$bin" version --client --short 2>/dev/null || "$bin" version --client) at $bin"
