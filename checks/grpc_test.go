package checks

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startHealthServer serves grpc.health.v1 on 127.0.0.1 with the standard health
// server; "" (the whole server) is SERVING.
func startHealthServer(t *testing.T, opts ...grpc.ServerOption) (addr string, hs *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	hs = health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs
}

func TestGRPCCheck(t *testing.T) {
	addr, hs := startHealthServer(t)
	hs.SetServingStatus("up.Service", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down.Service", healthpb.HealthCheckResponse_NOT_SERVING)

	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closedLn.Addr().String()
	closedLn.Close()

	tests := []struct {
		name, target, status, output string
	}{
		{"server", addr, StatusPassing, "gRPC check " + addr + ": SERVING"},
		{"serving service", addr + "/up.Service", StatusPassing, "gRPC check " + addr + "/up.Service: SERVING"},
		{"not serving service", addr + "/down.Service", StatusCritical, "gRPC check " + addr + "/down.Service: NOT_SERVING"},
		{"unknown service", addr + "/nope.Service", StatusCritical, "code = NotFound"},
		{"closed port", closedAddr, StatusCritical, "code = Unavailable"},
	}
	m, _ := startManager(t, Config{})
	for _, tc := range tests {
		initial := StatusPassing
		if tc.status == StatusPassing {
			initial = StatusCritical
		}
		mustAdd(t, m, Definition{ID: tc.name, GRPC: tc.target, Interval: 200 * time.Millisecond, Status: initial})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			waitOutput(t, m, tc.name, tc.status, tc.output, 10*time.Second)
		})
	}

	// The service stops serving: the check follows.
	hs.SetServingStatus("up.Service", healthpb.HealthCheckResponse_NOT_SERVING)
	waitStatus(t, m, "serving service", StatusCritical, 5*time.Second)
}

func TestGRPCCheckTLS(t *testing.T) {
	// Borrow httptest's self-signed certificate for 127.0.0.1.
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	cert := certSrv.TLS.Certificates[0]
	certSrv.Close()

	addr, _ := startHealthServer(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	m, _ := startManager(t, Config{})
	mustAdd(t, m, Definition{ID: "skip", GRPC: addr, GRPCUseTLS: true, TLSSkipVerify: true, Interval: 500 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "verify", GRPC: addr, GRPCUseTLS: true, Interval: 500 * time.Millisecond, Status: StatusPassing})
	mustAdd(t, m, Definition{ID: "plaintext", GRPC: addr, Interval: 500 * time.Millisecond, Status: StatusPassing})

	waitStatus(t, m, "skip", StatusPassing, 5*time.Second)
	waitOutput(t, m, "verify", StatusCritical, "certificate", 10*time.Second)
	waitStatus(t, m, "plaintext", StatusCritical, 5*time.Second)
}
