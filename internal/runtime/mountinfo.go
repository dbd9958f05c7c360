package runtime

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// mountPoints returns the mount points of this process's mount namespace
// (from /proc/self/mountinfo), in mount order, duplicates included.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, unescapeMountinfo(fields[4]))
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) of
// mountinfo fields.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMountPoint reports whether path is a mount point.
func isMountPoint(path string) (bool, error) {
	path = filepath.Clean(path)
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	mps, err := mountPoints()
	if err != nil {
		return false, err
	}
	for _, mp := range mps {
		if mp == path {
			return true, nil
		}
	}
	return false, nil
}

// IsMountPoint reports whether path is a mount point of this process's
// mount namespace (for the agent's memory-backed volumes).
func IsMountPoint(path string) (bool, error) { return isMountPoint(path) }

// MountPointsUnder lists the mount points at or below dir, deepest
// (latest mounted) first: the order to unmount them in.
func MountPointsUnder(dir string) ([]string, error) {
	dir = filepath.Clean(dir)
	if p, err := filepath.EvalSymlinks(dir); err == nil {
		dir = p
	}
	mps, err := mountPoints()
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(mps) - 1; i >= 0; i-- {
		if mps[i] == dir || strings.HasPrefix(mps[i], dir+"/") {
			out = append(out, mps[i])
		}
	}
	return out, nil
}
