package cluster

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/chorusdns/chorus/test/testutil"
)

// TestChaos runs the fault scenarios on a real cluster of network
// namespaces. It takes minutes and needs root, so it runs only when asked:
//
//	CHORUS_CHAOS=short go test ./test/cluster -run TestChaos -v -timeout 15m
//	CHORUS_CHAOS=full  go test ./test/cluster -run TestChaos -v -timeout 30m
//
// CHORUS_CHAOS_OUT names the directory for report.md and the PNGs (a
// temporary directory by default). `make chaos` and test/cluster/ci.sh
// run the same scenarios through cmd/chaos.
func TestChaos(t *testing.T) {
	mode := os.Getenv("CHORUS_CHAOS")
	if mode != "short" && mode != "full" {
		t.Skip("set CHORUS_CHAOS=short or CHORUS_CHAOS=full to run the fault scenarios (root, minutes)")
	}
	if err := Preflight(t.Context()); err != nil {
		t.Skipf("SKIP: %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out := os.Getenv("CHORUS_CHAOS_OUT")
	if out == "" {
		out = t.TempDir()
	}
	rep, err := Run(t.Context(), Options{
		Short: mode == "short", RepoRoot: root, OutDir: out,
		Logger: testutil.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report in %s\n%s", out, rep.Table())
	for _, res := range rep.Results {
		for _, f := range res.Failures {
			t.Errorf("%s: %s", res.Scenario.Name, f)
		}
	}
	for _, l := range rep.FinalLost {
		t.Errorf("lost at the end: %s", l)
	}
}
