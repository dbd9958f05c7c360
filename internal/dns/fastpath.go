package dns

import (
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The UDP fast path. Most of a cluster's queries are the same few
// questions about its own zone, asked again and again; the answer to one
// only changes when the Store does. So the server keeps the wire form of
// each zone answer it packed, keyed by the question as it came on the
// wire (name case-folded, type, class, EDNS0 and its DO bit), stamped
// with the Store's generation. A UDP query whose key is there with the
// current generation is answered by copying those bytes and patching in
// the query's ID, RD and CD bits and the name as the client spelled it
// (RFC 5452 case randomisation survives) — in the reading goroutine,
// without unpacking the query, looking it up or packing the reply.
// Everything else (forwarded names, ExternalName chases, answers over
// 512 bytes, anything unusual in the query) takes the normal path, which
// may fill the cache.

const (
	// maxCachedAnswer keeps cached answers within what any UDP client
	// takes (512 bytes without EDNS0), so the client's buffer size does
	// not matter to the key.
	maxCachedAnswer = dns.MinMsgSize
	// maxCachedAnswers bounds the cache; when full it starts again empty.
	maxCachedAnswers = 10000
)

// packedAnswers holds packed zone answers.
type packedAnswers struct {
	mu      sync.RWMutex
	answers map[string]*cachedAnswer
}

type cachedAnswer struct {
	gen      uint64 // the Store's generation it was computed at
	wire     []byte // the packed reply
	requests prometheus.Counter
}

func (c *packedAnswers) get(key []byte, gen uint64) *cachedAnswer {
	c.mu.RLock()
	a := c.answers[string(key)] // no allocation: the compiler looks up by the bytes
	c.mu.RUnlock()
	if a == nil || a.gen != gen {
		return nil
	}
	return a
}

func (c *packedAnswers) put(key string, a *cachedAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil || len(c.answers) >= maxCachedAnswers {
		c.answers = make(map[string]*cachedAnswer)
	}
	c.answers[key] = a
}

// Bits of the header's flags (RFC 1035 §4.1.1, RFC 4035 §3.2.2).
const (
	flagQR     = 1 << 15
	flagOpcode = 0xf << 11
	flagTC     = 1 << 9
	flagRD     = 1 << 8
	flagCD     = 1 << 4
	headerLen  = 12
	optDO      = 1 << 15
)

// fastKey reads a query's cache key from its wire form: the question's
// name (lower-cased), type and class, then 'n' for no EDNS0 or 'e'/'d'
// for EDNS0 version 0 without/with DO. It returns the end of the name
// (where the name stops in the packet) and false for anything but one
// plain question with at most an OPT record.
func fastKey(msg, buf []byte) (key []byte, nameEnd int, ok bool) {
	if len(msg) < headerLen+5 {
		return nil, 0, false
	}
	flags := uint16(msg[2])<<8 | uint16(msg[3])
	if flags&(flagQR|flagOpcode|flagTC) != 0 {
		return nil, 0, false
	}
	qd, an, ns, ar := be16(msg[4:]), be16(msg[6:]), be16(msg[8:]), be16(msg[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return nil, 0, false
	}
	key = buf[:0]
	i := headerLen
	for {
		if i >= len(msg) {
			return nil, 0, false
		}
		l := int(msg[i])
		if l == 0 {
			break
		}
		if l > 63 || i+1+l > len(msg) { // a pointer, or past the end
			return nil, 0, false
		}
		key = append(key, byte(l))
		for _, b := range msg[i+1 : i+1+l] {
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			key = append(key, b)
		}
		i += 1 + l
	}
	key = append(key, 0)
	nameEnd = i + 1
	if nameEnd+4 > len(msg) {
		return nil, 0, false
	}
	key = append(key, msg[nameEnd:nameEnd+4]...) // type, class
	rest := msg[nameEnd+4:]
	if ar == 0 {
		if len(rest) != 0 {
			return nil, 0, false
		}
		return append(key, 'n'), nameEnd, true
	}
	// The OPT record: root name, type 41, class = buffer size, TTL =
	// extended rcode, version, flags; then its options, which no answer
	// of ours depends on.
	if len(rest) < 11 || rest[0] != 0 || be16(rest[1:]) != dns.TypeOPT {
		return nil, 0, false
	}
	if rest[5] != 0 || rest[6] != 0 { // extended rcode, version
		return nil, 0, false
	}
	if 11+int(be16(rest[9:])) != len(rest) {
		return nil, 0, false
	}
	if be16(rest[7:])&optDO != 0 {
		return append(key, 'd'), nameEnd, true
	}
	return append(key, 'e'), nameEnd, true
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// keyOf is fastKey's key for a parsed query, for storing the answer the
// normal path made (ok false: the query does not qualify).
func keyOf(r *dns.Msg) (string, bool) {
	if r.Response || r.Opcode != dns.OpcodeQuery || r.Truncated || len(r.Question) != 1 ||
		len(r.Answer) != 0 || len(r.Ns) != 0 || len(r.Extra) > 1 {
		return "", false
	}
	opt := r.IsEdns0()
	if len(r.Extra) == 1 && (opt == nil || opt.Version() != 0 || opt.ExtendedRcode() != 0) {
		return "", false
	}
	q := r.Question[0]
	buf := make([]byte, 255+6)
	n, err := dns.PackDomainName(strings.ToLower(q.Name), buf, 0, nil, false)
	if err != nil {
		return "", false
	}
	key := append(buf[:n], byte(q.Qtype>>8), byte(q.Qtype), byte(q.Qclass>>8), byte(q.Qclass))
	switch {
	case opt == nil:
		key = append(key, 'n')
	case opt.Do():
		key = append(key, 'd')
	default:
		key = append(key, 'e')
	}
	return string(key), true
}

// remember stores the normal path's answer m to r, packed as wire, if
// both qualify.
func (s *Server) remember(r, m *dns.Msg, wire []byte, gen uint64, requests prometheus.Counter) {
	if len(wire) > maxCachedAnswer || m.Truncated || m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return
	}
	key, ok := keyOf(r)
	if !ok {
		return
	}
	s.answers.put(key, &cachedAnswer{gen: gen, wire: wire, requests: requests})
}

// fastReader wraps the UDP reader of the miekg server: it answers the
// queries it can from the cache and hands the rest on.
type fastReader struct {
	dns.Reader
	s    *Server
	buf  []byte // the packet being read
	key  []byte
	resp []byte
}

func (s *Server) decorateReader(r dns.Reader) dns.Reader {
	return &fastReader{Reader: r, s: s, buf: make([]byte, maxUDPSize), key: make([]byte, 0, 300), resp: make([]byte, 0, maxCachedAnswer)}
}

// ReadUDP returns the next query the cache cannot answer.
func (f *fastReader) ReadUDP(conn *net.UDPConn, _ time.Duration) ([]byte, *dns.SessionUDP, error) {
	for {
		// No deadline: the server's shutdown sets one in the past to
		// unblock this read.
		n, sess, err := dns.ReadFromSessionUDP(conn, f.buf)
		if err != nil {
			return nil, nil, err
		}
		msg := f.buf[:n]
		if f.answer(conn, msg, sess) {
			continue
		}
		// Copied: the server keeps it while a goroutine answers it.
		return append([]byte(nil), msg...), sess, nil
	}
}

// answer writes the cached answer to msg, if there is one.
func (f *fastReader) answer(conn *net.UDPConn, msg []byte, sess *dns.SessionUDP) bool {
	start := time.Now()
	key, nameEnd, ok := fastKey(msg, f.key)
	if !ok {
		return false
	}
	f.key = key[:0]
	a := f.s.answers.get(key, f.s.store.Generation())
	if a == nil {
		return false
	}
	out := append(f.resp[:0], a.wire...)
	out[0], out[1] = msg[0], msg[1] // ID
	flags := be16(out[2:])&^(flagRD|flagCD) | be16(msg[2:])&(flagRD|flagCD)
	out[2], out[3] = byte(flags>>8), byte(flags)
	copy(out[headerLen:nameEnd], msg[headerLen:nameEnd]) // the name, as asked
	// Counted before the write, so a client that has its answer sees it
	// counted; a failed write is the client's loss, as on the normal path.
	a.requests.Inc()
	f.s.m.fastAnswers.Inc()
	f.s.m.duration.WithLabelValues(sourceZone).Observe(time.Since(start).Seconds())
	_, _ = dns.WriteToSessionUDP(conn, out, sess)
	return true
}
