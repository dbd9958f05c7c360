// Package kerneltest holds the kite CNI plugin's kernel tests: real
// network namespaces for pods, a real bridge, veths and routes, the plugin
// driven through libcni as a container runtime drives it. The test binary
// is also the plugin: linked into a temporary CNI bin dir as "kite", it
// runs cni.Main (see main_test.go). Everything happens inside the fresh
// network and mount namespace testutil.MainInNetns makes.
//
// Address conventions: each test uses its own bridge (kt<N>) and subnet
// 10.244.<N>.0/24 (or a smaller one), inside that namespace only.
package kerneltest
