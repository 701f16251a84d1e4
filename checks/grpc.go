package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcProber calls grpc.health.v1.Health/Check: SERVING is passing, any other
// answer or error critical. Each probe opens its own connection and closes it,
// as Consul does, so a check proves that a new client can connect and no check
// keeps an HTTP/2 connection open between probes.
type grpcProber struct {
	target  string // as given: "host:port" or "host:port/service"
	addr    string
	service string
	creds   credentials.TransportCredentials
}

func newGRPCProber(d Definition) *grpcProber {
	addr, service, _ := strings.Cut(d.GRPC, "/")
	creds := insecure.NewCredentials()
	if d.GRPCUseTLS {
		creds = credentials.NewTLS(&tls.Config{
			InsecureSkipVerify: d.TLSSkipVerify, // the check's explicit choice
			ServerName:         d.TLSServerName,
		})
	}
	return &grpcProber{target: d.GRPC, addr: addr, service: service, creds: creds}
}

func (p *grpcProber) probe(ctx context.Context) (string, string) {
	// passthrough hands the address to the dialer as is, like net.Dial: no
	// resolver goroutine and no DNS TXT lookup for a service config.
	conn, err := grpc.NewClient("passthrough:///"+p.addr,
		grpc.WithTransportCredentials(p.creds),
		grpc.WithUserAgent(UserAgent),
		grpc.WithDisableServiceConfig(),
	)
	if err != nil {
		return StatusCritical, fmt.Sprintf("gRPC check %s: %v", p.target, err)
	}
	defer func() { _ = conn.Close() }()

	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err != nil {
		return StatusCritical, fmt.Sprintf("gRPC check %s: %v", p.target, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return StatusCritical, fmt.Sprintf("gRPC check %s: %s", p.target, st)
	}
	return StatusPassing, fmt.Sprintf("gRPC check %s: %s", p.target, healthpb.HealthCheckResponse_SERVING)
}
