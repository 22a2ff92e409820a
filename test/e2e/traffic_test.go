//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/lab/traffic"
)

// startWrites creates a ConfigMap named PREFIX-N in default every 100 ms through cs until the returned function
// is called, which returns the counts (traffic.Start, ended with the test).
func startWrites(t *testing.T, cs kubernetes.Interface, prefix string) func() traffic.Counts {
	return traffic.Start(t.Context(), cs, prefix)
}

// reportWrites logs the failed writes and the figure line for what happened meanwhile.
func reportWrites(t *testing.T, c traffic.Counts, during string) {
	t.Helper()
	if all := append(slices.Clone(c.Failed), c.LeaderChange...); len(all) > 0 {
		t.Logf("writes that failed (time after the first write: error):\n%s", strings.Join(all, "\n"))
	}
	t.Logf("FIGURE %s", c.Summary(during))
	if c.Sent < 10 {
		t.Errorf("only %d writes were sent", c.Sent)
	}
}
