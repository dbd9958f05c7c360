package deployment

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/davecgh/go-spew/spew"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/rand"
)

// PodTemplateHashLabel is the label that tells the pods (and selectors) of
// one ReplicaSet of a Deployment from another's.
const PodTemplateHashLabel = appsv1.DefaultDeploymentUniqueLabelKey

// templatePrinter renders a value deterministically for hashing: every
// field, map keys sorted, no Stringer methods, no pointer addresses of
// values (they are followed). Upstream hashes the same rendering, so a
// template gets the hash kube-controller-manager of the same API version
// would give it.
var templatePrinter = spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}

// PodTemplateHash is the pod-template-hash of a Deployment's template: the
// FNV-32a of the template rendered by templatePrinter, then of the collision
// count (4 little-endian bytes padded to 8) if there is one, printed in
// decimal and passed through rand.SafeEncodeString (no vowels, no digits
// that read as letters). A collision count bump gives a new name when a
// ReplicaSet of another template already holds this one.
func PodTemplateHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	templatePrinter.Fprintf(h, "%#v", *template)
	if collisionCount != nil {
		var b [8]byte
		binary.LittleEndian.PutUint32(b[:], uint32(*collisionCount))
		h.Write(b[:])
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// equalIgnoreHash reports whether two templates are the same but for their
// pod-template-hash label: whether a ReplicaSet runs a Deployment's
// template.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, PodTemplateHashLabel)
	delete(b.Labels, PodTemplateHashLabel)
	return equality.Semantic.DeepEqual(a, b)
}
