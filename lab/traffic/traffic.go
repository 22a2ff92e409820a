// Package traffic sends a steady stream of writes through a cluster's API endpoint and counts the ones that
// fail, for the lab's tests and benchmarks that must show the API stayed available while something changed
// underneath (a certificate renewal, an upgrade).
package traffic

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Interval is the pause between two writes.
const Interval = 100 * time.Millisecond

// Counts is what a stream of writes met: how many were sent and which failed (each "time after the first
// write: error"), etcd's own failures while its leadership moved (see EtcdLeaderChange) apart from every other.
type Counts struct {
	Sent                 int
	Failed, LeaderChange []string
	Took                 time.Duration
}

// AllFailed is the number of writes that failed for any reason.
func (c Counts) AllFailed() int { return len(c.Failed) + len(c.LeaderChange) }

// Summary is the one-line account of the writes during what happened meanwhile.
func (c Counts) Summary(during string) string {
	return fmt.Sprintf("writes through the endpoint during %s: %d of %d failed, %d of them failed by etcd while its leadership moved (%s)",
		during, c.AllFailed(), c.Sent, len(c.LeaderChange), c.Took.Round(time.Second))
}

// Start creates a ConfigMap named PREFIX-N in the default namespace every Interval through cs until the returned
// function is called, which returns the counts. The function may be called more than once (a deferred call after
// a fatal error ends the writes too). Each write is bounded by the client's own timeout, not by ctx alone, so
// set one on cs.
func Start(ctx context.Context, cs kubernetes.Interface, prefix string) (stop func() Counts) {
	var (
		mu   sync.Mutex
		c    Counts
		quit = make(chan struct{})
		done = make(chan struct{})
	)
	start := time.Now()
	go func() {
		defer close(done)
		tick := time.NewTicker(Interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: "default"}}
			at := time.Since(start)
			_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
			mu.Lock()
			c.Sent++
			switch {
			case err != nil && EtcdLeaderChange(err):
				c.LeaderChange = append(c.LeaderChange, fmt.Sprintf("%s: %v", at.Round(time.Millisecond), err))
			case err != nil:
				c.Failed = append(c.Failed, fmt.Sprintf("%s: %v", at.Round(time.Millisecond), err))
			}
			mu.Unlock()
		}
	}()
	stopOnce := sync.OnceFunc(func() { close(quit); <-done; c.Took = time.Since(start) })
	return func() Counts {
		stopOnce()
		mu.Lock()
		defer mu.Unlock()
		return c
	}
}

// EtcdLeaderChange: etcd failed the write because its leader changed while the write was proposed (the proposal
// forwarded to a leader handing over its leadership is dropped, and etcd answers once its request timeout
// passes). This bound is etcd's: a restart of the leader moves the leadership, by hand-over or by election, and
// the API server does not retry a write etcd failed.
func EtcdLeaderChange(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "etcdserver: request timed out, possibly due to previous leader failure") ||
		strings.Contains(msg, "etcdserver: leader changed")
}
