package kuard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"

	"k8s.io/klog/v2"
)

// probe answers a liveness or readiness probe from its switch: 200 "ok",
// or 503 "fail" while switched to failing.
func probe(failing *atomic.Bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "fail")
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// handleSwitch sets a probe's switch and answers with the new state, as
// "<probe>: ok" or "<probe>: fail".
func (s *Server) handleSwitch(name string, sw *atomic.Bool, fail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		old := sw.Swap(fail)
		if old != fail {
			klog.FromContext(r.Context()).WithName("kuard").Info("probe switched", "probe", name, "failing", fail, "by", r.RemoteAddr)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "%s: %s\n", name, state(fail))
	}
}

// postOnly answers any method but POST on a switch with 405 and the
// command that works from busybox.
func postOnly(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, fmt.Sprintf("%s changes state and needs POST, e.g. wget -q -O - --post-data= http://%s%s",
			path, r.Host, path), http.StatusMethodNotAllowed)
	}
}

func state(failing bool) string {
	if failing {
		return "fail"
	}
	return "ok"
}

// writeJSON writes v as JSON and a newline: compact, or indented for
// answers people read with wget more than programs do.
func writeJSON(w http.ResponseWriter, code int, v any, indent bool) {
	var data []byte
	var err error
	if indent {
		data, err = json.MarshalIndent(v, "", "  ")
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}
