package cni

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	kiteversion "kite/internal/version"
)

// lockTimeout bounds the wait for the IPAM lock; past it the plugin
// answers "try again later" (code 11).
const lockTimeout = 20 * time.Second

// Main runs the kite CNI plugin: the command in CNI_COMMAND (ADD, DEL,
// CHECK, GC, STATUS, VERSION), the other CNI_* variables, the network
// config on stdin, the result on stdout. It returns on success. On failure
// it prints the spec's error object on stdout — {"cniVersion", "code",
// "msg", "details"} — and a line on stderr, and exits with status 1; run
// with no environment at all, that is code 4 naming CNI_COMMAND.
func Main() {
	if code := run(os.Stdout, os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// run is Main without the exit, for tests.
func run(stdout, stderr io.Writer) int {
	p := &plugin{cniVersion: latestVersion()}
	e := skel.PluginMainFuncsWithError(skel.CNIFuncs{
		Add:    p.add,
		Del:    p.del,
		Check:  p.check,
		GC:     p.gc,
		Status: p.status,
	}, version.PluginSupports(SupportedVersions()...), "")
	if e == nil {
		return 0
	}
	if os.Getenv("CNI_COMMAND") == "" {
		fmt.Fprintf(stderr, "%s: %s\n", about(), e.Msg)
		fmt.Fprintln(stderr, "It is run by a container runtime with CNI_COMMAND and the other CNI_* variables set and the network config on stdin.")
	} else {
		fmt.Fprintf(stderr, "kite CNI %s: %v\n", os.Getenv("CNI_COMMAND"), e)
	}
	if err := writeError(stdout, p.cniVersion, e); err != nil {
		fmt.Fprintln(stderr, "write error JSON:", err)
	}
	return 1
}

func about() string {
	return fmt.Sprintf("kite CNI plugin %s (CNI spec %s)", kiteversion.Version, strings.Join(SupportedVersions(), ", "))
}

func latestVersion() string {
	v := SupportedVersions()
	return v[len(v)-1]
}

// plugin is one invocation.
type plugin struct {
	// cniVersion is the config's version once it is known, for the error
	// object.
	cniVersion string
}

// parse decodes the config and remembers its version.
func (p *plugin) parse(args *skel.CmdArgs) (*NetConf, error) {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, err
	}
	if conf.CNIVersion != "" {
		p.cniVersion = conf.CNIVersion
	}
	return conf, nil
}
