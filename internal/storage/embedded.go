package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is a single-member etcd running inside this process. Its data
// lives under dir; it listens only on unix sockets in dir (peer, and client
// for debugging with etcdctl), plus ClientURL when set so that other kite
// servers can share it. The in-process client bypasses the network.
type Embedded struct {
	etcd   *embed.Etcd
	client *clientv3.Client
}

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	Dir string
	// ClientURL, when set (e.g. http://10.0.0.1:2379), is an extra client
	// listener other kite servers can use as --etcd-endpoints.
	ClientURL string
	// Progress is how often etcd tells watchers its current revision; it
	// drives watch bookmarks.
	Progress time.Duration
}

// StartEmbedded starts etcd and waits until it serves.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = "kite"
	ec.Dir = filepath.Join(cfg.Dir, "data")
	peer := url.URL{Scheme: "unix", Path: filepath.Join(cfg.Dir, "peer.sock")}
	client := url.URL{Scheme: "unix", Path: filepath.Join(cfg.Dir, "client.sock")}
	// Stale sockets from a previous run would make bind fail.
	_ = os.Remove(peer.Path)
	_ = os.Remove(client.Path)
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{peer}
	ec.ListenClientUrls = []url.URL{client}
	ec.AdvertiseClientUrls = []url.URL{client}
	if cfg.ClientURL != "" {
		u, err := url.Parse(cfg.ClientURL)
		if err != nil {
			return nil, fmt.Errorf("etcd client URL %q: %w", cfg.ClientURL, err)
		}
		ec.ListenClientUrls = append(ec.ListenClientUrls, *u)
		ec.AdvertiseClientUrls = append(ec.AdvertiseClientUrls, *u)
	}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	// A single member elects itself after one election timeout; etcd's
	// defaults (100 ms ticks, 1 s timeout) make that a random 0.1–1 s of
	// every start. Shorter ticks cost nothing on one machine.
	ec.TickMs, ec.ElectionMs = 10, 100
	ec.LogLevel = "error"
	ec.WatchProgressNotifyInterval = cfg.Progress
	if ec.WatchProgressNotifyInterval == 0 {
		ec.WatchProgressNotifyInterval = 10 * time.Second
	}
	// The API server compacts on its own schedule (see Compactor).
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "0"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready within 60s", cfg.Dir)
	}
	return &Embedded{etcd: e, client: v3client.New(e.Server)}, nil
}

// Client is an in-process etcd client.
func (e *Embedded) Client() *clientv3.Client { return e.client }

// Err reports fatal errors of the etcd server.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops etcd.
func (e *Embedded) Close() {
	e.client.Close()
	e.etcd.Close()
}

// Dial connects to an external etcd cluster.
func Dial(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	return c, nil
}
