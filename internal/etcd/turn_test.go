package etcd

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// clock is a time that tests move.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func holderOf(t *testing.T, cs *fake.Clientset) string {
	t.Helper()
	l, err := cs.CoordinationV1().Leases("kube-system").Get(context.Background(), TurnLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// Two joiners: the second waits for the first, names it while it waits, and takes the turn once it is given back.
func TestTurnTwoJoiners(t *testing.T) {
	cs := fake.NewClientset()
	clk := &clock{now: time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)}
	opts := func(holder string, out *bytes.Buffer, wait time.Duration) TurnOptions {
		return TurnOptions{Client: cs, Holder: holder, Out: out, Now: clk.Now, Wait: wait, Interval: time.Millisecond, Lease: 30 * time.Second}
	}
	var out1, out2 bytes.Buffer
	first, err := TakeTurn(t.Context(), opts("cp2", &out1, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if holderOf(t, cs) != "cp2" || out1.Len() != 0 {
		t.Fatalf("holder %q, output %q", holderOf(t, cs), out1.String())
	}

	// The wait is bounded and names the holder.
	_, err = TakeTurn(t.Context(), opts("cp3", &out2, -time.Second))
	if err == nil || !strings.Contains(err.Error(), "cp2 still holds the Lease kube-system/"+TurnLease) {
		t.Fatalf("a turn taken while cp2 holds it: %v", err)
	}
	if !strings.Contains(out2.String(), "waiting for the turn to add an etcd member: cp2 holds the Lease") {
		t.Fatalf("the wait does not name the holder:\n%s", out2.String())
	}

	got := make(chan *Turn)
	go func() {
		second, err := TakeTurn(context.Background(), opts("cp3", &bytes.Buffer{}, time.Minute))
		if err != nil {
			t.Error(err)
		}
		got <- second
	}()
	select {
	case <-got:
		t.Fatal("cp3 took the turn while cp2 held it")
	case <-time.After(50 * time.Millisecond):
	}
	if err := first.Record(t.Context(), "https://10.0.0.12:2380"); err != nil {
		t.Fatal(err)
	}
	if err := first.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := <-got
	if second == nil || holderOf(t, cs) != "cp3" {
		t.Fatalf("after cp2 gave the turn back the holder is %q", holderOf(t, cs))
	}
	if second.Stale != "" {
		t.Errorf("a turn given back left the learner %q to remove", second.Stale)
	}
	if err := second.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A joiner that dies holding the turn: the next takes it once the Lease runs out, and is told the learner the
// dead one added. A rerun on the node that held it takes it at once and is told nothing: the learner is its own.
func TestTurnHolderDies(t *testing.T) {
	cs := fake.NewClientset()
	clk := &clock{now: time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)}
	opts := func(holder string) TurnOptions {
		return TurnOptions{Client: cs, Holder: holder, Now: clk.Now, Wait: time.Minute, Interval: time.Millisecond, Lease: 30 * time.Second}
	}
	dead, err := TakeTurn(t.Context(), opts("cp2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Record(t.Context(), "https://10.0.0.12:2380"); err != nil {
		t.Fatal(err)
	}
	close(dead.stop) // killed: it renews no more and gives nothing back
	<-dead.done

	rerun, err := TakeTurn(t.Context(), opts("cp2"))
	if err != nil || rerun.Stale != "" {
		t.Fatalf("the same node again: %v, stale %q", err, rerun.Stale)
	}
	close(rerun.stop)
	<-rerun.done
	if err := rerun.Record(t.Context(), "https://10.0.0.12:2380"); err != nil {
		t.Fatal(err)
	}

	done := make(chan *Turn)
	go func() {
		next, err := TakeTurn(context.Background(), opts("cp3"))
		if err != nil {
			t.Error(err)
		}
		done <- next
	}()
	time.Sleep(20 * time.Millisecond)
	if holderOf(t, cs) != "cp2" {
		t.Fatal("the turn was taken before the Lease ran out")
	}
	clk.add(31 * time.Second)
	next := <-done
	if next == nil || next.Stale != "https://10.0.0.12:2380" || holderOf(t, cs) != "cp3" {
		t.Fatalf("after cp2's Lease ran out: holder %q, stale %+v", holderOf(t, cs), next)
	}
	if err := next.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}
