package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LastReservedFile is the name, inside a DiskStore's directory, of the file
// holding the last address reserved.
const LastReservedFile = "last_reserved_ip"

// DiskStore keeps reservations as files in one directory: a file per
// reserved address, named by the address and holding the container ID and
// the interface name on two lines, plus LastReservedFile. The lock is an
// exclusive flock(2) on the directory itself, so it needs no file of its
// own and dies with the process that holds it.
//
// Files are written under a temporary name and then linked into place, so a
// crash never leaves a half-written reservation.
type DiskStore struct {
	dir  string
	lock *os.File
}

var _ Store = (*DiskStore)(nil)

// NewDiskStore returns a store in dir, creating the directory if needed.
func NewDiskStore(dir string) (*DiskStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ipam data dir: %w", err)
	}
	return &DiskStore{dir: dir}, nil
}

// Dir is the store's directory.
func (s *DiskStore) Dir() string { return s.dir }

// Lock takes the directory's flock, polling until ctx is done.
func (s *DiskStore) Lock(ctx context.Context) error {
	if s.lock != nil {
		return fmt.Errorf("ipam store %s: already locked by this store", s.dir)
	}
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("ipam store: %w", err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			s.lock = f
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return fmt.Errorf("ipam store: lock %s: %w", s.dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return fmt.Errorf("%w: %s stayed locked by another invocation (%v)", ErrBusy, s.dir, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Unlock releases the lock taken by Lock.
func (s *DiskStore) Unlock() error {
	if s.lock == nil {
		return fmt.Errorf("ipam store %s: unlock without lock", s.dir)
	}
	f := s.lock
	s.lock = nil
	// Closing the only descriptor of the open file releases the flock.
	return f.Close()
}

// Reservations reads every reservation file. A file that cannot be parsed
// counts as reserved by the empty Attachment, so it is never handed out
// again but GC frees it.
func (s *DiskStore) Reservations() (map[netip.Addr]Attachment, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("ipam store: %w", err)
	}
	out := map[netip.Addr]Attachment{}
	for _, e := range entries {
		addr, err := netip.ParseAddr(e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ipam store: %w", err)
		}
		out[addr] = parseHolder(data)
	}
	return out, nil
}

func parseHolder(data []byte) Attachment {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var a Attachment
	a.ContainerID = strings.TrimSpace(lines[0])
	if len(lines) > 1 {
		a.IfName = strings.TrimSpace(lines[1])
	}
	return a
}

// Reserve writes addr's file; it fails if the file exists.
func (s *DiskStore) Reserve(addr netip.Addr, a Attachment) error {
	if err := s.writeNew(addr.String(), a.ContainerID+"\n"+a.IfName+"\n", false); err != nil {
		return fmt.Errorf("ipam store: reserve %s for %s: %w", addr, a, err)
	}
	if err := s.writeNew(LastReservedFile, addr.String()+"\n", true); err != nil {
		return fmt.Errorf("ipam store: %w", err)
	}
	return nil
}

// writeNew writes name through a temporary file, replacing an existing file
// only when replace is set.
func (s *DiskStore) writeNew(name, content string, replace bool) error {
	tmp, err := os.CreateTemp(s.dir, ".tmp-"+name+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	dst := filepath.Join(s.dir, name)
	if replace {
		return os.Rename(tmp.Name(), dst)
	}
	return os.Link(tmp.Name(), dst)
}

// Release removes addr's file.
func (s *DiskStore) Release(addr netip.Addr) error {
	if err := os.Remove(filepath.Join(s.dir, addr.String())); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ipam store: release %s: %w", addr, err)
	}
	return nil
}

// LastReserved reads LastReservedFile; a missing or unreadable address is
// the zero Addr.
func (s *DiskStore) LastReserved() (netip.Addr, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, LastReservedFile))
	if errors.Is(err, os.ErrNotExist) {
		return netip.Addr{}, nil
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ipam store: %w", err)
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(string(data)))
	if err != nil {
		return netip.Addr{}, nil
	}
	return addr, nil
}

// CheckWritable creates and removes a file in the store's directory.
func (s *DiskStore) CheckWritable() error {
	f, err := os.CreateTemp(s.dir, ".probe-")
	if err != nil {
		return fmt.Errorf("ipam data dir %s is not writable: %w", s.dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
