package storage

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Event is one change seen by Watch. Type is watch.Added, Modified,
// Deleted, Bookmark (Object nil, Revision the store's revision) or Error
// (Err set; the watch ends after it).
type Event struct {
	Type     watch.EventType
	Object   runtime.Object
	Revision int64
	Err      error
}

// Watch streams the changes under prefix after revision rev. With a match
// function the stream is as seen through that filter: an object that starts
// matching is Added, one that stops matching is Deleted (carrying its last
// matching state). The channel closes when ctx ends or after an Error event;
// ErrCompacted is reported when rev is older than etcd's history.
func (s *Store) Watch(ctx context.Context, prefix string, rev int64, newObj func() runtime.Object, match func(runtime.Object) bool) <-chan Event {
	out := make(chan Event, 100)
	go func() {
		defer close(out)
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		wch := s.client.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1),
			clientv3.WithPrevKV(), clientv3.WithProgressNotify())
		send := func(e Event) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(Event{Type: watch.Error, Err: fmt.Errorf("%w: oldest is %d, asked for %d", ErrCompacted, resp.CompactRevision, rev)})
				return
			}
			if err := resp.Err(); err != nil {
				send(Event{Type: watch.Error, Err: err})
				return
			}
			if resp.IsProgressNotify() {
				if !send(Event{Type: watch.Bookmark, Revision: resp.Header.Revision}) {
					return
				}
				continue
			}
			for _, ev := range resp.Events {
				e, ok, err := s.translate(ev, newObj, match)
				if err != nil {
					send(Event{Type: watch.Error, Err: err})
					return
				}
				if ok && !send(e) {
					return
				}
			}
		}
	}()
	return out
}

// translate turns an etcd event into the event a filtered watcher sees.
func (s *Store) translate(ev *clientv3.Event, newObj func() runtime.Object, match func(runtime.Object) bool) (Event, bool, error) {
	rev := ev.Kv.ModRevision
	var cur, prev runtime.Object
	if ev.Type == clientv3.EventTypePut {
		cur = newObj()
		if err := s.decode(ev.Kv.Value, rev, cur); err != nil {
			return Event{}, false, fmt.Errorf("%s: %w", ev.Kv.Key, err)
		}
	}
	if ev.PrevKv != nil && (ev.Type == clientv3.EventTypeDelete || match != nil) {
		prev = newObj()
		// A deleted or filtered-out object is reported at the revision of
		// the change, so clients can resume after it.
		if err := s.decode(ev.PrevKv.Value, rev, prev); err != nil {
			return Event{}, false, fmt.Errorf("%s: %w", ev.Kv.Key, err)
		}
	}
	matches := func(o runtime.Object) bool { return o != nil && (match == nil || match(o)) }
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		if prev == nil {
			// History without the previous value: report what we can.
			return Event{}, false, nil
		}
		return Event{Type: watch.Deleted, Object: prev, Revision: rev}, matches(prev), nil
	case ev.IsCreate() || match == nil:
		t := watch.Modified
		if ev.IsCreate() {
			t = watch.Added
		}
		return Event{Type: t, Object: cur, Revision: rev}, matches(cur), nil
	}
	curOK, prevOK := matches(cur), matches(prev)
	switch {
	case curOK && prevOK:
		return Event{Type: watch.Modified, Object: cur, Revision: rev}, true, nil
	case curOK:
		return Event{Type: watch.Added, Object: cur, Revision: rev}, true, nil
	case prevOK:
		return Event{Type: watch.Deleted, Object: prev, Revision: rev}, true, nil
	}
	return Event{}, false, nil
}
