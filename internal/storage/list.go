package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
)

// ListOptions select what List reads.
type ListOptions struct {
	// Revision to read at; 0 reads the latest. With Exact false a
	// non-zero Revision only asks for "not older than", which the latest
	// always is.
	Revision int64
	Exact    bool
	// Limit caps the items returned (0: no cap); Continue resumes a list
	// from the token of a previous page.
	Limit    int64
	Continue string
	// Match, when set, filters items (label and field selectors).
	Match func(runtime.Object) bool
}

// ListResult is one page of a list.
type ListResult struct {
	Items    []runtime.Object
	Revision int64
	// Continue is empty on the last page.
	Continue string
	// Remaining is the number of items after this page, when known (only
	// without Match).
	Remaining *int64
}

// ErrBadContinue: the continue token is malformed.
var ErrBadContinue = errors.New("continue key is not valid")

type continueToken struct {
	APIVersion string `json:"v"`
	Revision   int64  `json:"rv"`
	Start      string `json:"start"`
}

func encodeContinue(rev int64, start string) string {
	b, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", Revision: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(tok string) (continueToken, error) {
	var ct continueToken
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return ct, fmt.Errorf("%w: %v", ErrBadContinue, err)
	}
	if err := json.Unmarshal(b, &ct); err != nil {
		return ct, fmt.Errorf("%w: %v", ErrBadContinue, err)
	}
	if ct.APIVersion != "meta.k8s.io/v1" || ct.Revision <= 0 {
		return ct, fmt.Errorf("%w: unknown version or revision", ErrBadContinue)
	}
	// The start key is relative to the list prefix; it must not climb out.
	if strings.HasPrefix(ct.Start, "/") || strings.Contains(ct.Start, "..") {
		return ct, fmt.Errorf("%w: bad start key", ErrBadContinue)
	}
	return ct, nil
}

// List reads the objects under prefix, decoding each into an object made by
// newObj. Pages are consistent: every page of one list is read at the
// revision of the first.
func (s *Store) List(ctx context.Context, prefix string, newObj func() runtime.Object, opts ListOptions) (*ListResult, error) {
	key := prefix
	rev := int64(0)
	if opts.Exact {
		rev = opts.Revision
	}
	if opts.Continue != "" {
		ct, err := decodeContinue(opts.Continue)
		if err != nil {
			return nil, err
		}
		key, rev = prefix+ct.Start, ct.Revision
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	out := &ListResult{}
	batch := opts.Limit
	if batch > 0 && opts.Match != nil && batch < 100 {
		// Filtering discards some keys; read ahead to fill a page in
		// fewer round trips.
		batch = 100
	}
	for {
		getOpts := []clientv3.OpOption{clientv3.WithRange(end)}
		if batch > 0 {
			getOpts = append(getOpts, clientv3.WithLimit(batch))
		}
		if rev > 0 {
			getOpts = append(getOpts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, key, getOpts...)
		if err != nil {
			return nil, mapEtcdErr(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		out.Revision = rev
		for i, kv := range resp.Kvs {
			obj := newObj()
			if err := s.decode(kv.Value, kv.ModRevision, obj); err != nil {
				return nil, fmt.Errorf("%s: %w", kv.Key, err)
			}
			if opts.Match != nil && !opts.Match(obj) {
				continue
			}
			out.Items = append(out.Items, obj)
			if opts.Limit > 0 && int64(len(out.Items)) == opts.Limit {
				more := i+1 < len(resp.Kvs) || resp.More
				if more {
					next := string(kv.Key) + "\x00"
					out.Continue = encodeContinue(rev, strings.TrimPrefix(next, prefix))
					if opts.Match == nil {
						n := resp.Count - int64(i+1)
						out.Remaining = &n
					}
				}
				return out, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
