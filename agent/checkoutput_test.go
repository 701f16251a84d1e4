package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chorusdns/chorus/test/testutil"
)

// TestFirstCheckOutputReachesTheCatalog: a check that starts critical and
// stays critical (its target refuses connections) changes only its output
// with its first result. That output, which says why it fails, is in the
// catalog (what other agents, the web page and /v1/health read) within
// seconds, not after the 5 minutes later output-only changes may wait.
func TestFirstCheckOutputReachesTheCatalog(t *testing.T) {
	a := startAgent(t, testConfig(t, "out"))
	closed := testutil.FreePort(t)
	mustDo(t, a, "PUT", "/v1/agent/service/register", fmt.Sprintf(`{"Name":"web","Port":%d,
		"Check":{"TCP":"127.0.0.1:%d","Interval":"500ms","Timeout":"1s"}}`, closed, closed))
	testutil.Eventually(t, 5*time.Second, func() error {
		var checks []struct{ CheckID, Status, Output string }
		if err := json.Unmarshal(mustDo(t, a, "GET", "/v1/health/checks/web", nil), &checks); err != nil {
			return err
		}
		if len(checks) != 1 || checks[0].Status != "critical" || !strings.Contains(checks[0].Output, "connection refused") {
			return fmt.Errorf("the catalog's check: %+v", checks)
		}
		return nil
	})
}
