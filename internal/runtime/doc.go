// Package runtime is kite's container runtime: pod sandboxes (pinned
// namespaces) and containers run by the runc binary, behind Interface, with
// an in-memory Fake for the agent's unit tests.
//
// # State
//
// Nothing is kept in memory. A Runtime reads everything back from disk and
// from runc, so a new one over the same directories (an agent restart)
// adopts what an earlier one made:
//
//	RunDir/netns/<sandbox>        pinned network namespace (bind mount, as `ip netns add`)
//	RunDir/utsns/<sandbox>        pinned UTS namespace, hostname set
//	RunDir/ipcns/<sandbox>        pinned IPC namespace
//	RunDir/sandboxes/<id>.json    the Sandbox record
//	RunDir/runc/                  runc's state (runc --root)
//	Root/containers/<id>/         the OCI bundle and everything else of one container:
//	    config.json  rootfs/ (overlay: LowerDirs + upper/ + work/)
//	    kite.json    the caller's config (sandbox, labels, log path)
//	    shim.json    shim.lock (flock held by the live shim; its pid)  shim.log
//	    init.pid     started    exit.json (exit code, OOM, finish time)  container.log
//	    attach.sock  the shim's attach socket (console.sock while a TTY is created)
//
// RunDir is meant for a tmpfs (namespaces and runc state die with the
// machine); Root for a disk. After a reboot a container's directory
// remains and reports an exited container whose exit status is lost.
//
// # Sandboxes
//
// CreateSandbox starts a helper process (this binary re-executed, see
// below) with CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC. The helper sets the
// hostname in its new UTS namespace and brings lo up; the runtime
// bind-mounts the helper's /proc/<pid>/ns/{net,uts,ipc} onto the files
// above and lets it exit. No thread of the agent ever switches namespaces.
// The agent runs CNI with Sandbox.NetNSPath. Containers join the three
// namespaces by path (OCI linux.namespaces) and get their own PID and mount
// namespaces.
//
// # Containers and the shim
//
// The agent must not need a goroutine, or even a wait, per container, and
// a container's output and exit status must survive agent restarts. So each
// container has a shim: a small process, again this binary re-executed,
// that outlives the agent.
//
//   - CreateContainer writes the bundle, mounts the overlay root file
//     system and starts the shim through an intermediate process that
//     starts it in a new session and exits at once (the double fork of
//     daemons): the shim is nobody's child in the agent.
//   - The shim takes shim.lock (a flock held until it exits: "the shim is
//     alive" is a non-blocking lock attempt, immune to pid reuse), makes
//     itself a child subreaper, and runs `runc create --pid-file` with
//     stdout and stderr on two pipes. runc passes them to the container's
//     process and exits; the container's init, orphaned, is reparented to
//     the shim. The shim reports "ok" (or runc's error) on a pipe the agent
//     reads, and CreateContainer returns.
//   - The shim copies both pipes into the log file in the CRI format
//     (see crilog.go), one write per read, P entries for unfinished lines.
//     On SIGUSR1 it opens the log path afresh (ReopenContainerLog: the
//     agent renamed the file away to rotate it).
//   - Stdin and TTY (`kubectl run -it`, `kubectl attach`): with Stdin the
//     container's stdin is a third pipe whose write end the shim keeps.
//     With TTY the shim runs `runc create --console-socket` and receives
//     the terminal's master instead of pipes; its output is logged as
//     stdout. The shim serves attach.sock (attach.go): attachers' input
//     goes to stdin, window sizes to the terminal, and the output read
//     after they connected to each of them; the shim closes them once
//     exit.json is written, which ends Attach. StdinOnce closes stdin
//     (types ^D on a terminal) when the first attacher with stdin ends
//     its input or goes. Sockets are bound and dialled as
//     /proc/<pid>/fd/<dir fd>/name: a container directory may be deeper
//     than a socket address's 108 bytes.
//   - StartContainer is `runc start`. StopContainer is `runc kill TERM`,
//     a poll for the exit up to the grace period, then `runc kill KILL`.
//   - When the init exits, the shim reaps it (wait4: exit code, or 128+n
//     for signal n), reads the cgroup's oom_kill counter, drains the
//     pipes, writes exit.json atomically and exits.
//   - ContainerStatus trusts exit.json first, then `runc state`. A stopped
//     container without exit.json and without a live shim has lost its exit
//     status (ExitCode -1, Message says why).
//   - RemoveContainer kills what still runs, `runc delete --force` (which
//     removes the cgroup CgroupParent/<id>), unmounts the root file
//     system and deletes the directory.
//
// # Exec
//
// Without a TTY, Exec runs `runc exec` in the foreground: runc copies the
// streams and exits with the command's status. With a TTY, runc can only
// hand the terminal to its caller when detached: `runc exec -d -t
// --console-socket` sends the pseudo-terminal master over a unix socket
// (SCM_RIGHTS). The detached command's exit status would be lost, so runc
// is started by an exec helper (this binary again) that is a child
// subreaper: the command is reparented to it, and it reports the exit code
// on stdout. Exec copies between the master and the streams and applies
// Resize to the master.
//
// # The helper binary
//
// The shim, the intermediate process, the namespace holder and the exec
// helper are Config.ShimPath (default: the running executable) started
// with argv[0] "kite-runtime-shim". This package's init recognises that
// name and runs the helper instead of the program, so any binary importing
// the package (kite, or a test binary) is its own shim with no flag or
// subcommand to wire; under any other argv[0] the init does nothing.
//
// # Not (yet) done
//
// Replaying output from before an attach (a TTY shell's first prompt is
// only in the log: kubectl says to press enter), seccomp and
// AppArmor profiles, user namespaces, pausing, resource updates of a
// running container, and image handling (the caller gives layer
// directories).
package runtime
