package lab

import (
	"fmt"
	"os"
	"path/filepath"
)

// The lab's own helper processes are the binary that runs `kite up`,
// re-executed under the name kite-lab (a symlink <state-dir>/bin/kite-lab).
// Any binary importing this package becomes the helper when started under
// that name — the kite binary, and this package's test binary — so no
// command has to be registered for them.
//
//	kite-lab supervise STATE-DIR        the supervisor (supervisor.go)
//	kite-lab node-init STATE-DIR NODE   a node's mounts, in its new mount namespace (nodeinit.go)
//	kite-lab machine ROOT NAME -- CMD…  a lab node's file system with its own directories in
//	                                    ROOT, then CMD (namespace "machines" of the tests)
func init() {
	if filepath.Base(os.Args[0]) == helperName {
		os.Exit(helperMain(os.Args[1:]))
	}
}

func helperMain(args []string) int {
	var err error
	switch {
	case len(args) == 2 && args[0] == "supervise":
		err = supervise(args[1])
	case len(args) == 3 && args[0] == "node-init":
		err = nodeInit(args[1], args[2])
	case len(args) >= 5 && args[0] == "machine" && args[3] == "--":
		err = machineExec(args[1], args[2], args[4:])
	default:
		err = fmt.Errorf("bad arguments %q", args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		return 1
	}
	return 0
}
