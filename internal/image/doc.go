// Package image is the machine's image store: OCI images kept by content
// on disk, shared by every kite agent on the machine (every lab node), and
// unpacked once per layer for overlayfs.
//
// Images arrive three ways, all usable offline except the first:
//
//   - Pull, from a registry through go-containerregistry, as a container's
//     imagePullPolicy says (Always, IfNotPresent, Never), with pull
//     secrets (DockerConfigKeychain);
//   - Load, from a docker-archive or OCI archive file (`kite image load`);
//   - EnsureBuiltins, made locally from the kite binary and busybox: the
//     kuard demo (KuardImage, also named UpstreamKuardImage so the seed's
//     commands run verbatim), the system image for kite's own pods
//     (SystemImage) and busybox (BusyboxImage).
//
// The agent then calls Get for the image config (entrypoint, cmd, env,
// working directory, user, exposed ports) and Unpack for the layer
// directories to stack as overlayfs lower dirs.
//
// # Layout
//
// The root (default /var/lib/kite/images) is an OCI image layout, which
// other tools can read, plus kite's own directories:
//
//	oci-layout, index.json   the layout; index.json has one entry per name
//	                         (annotation org.opencontainers.image.ref.name,
//	                         the full name as Normalize writes it) pointing
//	                         at an image manifest; images loaded without a
//	                         name have an entry without one
//	blobs/sha256/<hex>       manifests, configs and layers, as they came
//	layers/<diffID hex>/     a layer unpacked in overlayfs's format, never
//	                         written again
//	builtins.json            what the built-in images were built from
//	tmp/                     work in progress
//	locks/                   flock files
//
// Blobs, layer directories and index.json appear by rename, complete or
// not at all, so readers take no lock. Writers of content (pull, load,
// built-ins, unpack) share a lock that garbage collection (Remove, and
// after a pull or rebuild moved a name) takes exclusively; index.json's
// read-modify-writes are serialized by a lock of their own. These are
// flock(2)s, so they hold between processes and vanish with a crashed
// holder; what a crash leaves in tmp/ goes with the next collection.
//
// Unpacked layers are deleted only by Prune, which is told which of them
// containers still use: overlayfs must not see a lower layer change.
//
// # Errors
//
// ErrNotFound (IsNotFound), ErrImageNeverPull, ErrImagePull (a
// *PullError carrying the registry's error; IsPullError) and
// ErrInvalidName; the last three read as kubelet's reasons, for the
// container's waiting state.
package image
