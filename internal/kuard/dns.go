package kuard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// DNSAnswer is the body of /dns/api. A lookup that fails is still a 200
// answer, with Error set (and NotFound for NXDOMAIN or no records): the
// point is to show what the pod's resolver says, and busybox wget prints no
// body for an error status. Only a bad request (no name, unknown type) is
// a 400.
type DNSAnswer struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Answers are the records, one string each in zone-file order of the
	// type's fields without owner and TTL: "10.96.0.1";
	// "0 100 8080 kuard.default.svc.cluster.local." for SRV; MX as
	// "10 mx.example."; the canonical name for CNAME.
	Answers []string `json:"answers"`
	// CNAME is the canonical name SRV lookups report, when it differs.
	CNAME    string `json:"cname,omitempty"`
	Error    string `json:"error,omitempty"`
	NotFound bool   `json:"notFound,omitempty"`
	// Server is the name server that answered the error, when known.
	Server string `json:"server,omitempty"`
	// Elapsed is how long the lookup took.
	Elapsed string `json:"elapsed"`
	// ResolvConf is the pod's /etc/resolv.conf (nameserver, search list,
	// ndots), which decides how a short name is tried.
	ResolvConf string `json:"resolvConf,omitempty"`
}

// dnsTypes are the record types /dns/api looks up.
var dnsTypes = []string{"A", "AAAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT"}

func (s *Server) handleDNS(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := strings.TrimSpace(q.Get("name"))
	typ := strings.ToUpper(strings.TrimSpace(q.Get("type")))
	if typ == "" {
		typ = "A"
	}
	if name == "" || !slices.Contains(dnsTypes, typ) {
		http.Error(w, fmt.Sprintf("usage: /dns/api?name=NAME&type=TYPE, TYPE one of %s (default A)",
			strings.Join(dnsTypes, ", ")), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dnsTimeout)
	defer cancel()
	start := time.Now()
	ans := Lookup(ctx, s.cfg.Resolver, name, typ)
	ans.Elapsed = time.Since(start).Round(time.Microsecond).String()
	if data, err := os.ReadFile(s.cfg.ResolvConf); err == nil {
		ans.ResolvConf = string(data)
	}
	writeJSON(w, http.StatusOK, ans, true)
}

// Lookup asks res for name's records of type typ (one of A, AAAA, CNAME,
// MX, NS, PTR, SRV, TXT; PTR takes an address). Errors are reported in the
// answer, never returned.
func Lookup(ctx context.Context, res *net.Resolver, name, typ string) DNSAnswer {
	ans := DNSAnswer{Name: name, Type: typ, Answers: []string{}}
	var err error
	switch typ {
	case "A", "AAAA":
		network := "ip4"
		if typ == "AAAA" {
			network = "ip6"
		}
		var ips []net.IP
		ips, err = res.LookupIP(ctx, network, name)
		for _, ip := range ips {
			ans.Answers = append(ans.Answers, ip.String())
		}
	case "CNAME":
		var cname string
		cname, err = res.LookupCNAME(ctx, name)
		if err == nil {
			ans.Answers = append(ans.Answers, cname)
		}
	case "MX":
		var mxs []*net.MX
		mxs, err = res.LookupMX(ctx, name)
		for _, mx := range mxs {
			ans.Answers = append(ans.Answers, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
		}
	case "NS":
		var nss []*net.NS
		nss, err = res.LookupNS(ctx, name)
		for _, ns := range nss {
			ans.Answers = append(ans.Answers, ns.Host)
		}
	case "PTR":
		ans.Answers, err = res.LookupAddr(ctx, name)
	case "SRV":
		var srvs []*net.SRV
		ans.CNAME, srvs, err = res.LookupSRV(ctx, "", "", name)
		if ans.CNAME == name || ans.CNAME == name+"." {
			ans.CNAME = ""
		}
		for _, srv := range srvs {
			ans.Answers = append(ans.Answers, fmt.Sprintf("%d %d %d %s", srv.Priority, srv.Weight, srv.Port, srv.Target))
		}
	case "TXT":
		ans.Answers, err = res.LookupTXT(ctx, name)
	default:
		err = fmt.Errorf("unsupported type %q", typ)
	}
	if ans.Answers == nil {
		ans.Answers = []string{}
	}
	if err != nil {
		ans.Error = err.Error()
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			ans.NotFound = dnsErr.IsNotFound
			ans.Server = dnsErr.Server
		}
	}
	return ans
}
