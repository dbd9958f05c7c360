package lab

import (
	"os"
	"strconv"
	"strings"
)

// mountEntry is one line of /proc/<pid>/mountinfo.
type mountEntry struct {
	ID, Parent int
	Root       string // root of the mount within its file system
	Point      string // mount point
	FSType     string
	Source     string
}

// parseMountinfo reads the format of proc(5) /proc/<pid>/mountinfo:
// "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts",
// with octal escapes (\040) in paths.
func parseMountinfo(s string) []mountEntry {
	var out []mountEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		parent, _ := strconv.Atoi(f[1])
		out = append(out, mountEntry{ID: id, Parent: parent, Root: unescapeMount(f[3]), Point: unescapeMount(f[4]),
			FSType: f[sep+1], Source: unescapeMount(f[sep+2])})
	}
	return out
}

func readMountinfo(pid string) ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountinfo(string(data)), nil
}

// unescapeMount undoes the kernel's octal escaping of space, tab, newline
// and backslash.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// topSubmounts are the mount points strictly below dir that are not below
// another of them: binding each recursively reproduces everything mounted
// under dir.
func topSubmounts(mounts []mountEntry, dir string) []string {
	var subs []string
	for _, m := range mounts {
		if m.Point != dir && under(m.Point, dir) {
			subs = append(subs, m.Point)
		}
	}
	var top []string
	for _, s := range subs {
		nested := false
		for _, o := range subs {
			if o != s && under(s, o) {
				nested = true
			}
		}
		if !nested && !contains(top, s) {
			top = append(top, s)
		}
	}
	return top
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
