#!/usr/bin/env bash
# Regenerates internal/apiserver/openapi/zz_generated.openapi.go: the OpenAPI
# definitions of every type kite serves, produced by kube-openapi's openapi-gen
# from the k8s.io/api and k8s.io/apimachinery versions pinned in go.mod.
#
# The output depends only on go.mod, so running this twice gives the same file.
# Run it after bumping k8s.io/api, k8s.io/apimachinery or k8s.io/kube-openapi.
set -o errexit -o nounset -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"

pkg=kite/internal/apiserver/openapi
dir=internal/apiserver/openapi

# The API groups kite serves, plus the apimachinery packages their types
# refer to. openapi-gen only emits definitions for packages listed here, so a
# type referenced from outside this list would leave a dangling $ref; the
# package's tests catch that.
inputs=(
  k8s.io/api/core/v1
  k8s.io/api/apps/v1
  k8s.io/api/autoscaling/v1
  k8s.io/api/discovery/v1
  k8s.io/api/coordination/v1
  k8s.io/api/events/v1
  k8s.io/api/authentication/v1
  k8s.io/apimachinery/pkg/apis/meta/v1
  k8s.io/apimachinery/pkg/runtime
  k8s.io/apimachinery/pkg/util/intstr
  k8s.io/apimachinery/pkg/api/resource
  k8s.io/apimachinery/pkg/version
)

# Upstream's API rule linter flags long-accepted naming quirks in k8s.io/api
# (for example list fields without list-type). They are not ours to fix, so
# the report goes to a throwaway file instead of failing the run.
report=$(mktemp)
trap 'rm -f "${report}"' EXIT

# No --output-model-name-file: k8s.io/api and apimachinery already ship
# OpenAPIModelName() methods, which make the generated keys the REST-friendly
# names (io.k8s.api.core.v1.Pod) that clients expect.
go tool openapi-gen \
  --output-dir "${dir}" \
  --output-pkg "${pkg}" \
  --output-file zz_generated.openapi.go \
  --go-header-file /dev/null \
  --report-filename "${report}" \
  "${inputs[@]}"
