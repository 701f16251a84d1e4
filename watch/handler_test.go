package watch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/watch"
)

func TestRunHandler(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string
		fails  bool
	}{
		{"stdin to stdout", []string{"sh", "-c", "cat; echo; echo err >&2"}, 0, "{\"a\":1}\nerr\n", false},
		{"exit status", []string{"sh", "-c", "echo boom; exit 7"}, 7, "boom\n", true},
		{"no such command", []string{"/nonexistent/handler"}, -1, "", true},
		{"no command", nil, -1, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := watch.RunHandler(ctx, tc.args, []byte(`{"a":1}`))
			if (err != nil) != tc.fails || res.ExitCode != tc.code || string(res.Output) != tc.output {
				t.Fatalf("RunHandler = %+v (output %q), %v; want exit %d, output %q, failure %v", res, res.Output, err, tc.code, tc.output, tc.fails)
			}
		})
	}
}

func TestRunHandlerOutputCapped(t *testing.T) {
	res, err := watch.RunHandler(context.Background(), []string{"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x"}, nil)
	if err != nil || len(res.Output) != watch.MaxHandlerOutput || strings.Trim(string(res.Output), "x") != "" {
		t.Fatalf("RunHandler = %d bytes, %v; want %d bytes of x", len(res.Output), err, watch.MaxHandlerOutput)
	}
}

func TestRunHandlerCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := watch.RunHandler(ctx, []string{"sleep", "30"}, nil)
	if err == nil || res.ExitCode != -1 || time.Since(start) > 5*time.Second {
		t.Fatalf("RunHandler of a cancelled handler = %+v, %v after %v", res, err, time.Since(start))
	}
}
