// Package kerneltest checks the service proxy against the real kernel:
// rules loaded in a throwaway network namespace, real packets from pod and
// client namespaces to listeners in pod namespaces. Tests only; see
// main_test.go for the topology and its address conventions.
package kerneltest
