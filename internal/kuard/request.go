package kuard

import (
	"html/template"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Interface is a network interface and its addresses (CIDR notation).
type Interface struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
}

// HostInterfaces lists the interfaces of the calling process's network
// namespace that are up, with their addresses.
func HostInterfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Interface
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, err
		}
		i := Interface{Name: ifc.Name, Addrs: []string{}}
		for _, a := range addrs {
			i.Addrs = append(i.Addrs, a.String())
		}
		out = append(out, i)
	}
	return out, nil
}

// RequestInfo is what the request page shows: who serves (hostname, the
// pod's interfaces, the local address the connection reached) and who asks
// (the remote address as the server sees it — a client pod's own IP, since
// pod-to-pod traffic is not NATed — and the request line and headers).
type RequestInfo struct {
	Hostname   string      `json:"hostname"`
	Interfaces []Interface `json:"interfaces"`
	// InterfacesError is set when the interfaces could not be listed.
	InterfacesError string `json:"interfacesError,omitempty"`
	LocalAddr       string `json:"localAddr,omitempty"`
	RemoteAddr      string `json:"remoteAddr"`
	RemoteIP        string `json:"remoteIP"`
	Method          string `json:"method"`
	URL             string `json:"url"`
	Proto           string `json:"proto"`
	Host            string `json:"host"`
	// Headers are the request headers, names in canonical form.
	Headers map[string][]string `json:"headers"`
	Time    time.Time           `json:"time"`
}

func (s *Server) requestInfo(r *http.Request) RequestInfo {
	info := RequestInfo{
		Hostname:   s.cfg.Hostname,
		Interfaces: []Interface{},
		RemoteAddr: r.RemoteAddr,
		RemoteIP:   r.RemoteAddr,
		Method:     r.Method,
		URL:        r.URL.RequestURI(),
		Proto:      r.Proto,
		Host:       r.Host,
		Headers:    map[string][]string(r.Header.Clone()),
		Time:       time.Now().UTC(),
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		info.RemoteIP = host
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		info.LocalAddr = la.String()
	}
	if ifs, err := s.cfg.Interfaces(); err != nil {
		info.InterfacesError = err.Error()
	} else if ifs != nil {
		info.Interfaces = ifs
	}
	if info.Headers == nil {
		info.Headers = map[string][]string{}
	}
	return info
}

// wantsJSON: ?format=json, or an Accept header that prefers JSON to HTML.
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func (s *Server) handleRequestPage(w http.ResponseWriter, r *http.Request) {
	info := s.requestInfo(r)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, info, true)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// An error here comes from writing to the client; the status line is
	// gone and there is nobody left to tell.
	_ = pageTemplate.Execute(w, pageData{RequestInfo: info, HeaderNames: sortedKeys(info.Headers),
		Healthy: !s.failingHealthy.Load(), Ready: !s.failingReady.Load()})
}

type pageData struct {
	RequestInfo
	HeaderNames    []string
	Healthy, Ready bool
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pageTemplate is kite's own page; html/template escapes every value.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>kuard (kite) — {{.Hostname}}</title>
<style>
body{font-family:sans-serif;margin:2em;max-width:60em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
code{background:#f4f4f4}.ok{color:#070}.fail{color:#b00}
</style></head><body>
<h1>{{.Hostname}}</h1>
<p>kite's kuard-compatible demo app (not the upstream kuard image).</p>
<h2>This pod</h2>
<table><tr><th>interface</th><th>addresses</th></tr>
{{range .Interfaces}}<tr><td>{{.Name}}</td><td>{{range .Addrs}}<code>{{.}}</code> {{end}}</td></tr>
{{end}}</table>
{{with .InterfacesError}}<p class="fail">interfaces: {{.}}</p>{{end}}
<p>Connection reached <code>{{.LocalAddr}}</code>.</p>
<h2>Your request</h2>
<p>From <code>{{.RemoteAddr}}</code> — the address this pod sees. Between pods there is no NAT: this is the client pod's own IP.</p>
<p><code>{{.Method}} {{.URL}} {{.Proto}}</code>, Host <code>{{.Host}}</code></p>
<table><tr><th>header</th><th>value</th></tr>
{{range $name := .HeaderNames}}<tr><td>{{$name}}</td><td>{{range index $.Headers $name}}<code>{{.}}</code> {{end}}</td></tr>
{{end}}</table>
<h2>Probes</h2>
<p>/healthy: <b class="{{if .Healthy}}ok{{else}}fail{{end}}">{{if .Healthy}}ok{{else}}fail{{end}}</b>
<form style="display:inline" method="post" action="/healthy/fail"><button>fail</button></form>
<form style="display:inline" method="post" action="/healthy/ok"><button>ok</button></form></p>
<p>/ready: <b class="{{if .Ready}}ok{{else}}fail{{end}}">{{if .Ready}}ok{{else}}fail{{end}}</b>
<form style="display:inline" method="post" action="/ready/fail"><button>fail</button></form>
<form style="display:inline" method="post" action="/ready/ok"><button>ok</button></form></p>
<h2>More</h2>
<ul><li><a href="/env/api">/env/api</a> — command line and environment</li>
<li><a href="/dns/api?name=kubernetes.default&amp;type=A">/dns/api?name=kubernetes.default&amp;type=A</a> — a lookup by this pod's resolver</li>
<li><a href="/?format=json">/?format=json</a> — this page as JSON</li></ul>
<p><small>{{.Time.Format "2006-01-02T15:04:05Z07:00"}}</small></p>
</body></html>
`))
