package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The store is shared by every agent on a machine (every lab node), so
// its locks are flock(2)s on files under locks/: they work between
// processes and, being per open file, between goroutines of one process,
// and they die with their holder.
//
//   - content.lock: shared by everything that writes blobs or unpacks
//     layers (pull, load, built-ins, unpack); exclusive for garbage
//     collection and removal, which therefore never delete what a writer
//     is about to reference.
//   - index.lock: exclusive around each read-modify-write of index.json
//     (index.json itself is replaced by rename, so readers need no lock).
//   - builtins.lock: one built-in build at a time.
//   - layer-<diffID>.lock: one unpack of a layer at a time; the others
//     wait and use its result.
const (
	lockContent  = "content.lock"
	lockIndex    = "index.lock"
	lockBuiltins = "builtins.lock"
)

type fileLock struct{ f *os.File }

// lockFile takes a flock of kind how (unix.LOCK_SH or unix.LOCK_EX) on
// path, creating the file, and waits for it until ctx is done.
func lockFile(ctx context.Context, path string, how int) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: lock: %w", err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return &fileLock{f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("image store: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("image store: waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// tryLockFile takes the lock if nobody holds a conflicting one; nil, nil
// when somebody does.
func tryLockFile(path string, how int) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("image store: lock %s: %w", path, err)
	}
	return &fileLock{f}, nil
}

// unlock releases the lock (closing the only descriptor drops the flock).
func (l *fileLock) unlock() {
	if l != nil {
		l.f.Close()
	}
}
