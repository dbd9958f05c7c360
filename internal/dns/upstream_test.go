package dns

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUpstreams(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.244.1.7")}
	for _, tc := range []struct {
		name      string
		files     map[string]string
		listen    string
		upstreams []string
		want      []string
		wantFrom  string
		wantErr   bool
	}{
		{name: "resolv.conf", files: map[string]string{"/r": "# c\nsearch example.org\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:1\n"},
			want: []string{"192.0.2.53:53", "[2001:db8::53]:53"}, wantFrom: "/r"},
		{name: "systemd-resolved stub", files: map[string]string{"/r": "nameserver 127.0.0.53\noptions edns0\n", "/s": "nameserver 192.0.2.1\nnameserver 192.0.2.2\n"},
			want: []string{"192.0.2.1:53", "192.0.2.2:53"}, wantFrom: "/s"},
		{name: "any loopback is a stub", files: map[string]string{"/r": "nameserver 127.0.0.1\nnameserver ::1\n", "/s": "nameserver 192.0.2.1\n"},
			want: []string{"192.0.2.1:53"}, wantFrom: "/s"},
		{name: "stub without its list", files: map[string]string{"/r": "nameserver 127.0.0.53\n"}, wantErr: true},
		{name: "loopback mixed with others is dropped", files: map[string]string{"/r": "nameserver 127.0.0.1\nnameserver 192.0.2.1\n"},
			want: []string{"192.0.2.1:53"}, wantFrom: "/r"},
		{name: "ourselves on every address", files: map[string]string{"/r": "nameserver 10.244.1.7\nnameserver 192.0.2.1\n"},
			want: []string{"192.0.2.1:53"}, wantFrom: "/r"},
		{name: "ourselves on a port elsewhere is someone else", listen: "0.0.0.0:5353", files: map[string]string{"/r": "nameserver 10.244.1.7\n"},
			want: []string{"10.244.1.7:53"}, wantFrom: "/r"},
		{name: "configured, minus ourselves", listen: "127.0.0.1:5353", upstreams: []string{"127.0.0.1:5353", "127.0.0.2:5353", "192.0.2.9"},
			want: []string{"127.0.0.2:5353", "192.0.2.9:53"}, wantFrom: "config"},
		{name: "no file", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := upstreamSource{
				readFile: func(p string) ([]byte, error) {
					if c, ok := tc.files[p]; ok {
						return []byte(c), nil
					}
					return nil, os.ErrNotExist
				},
				localAddrs: func() []netip.Addr { return local },
			}
			cfg := Config{ResolvConf: "/r", StubResolvConf: "/s", Listen: ":53", Upstreams: tc.upstreams}
			if tc.listen != "" {
				cfg.Listen = tc.listen
			}
			got, from, err := src.upstreams(cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) || from != tc.wantFrom && !tc.wantErr {
				t.Errorf("upstreams = %q from %q, want %q from %q", got, from, tc.want, tc.wantFrom)
			}
		})
	}
}
