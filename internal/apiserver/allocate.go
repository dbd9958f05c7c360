package apiserver

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// allocate reserves what a new or changed object needs from shared pools
// (a Service's clusterIP and nodePorts); release gives it back if the write
// does not happen.
func (s *Server) allocate(ctx context.Context, res *resource, obj, old runtime.Object, dryRun bool) (release func(), err error) {
	return func() {}, nil
}

// release frees what a deleted object held.
func (s *Server) release(ctx context.Context, res *resource, obj runtime.Object) {}

func schemaGK(group, kind string) schema.GroupKind { return schema.GroupKind{Group: group, Kind: kind} }
