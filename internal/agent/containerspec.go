package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// commandLine is the process a container runs, as Kubernetes resolves it
// against the image: command replaces the entrypoint (and drops the
// image's cmd), args replace the cmd; $(VAR) in both is expanded with the
// pod's variables.
func commandLine(c *corev1.Container, img Image, env map[string]string) []string {
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(expandArgs(c.Command, env), expandArgs(c.Args, env)...)
	case len(c.Args) > 0:
		argv = append(slices.Clone(img.Entrypoint), expandArgs(c.Args, env)...)
	default:
		argv = append(slices.Clone(img.Entrypoint), img.Cmd...)
	}
	return argv
}

// processUser is the numeric user a container runs as: securityContext
// runAsUser/runAsGroup (the container's over the pod's), else the
// image's USER ("uid", "uid:gid", "name" or "name:group", names looked up
// in the image's /etc/passwd and /etc/group), plus the pod's
// supplementalGroups and fsGroup.
type processUser struct {
	UID, GID uint32
	Groups   []uint32
}

func containerUser(pod *corev1.Pod, c *corev1.Container, img Image) (processUser, error) {
	var u processUser
	var runAsUser, runAsGroup *int64
	psc := pod.Spec.SecurityContext
	if psc != nil {
		runAsUser, runAsGroup = psc.RunAsUser, psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			runAsUser = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			runAsGroup = sc.RunAsGroup
		}
	}
	userPart, groupPart, _ := strings.Cut(img.User, ":")
	switch {
	case runAsUser != nil:
		u.UID = uint32(*runAsUser)
		if e, ok := lookupPasswd(img.LowerDirs, "", u.UID); ok {
			u.GID = e.gid
		}
	case userPart != "":
		n, err := strconv.ParseUint(userPart, 10, 32)
		if err == nil {
			u.UID = uint32(n)
			if e, ok := lookupPasswd(img.LowerDirs, "", u.UID); ok {
				u.GID = e.gid
			}
		} else {
			e, ok := lookupPasswd(img.LowerDirs, userPart, 0)
			if !ok {
				return u, fmt.Errorf("image user %q: no such user in the image's /etc/passwd", userPart)
			}
			u.UID, u.GID = e.uid, e.gid
		}
	}
	switch {
	case runAsGroup != nil:
		u.GID = uint32(*runAsGroup)
	case groupPart != "" && runAsUser == nil:
		n, err := strconv.ParseUint(groupPart, 10, 32)
		if err == nil {
			u.GID = uint32(n)
		} else {
			gid, ok := lookupGroup(img.LowerDirs, groupPart)
			if !ok {
				return u, fmt.Errorf("image group %q: no such group in the image's /etc/group", groupPart)
			}
			u.GID = gid
		}
	}
	if psc != nil {
		for _, g := range psc.SupplementalGroups {
			u.Groups = append(u.Groups, uint32(g))
		}
		if psc.FSGroup != nil {
			u.Groups = append(u.Groups, uint32(*psc.FSGroup))
		}
	}
	return u, nil
}

type passwdEntry struct{ uid, gid uint32 }

// imageFile reads a file of the image: from the topmost layer that has it.
func imageFile(layers []string, name string) []byte {
	for i := len(layers) - 1; i >= 0; i-- {
		if data, err := os.ReadFile(filepath.Join(layers[i], name)); err == nil {
			return data
		}
	}
	return nil
}

// lookupPasswd finds a user by name, or by uid when name is empty.
func lookupPasswd(layers []string, name string, uid uint32) (passwdEntry, bool) {
	sc := bufio.NewScanner(bytes.NewReader(imageFile(layers, "etc/passwd")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 {
			continue
		}
		u, err1 := strconv.ParseUint(f[2], 10, 32)
		g, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if (name != "" && f[0] == name) || (name == "" && uint32(u) == uid) {
			return passwdEntry{uint32(u), uint32(g)}, true
		}
	}
	return passwdEntry{}, false
}

func lookupGroup(layers []string, name string) (uint32, bool) {
	sc := bufio.NewScanner(bytes.NewReader(imageFile(layers, "etc/group")))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 3 && f[0] == name {
			if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				return uint32(g), true
			}
		}
	}
	return 0, false
}

// specHash identifies a container's spec; an instance started from
// another spec (a changed image) is replaced.
func specHash(c *corev1.Container) string {
	// Only what changes the process: upstream hashes the whole container
	// minus resources; the image is the only such field a pod may change.
	data, _ := json.Marshal(struct {
		Name, Image        string
		Command, Args      []string
		Env                []corev1.EnvVar
		EnvFrom            []corev1.EnvFromSource
		WorkingDir         string
		Ports              []corev1.ContainerPort
		VolumeMounts       []corev1.VolumeMount
		SecurityContext    *corev1.SecurityContext
		TerminationMsgPath string
	}{c.Name, c.Image, c.Command, c.Args, c.Env, c.EnvFrom, c.WorkingDir, c.Ports, c.VolumeMounts, c.SecurityContext, c.TerminationMessagePath})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}
