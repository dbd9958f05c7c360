// Package testutil holds helpers shared by kite's tests.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// EnvInNetns marks a process already running in a private namespace.
const EnvInNetns = "KITE_IN_NETNS"

// EnvNetnsChild marks the processes of a test binary MainInNetns
// re-executed (and what they start): they are inside already.
const EnvNetnsChild = "KITE_NETNS_CHILD"

// MainInNetns runs a package's tests inside a fresh network and mount
// namespace, re-executing the test binary there unless it already is (as
// under hack/netns.sh). Only loopback exists inside, so nothing a test
// sends can leave the machine, and every link, route, rule and mount it
// makes disappears with it. Without root the tests are skipped.
func MainInNetns(m *testing.M) {
	// Every test binary gets namespaces of its own, also under
	// hack/netns.sh: packages run in parallel, and one's mounts, links or
	// rules must not show in another's before/after comparisons.
	// Processes a re-executed test starts (helpers, the binary run inside
	// an image) inherit the marker: they are inside already.
	if os.Getenv(EnvNetnsChild) != "" {
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "SKIP: these tests need root, to run in their own network namespace")
		os.Exit(0)
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--propagation", "private", "--",
		"sh", "-c", `ip link set lo up && exec "$0" "$@"`, os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), EnvInNetns+"=1", EnvNetnsChild+"="+os.Args[0])
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "re-exec in a new network namespace:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// InNetns reports whether this process runs in the private namespace
// MainInNetns (or hack/netns.sh) made.
func InNetns() bool { return os.Getenv(EnvInNetns) == "1" }
