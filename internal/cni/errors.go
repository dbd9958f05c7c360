package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/types"

	"kite/internal/cni/ipam"
)

// Error codes. 0–99 are the CNI spec's (types.Err*); the plugin uses 4
// (environment, from skel), 6 (undecodable JSON), 7 (invalid network
// config), 8 (bad network namespace), 11 (try again later: the IPAM lock
// is busy) and 50 (STATUS: not available). Codes from 100 are kite's own.
const (
	// CodeRangeExhausted: every pod address of the subnet is in use.
	CodeRangeExhausted uint = 101
	// CodeIPAMStore: the IPAM data directory could not be read or written.
	CodeIPAMStore uint = 102
	// CodeHostNetwork: the bridge, the host veth or a sysctl of the host
	// namespace could not be set up or removed.
	CodeHostNetwork uint = 103
	// CodeContainerNetwork: the interface inside the container's
	// namespace could not be set up (or its name is taken).
	CodeContainerNetwork uint = 104
	// CodeCheckFailed: CHECK found the attachment missing or different
	// from its result.
	CodeCheckFailed uint = 105
)

// newError is a CNI error with a short message and the underlying error
// as details.
func newError(code uint, msg string, err error) *types.Error {
	e := types.NewError(code, msg, "")
	if err != nil {
		e.Details = err.Error()
	}
	return e
}

// errorf is a CNI error whose message says it all.
func errorf(code uint, format string, args ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, args...), "")
}

// ipamError maps an allocator error to its code: exhaustion and a busy
// lock have their own, everything else is a store failure.
func ipamError(op string, err error) *types.Error {
	switch {
	case errors.Is(err, ipam.ErrExhausted):
		return errorf(CodeRangeExhausted, "%v", err)
	case errors.Is(err, ipam.ErrBusy):
		return newError(types.ErrTryAgainLater, op+": the IPAM store is locked by another invocation, try again later", err)
	default:
		return newError(CodeIPAMStore, op, err)
	}
}

// errorJSON is the spec's error object. types.Error lacks cniVersion.
type errorJSON struct {
	CNIVersion string `json:"cniVersion"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

// writeError writes e as the spec's error JSON.
func writeError(w io.Writer, cniVersion string, e *types.Error) error {
	data, err := json.MarshalIndent(errorJSON{CNIVersion: cniVersion, Code: e.Code, Msg: e.Msg, Details: e.Details}, "", "    ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
