//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// writeCounts is what a stream of writes through the endpoint met: how many were sent and which failed, etcd's
// own failures while its leadership moved (see etcdLeaderChange) apart from every other.
type writeCounts struct {
	sent                 int
	failed, leaderChange []string
	took                 time.Duration
}

// startWrites creates a ConfigMap named PREFIX-N in default every 100 ms through cs until the returned function
// is called, which returns the counts. The function may be called more than once (a deferred call after a fatal
// error ends the writes too).
func startWrites(t *testing.T, cs kubernetes.Interface, prefix string) func() writeCounts {
	ctx := t.Context()
	var (
		mu   sync.Mutex
		c    writeCounts
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	start := time.Now()
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: "default"}}
			at := time.Since(start)
			_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
			mu.Lock()
			c.sent++
			switch {
			case err != nil && etcdLeaderChange(err):
				c.leaderChange = append(c.leaderChange, fmt.Sprintf("%s: %v", at.Round(time.Millisecond), err))
			case err != nil:
				c.failed = append(c.failed, fmt.Sprintf("%s: %v", at.Round(time.Millisecond), err))
			}
			mu.Unlock()
		}
	}()
	stopOnce := sync.OnceFunc(func() { close(stop); <-done; c.took = time.Since(start) })
	return func() writeCounts {
		stopOnce()
		mu.Lock()
		defer mu.Unlock()
		return c
	}
}

// report logs the failed writes and the figure line for what happened meanwhile.
func (c writeCounts) report(t *testing.T, during string) {
	t.Helper()
	if all := append(slices.Clone(c.failed), c.leaderChange...); len(all) > 0 {
		t.Logf("writes that failed (time after the first write: error):\n%s", strings.Join(all, "\n"))
	}
	t.Logf("FIGURE writes through the endpoint during %s: %d of %d failed, %d of them failed by etcd while its leadership moved (%s)",
		during, len(c.failed)+len(c.leaderChange), c.sent, len(c.leaderChange), c.took.Round(time.Second))
	if c.sent < 10 {
		t.Errorf("only %d writes were sent", c.sent)
	}
}
