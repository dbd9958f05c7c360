// Package openapi describes kite's API in OpenAPI v2 and v3 and serves the
// documents the way kube-apiserver does, so that kubectl can validate
// (--validate=strict), explain and dry-run against kite.
//
// # Where the pieces come from
//
// Schemas are not written by hand: zz_generated.openapi.go is produced by
// kube-openapi's openapi-gen from the k8s.io/api and k8s.io/apimachinery
// packages pinned in go.mod (hack/update-openapi.sh regenerates it). Those
// packages name their types with OpenAPIModelName(), so definitions are keyed
// by the REST-friendly names clients expect (io.k8s.api.core.v1.Pod).
//
// Paths are derived from the resources the API server registers ([Resource]):
// each verb becomes the operation kube-apiserver would expose, with the same
// operation IDs and x-kubernetes-* extensions. Query parameters are read off
// the generated schemas of the options types (ListOptions, PatchOptions,
// PodLogOptions, ...), so their names and descriptions follow k8s.io/api.
//
// kube-openapi's builders turn routes plus definitions into documents: they
// collect only the definitions a document reaches, wrap v3 references and
// share common v2 parameters. Its handlers serve them with content
// negotiation (JSON or protobuf), ETags and gzip.
//
// # What kubectl relies on
//
//   - Every top-level kind's definition carries x-kubernetes-group-version-kind
//     (a list); kubectl explain and client-side validation find schemas by it.
//   - Every PATCH operation carries x-kubernetes-group-version-kind (a single
//     object) and a fieldValidation query parameter in its own parameter list:
//     that is how kubectl decides the server validates fields itself
//     (k8s.io/cli-runtime/pkg/resource/query_param_verifier*.go).
//   - /openapi/v3 lists one document per group-version under "api/v1" or
//     "apis/<group>/<version>" with a content hash; kubectl fetches only those.
//
// # Cost
//
// Install only checks the resource list and that every type it reaches has a
// generated definition (a few milliseconds). The documents are built on the
// first request for them (v2, and all v3 documents together, each once),
// which takes tens of milliseconds, so serving OpenAPI never delays start-up.
package openapi
