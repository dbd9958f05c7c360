package agent

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// gRPC probes against real gRPC servers on loopback (inside the test's
// private network namespace): SERVING passes; NOT_SERVING, an unknown
// service, a server without the health service and a closed port fail
// with upstream's messages.
func TestGRPCProbe(t *testing.T) {
	serve := func(withHealth bool) (int32, *health.Server) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		hs := health.NewServer()
		if withHealth {
			healthpb.RegisterHealthServer(srv, hs)
		}
		go srv.Serve(l)
		t.Cleanup(srv.Stop)
		return int32(l.Addr().(*net.TCPAddr).Port), hs
	}
	port, hs := serve(true)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("cache", healthpb.HealthCheckResponse_NOT_SERVING)
	bare, _ := serve(false)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := int32(l.Addr().(*net.TCPAddr).Port)
	l.Close()

	r := probeRunner{podIP: "127.0.0.1", container: &corev1.Container{Name: "app"}}
	for _, tc := range []struct {
		port    int32
		service *string
		ok      bool
		msg     string
	}{
		{port, nil, true, ""}, // "" is the server as a whole, SERVING by default
		{port, ptr.To("db"), true, ""},
		{port, ptr.To("cache"), false, `service unhealthy (responded with "NOT_SERVING")`},
		{port, ptr.To("nope"), false, "error: health rpc probe failed"},
		{bare, nil, false, "this server does not implement the grpc health protocol (grpc.health.v1.Health)"},
		{closed, nil, false, "timeout: failed to connect service"},
	} {
		p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: tc.port, Service: tc.service}}}
		ok, msg := r.run(context.Background(), p, 2*time.Second)
		if ok != tc.ok || !strings.HasPrefix(msg, tc.msg) {
			t.Errorf("port %d service %v: %v %q, want %v %q", tc.port, ptr.Deref(tc.service, ""), ok, msg, tc.ok, tc.msg)
		}
	}
}
