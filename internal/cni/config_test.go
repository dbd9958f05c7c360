package cni

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf string
		code uint   // 0 = valid
		want string // in the message, or a check on the result
	}{
		{name: "minimal with defaults",
			conf: `{"cniVersion":"1.0.0","name":"kite","type":"kite","ipam":{"subnet":"10.244.1.0/24"}}`},
		{name: "everything",
			conf: `{"cniVersion":"0.3.1","name":"k","type":"kite","bridge":"br-pods","mtu":9000,"ipam":{"type":"kite","subnet":"10.244.1.0/24","gateway":"10.244.1.254","dataDir":"/tmp/x"},"dns":{"nameservers":["10.96.0.10"]},"capabilities":{"portMappings":true},"runtimeConfig":{"foo":1}}`},
		{name: "not JSON", conf: `{"name":`, code: 7, want: "invalid network config"},
		{name: "wrong type", conf: `{"name":"k","mtu":"big","ipam":{"subnet":"10.244.1.0/24"}}`, code: 7, want: "invalid network config"},
		{name: "no name", conf: `{"ipam":{"subnet":"10.244.1.0/24"}}`, code: 7, want: "name is missing"},
		{name: "no subnet", conf: `{"name":"k","ipam":{}}`, code: 7, want: `invalid network config "k": ipam.subnet is missing`},
		{name: "no ipam at all", conf: `{"name":"k"}`, code: 7, want: "ipam.subnet is missing"},
		{name: "subnet not a CIDR", conf: `{"name":"k","ipam":{"subnet":"10.244.1.0"}}`, code: 7, want: `ipam.subnet "10.244.1.0" is not a CIDR`},
		{name: "subnet with host bits", conf: `{"name":"k","ipam":{"subnet":"10.244.1.9/24"}}`, code: 7, want: "did you mean 10.244.1.0/24"},
		{name: "subnet /31", conf: `{"name":"k","ipam":{"subnet":"10.244.1.0/31"}}`, code: 7, want: "too small"},
		{name: "IPv6", conf: `{"name":"k","ipam":{"subnet":"fd00::/64"}}`, code: 7, want: "only IPv4"},
		{name: "gateway outside", conf: `{"name":"k","ipam":{"subnet":"10.244.1.0/24","gateway":"10.0.0.1"}}`, code: 7, want: "not a host address"},
		{name: "gateway not an IP", conf: `{"name":"k","ipam":{"subnet":"10.244.1.0/24","gateway":"x"}}`, code: 7, want: `ipam.gateway "x"`},
		{name: "other IPAM plugin", conf: `{"name":"k","ipam":{"type":"host-local","subnet":"10.244.1.0/24"}}`, code: 7, want: "own IPAM"},
		{name: "relative data dir", conf: `{"name":"k","ipam":{"subnet":"10.244.1.0/24","dataDir":"state"}}`, code: 7, want: "not an absolute path"},
		{name: "MTU too small", conf: `{"name":"k","mtu":10,"ipam":{"subnet":"10.244.1.0/24"}}`, code: 7, want: "mtu 10"},
		{name: "bridge name too long", conf: `{"name":"k","bridge":"a-very-long-bridge","ipam":{"subnet":"10.244.1.0/24"}}`, code: 7, want: "longer than 15"},
		{name: "bridge name with slash", conf: `{"name":"k","bridge":"a/b","ipam":{"subnet":"10.244.1.0/24"}}`, code: 7, want: "contains '/'"},
	} {
		c, err := ParseConfig([]byte(tc.conf))
		if tc.code == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var e *types.Error
		if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Error(), tc.want) {
			t.Errorf("%s: ParseConfig = %v, %v; want code %d with %q", tc.name, c, err, tc.code, tc.want)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"pods","ipam":{"subnet":"10.244.3.0/24"},"cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Bridge != "cni0" || c.MTU != 1500 || c.IPAM.DataDir != "/var/lib/cni/networks/pods" || c.IPAM.Gateway != "10.244.3.1" {
		t.Errorf("defaults: bridge %q mtu %d dataDir %q gateway %q", c.Bridge, c.MTU, c.IPAM.DataDir, c.IPAM.Gateway)
	}
	if c.Range().Size() != 253 {
		t.Errorf("range size %d", c.Range().Size())
	}
	if len(c.ValidAttachments) != 1 || c.ValidAttachments[0].ContainerID != "a" {
		t.Errorf("the legacy GC key was not read: %v", c.ValidAttachments)
	}
}

func TestListConfig(t *testing.T) {
	data, err := ListConfig{Subnet: "10.244.2.0/24", MTU: 1450, PortMap: true,
		DNS: types.DNS{Nameservers: []string{"10.96.0.10"}}}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		t.Fatalf("libcni rejects the conflist: %v\n%s", err, data)
	}
	if l.Name != "kite" || l.CNIVersion != "1.0.0" || len(l.Plugins) != 2 {
		t.Fatalf("conflist %s", data)
	}
	if l.Plugins[0].Network.Type != "kite" || l.Plugins[1].Network.Type != "portmap" || !l.Plugins[1].Network.Capabilities["portMappings"] {
		t.Errorf("plugins: %s", data)
	}
	// The kite entry, as libcni will hand it to the plugin, parses.
	var kite map[string]any
	json.Unmarshal(l.Plugins[0].Bytes, &kite)
	kite["name"], kite["cniVersion"] = l.Name, l.CNIVersion
	b, _ := json.Marshal(kite)
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != 1450 || c.IPAM.Subnet != "10.244.2.0/24" || c.DNS.Nameservers[0] != "10.96.0.10" {
		t.Errorf("parsed back: %+v", c)
	}
	if _, err := (ListConfig{Subnet: "nonsense"}).JSON(); err == nil {
		t.Errorf("ListConfig with a bad subnet rendered")
	}
}

func TestGCAttachmentList(t *testing.T) {
	for conf, want := range map[string]bool{
		`{"name":"k","ipam":{"subnet":"10.244.1.0/24"}}`:                                  false,
		`{"name":"k","ipam":{"subnet":"10.244.1.0/24"},"cni.dev/valid-attachments":null}`: true,
		`{"name":"k","ipam":{"subnet":"10.244.1.0/24"},"cni.dev/valid-attachments":[]}`:   true,
		`{"name":"k","ipam":{"subnet":"10.244.1.0/24"},"cni.dev/attachments":[]}`:         true,
	} {
		c, err := ParseConfig([]byte(conf))
		if err != nil || c.hasAttachmentList != want {
			t.Errorf("%s: hasAttachmentList = %v (%v), want %v", conf, c.hasAttachmentList, err, want)
		}
	}
}
