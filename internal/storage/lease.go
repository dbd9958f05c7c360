package storage

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseCache shares one etcd lease among keys written with similar TTLs
// (events, mostly), instead of granting one lease per key. A lease is
// reused for a minute at most and granted with a little extra time so every
// key lives at least its TTL.
type leaseCache struct {
	client *clientv3.Client
	mu     sync.Mutex
	id     clientv3.LeaseID
	ttl    int64
	until  time.Time
}

func newLeaseCache(c *clientv3.Client) *leaseCache { return &leaseCache{client: c} }

const leaseReuse = time.Minute

func (l *leaseCache) get(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.id != 0 && l.ttl == ttl && now.Before(l.until) {
		return l.id, nil
	}
	resp, err := l.client.Grant(ctx, ttl+int64(leaseReuse/time.Second))
	if err != nil {
		return 0, err
	}
	l.id, l.ttl, l.until = resp.ID, ttl, now.Add(leaseReuse)
	return l.id, nil
}
