// Package storage keeps Kubernetes objects in etcd v3.
//
// Every object lives under one key; its resourceVersion is the etcd mod
// revision of that key, and a list's resourceVersion is the store revision it
// was read at. Nothing is cached in memory: several kite servers can share
// one etcd. Objects are stored protobuf-encoded (the k8s.io/api wire form),
// without their resourceVersion, which is always taken from etcd.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// Sentinel errors; the API server turns them into Kubernetes Status errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict: the object changed since the given resourceVersion.
	ErrConflict = errors.New("conflict")
	// ErrCompacted: the requested revision is older than the oldest kept.
	ErrCompacted = errors.New("resource version compacted")
	// ErrFuture: the requested revision is newer than the store's.
	ErrFuture = errors.New("resource version in the future")
)

// Codec encodes objects for storage and decodes them back into a typed
// object.
type Codec interface {
	Encode(obj runtime.Object) ([]byte, error)
	Decode(data []byte, into runtime.Object) error
}

// Store reads and writes objects in etcd.
type Store struct {
	client *clientv3.Client
	codec  Codec
	leases *leaseCache
}

// New returns a store over an etcd client.
func New(client *clientv3.Client, codec Codec) *Store {
	return &Store{client: client, codec: codec, leases: newLeaseCache(client)}
}

// Client is the underlying etcd client (for leases, compaction, health).
func (s *Store) Client() *clientv3.Client { return s.client }

// Revision is the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "/kite-revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func (s *Store) decode(kv []byte, rev int64, into runtime.Object) error {
	if err := s.codec.Decode(kv, into); err != nil {
		return fmt.Errorf("decode stored object: %w", err)
	}
	return setRV(into, rev)
}

func setRV(obj runtime.Object, rev int64) error {
	a, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if rev == 0 {
		a.SetResourceVersion("")
	} else {
		a.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	return nil
}

// encode stores the object without its resourceVersion.
func (s *Store) encode(obj runtime.Object) ([]byte, error) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := a.GetResourceVersion()
	a.SetResourceVersion("")
	defer a.SetResourceVersion(rv)
	return s.codec.Encode(obj)
}

// Get reads the object at key into out.
func (s *Store) Get(ctx context.Context, key string, out runtime.Object) error {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return ErrNotFound
	}
	kv := resp.Kvs[0]
	return s.decode(kv.Value, kv.ModRevision, out)
}

// Create writes obj at key if the key is free, and sets obj's
// resourceVersion. A ttl > 0 makes etcd delete the key after ttl seconds.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object, ttl int64) error {
	data, err := s.encode(obj)
	if err != nil {
		return err
	}
	var opts []clientv3.OpOption
	if ttl > 0 {
		id, err := s.leases.get(ctx, ttl)
		if err != nil {
			return fmt.Errorf("lease for %s: %w", key, err)
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data), opts...)).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrExists
	}
	return setRV(obj, resp.Header.Revision)
}

// UpdateFunc computes the new object from the current one. Returning an
// error aborts the update with that error.
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// GuaranteedUpdate reads the object at key into a new object from newObj,
// applies update and writes the result if the key did not change meanwhile,
// retrying on races. If the update changes nothing, nothing is written and
// the current object (with its resourceVersion) is returned.
func (s *Store) GuaranteedUpdate(ctx context.Context, key string, newObj func() runtime.Object, update UpdateFunc) (runtime.Object, error) {
	for attempt := 0; ; attempt++ {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			return nil, ErrNotFound
		}
		kv := resp.Kvs[0]
		cur := newObj()
		if err := s.decode(kv.Value, kv.ModRevision, cur); err != nil {
			return nil, err
		}
		next, err := update(cur)
		if err != nil {
			return nil, err
		}
		data, err := s.encode(next)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(data, kv.Value) {
			return cur, nil
		}
		var opts []clientv3.OpOption
		if kv.Lease != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(kv.Lease)))
		}
		tresp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, string(data), opts...)).
			Commit()
		if err != nil {
			return nil, err
		}
		if tresp.Succeeded {
			return next, setRV(next, tresp.Header.Revision)
		}
		if attempt > 100 {
			return nil, fmt.Errorf("update %s: too many concurrent writers: %w", key, ErrConflict)
		}
	}
}

// Delete removes the object at key if check (may be nil) accepts the
// current object, and returns the deleted object with the revision of its
// deletion as resourceVersion.
func (s *Store) Delete(ctx context.Context, key string, out runtime.Object, check func(current runtime.Object) error) error {
	for attempt := 0; ; attempt++ {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return ErrNotFound
		}
		kv := resp.Kvs[0]
		if err := s.decode(kv.Value, kv.ModRevision, out); err != nil {
			return err
		}
		if check != nil {
			if err := check(out); err != nil {
				return err
			}
		}
		tresp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			return err
		}
		if tresp.Succeeded {
			return setRV(out, tresp.Header.Revision)
		}
		if attempt > 100 {
			return fmt.Errorf("delete %s: too many concurrent writers: %w", key, ErrConflict)
		}
	}
}

// Compact discards history before rev.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.client.Compact(ctx, rev)
	if err != nil && errors.Is(err, rpctypes.ErrCompacted) {
		return nil
	}
	return err
}

func mapEtcdErr(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return ErrCompacted
	case errors.Is(err, rpctypes.ErrFutureRev):
		return ErrFuture
	}
	return err
}
