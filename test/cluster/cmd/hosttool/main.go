// Command hosttool runs inside one host of the fault-test cluster (a
// network namespace) next to the agent:
//
//	hosttool demo -listen :8080 -name h1
//	    the demo service: answers every HTTP request with 200 "ok h1";
//	hosttool netem -queue 0 -delay 50ms [-loss 0.2]
//	    holds the packets iptables sends to NFQUEUE 0 for the delay (and
//	    drops a share of them): netem for kernels built without it.
//
// Both run until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chorusdns/chorus/test/cluster/nfqueue"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: hosttool demo|netem [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch args[0] {
	case "demo":
		err = demo(ctx, args[1:])
	case "netem":
		err = netem(ctx, args[1:])
	default:
		err = fmt.Errorf("unknown command %q (demo or netem)", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hosttool:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "HTTP listen address")
	name := fs.String("name", "", "host name to answer with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	body := []byte("ok " + *name + "\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func netem(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("netem", flag.ContinueOnError)
	queue := fs.Uint("queue", 0, "NFQUEUE number")
	delay := fs.Duration("delay", 50*time.Millisecond, "delay per packet")
	loss := fs.Float64("loss", 0, "share of packets dropped (0 to 1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *queue > 65535 {
		return fmt.Errorf("queue %d: at most 65535", *queue)
	}
	st, err := nfqueue.Run(ctx, nfqueue.Config{Queue: uint16(*queue), Delay: *delay, Loss: *loss})
	fmt.Fprintf(os.Stderr, "hosttool netem: accepted %d, dropped %d\n", st.Accepted, st.Dropped)
	return err
}
