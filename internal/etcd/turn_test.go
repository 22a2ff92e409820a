package etcd

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
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

// conflicting makes the fake clientset's Lease updates check resourceVersion as the API server does, and can lose
// the answer to one update that it applied: a request whose context ended after the server took it.
type conflicting struct {
	mu         sync.Mutex
	loseAnswer bool
}

func (c *conflicting) install(cs *fake.Clientset) {
	cs.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		l := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		obj, err := cs.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), l.Namespace, l.Name)
		if err != nil {
			return true, nil, err
		}
		current := obj.(*coordinationv1.Lease)
		if current.ResourceVersion != l.ResourceVersion {
			return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), l.Name, errors.New("the object has been modified"))
		}
		rv, _ := strconv.Atoi(current.ResourceVersion)
		l.ResourceVersion = strconv.Itoa(rv + 1)
		if err := cs.Tracker().Update(coordinationv1.SchemeGroupVersion.WithResource("leases"), l, l.Namespace); err != nil {
			return true, nil, err
		}
		if c.loseAnswer {
			c.loseAnswer = false
			return true, nil, context.Canceled
		}
		return true, l, nil
	})
}

// The holder's note of its learner reached the API server but its answer was lost (the join was interrupted): the
// turn is still given back, its note removed. Another node's change to the Lease is still refused.
func TestTurnReleaseAfterLostAnswer(t *testing.T) {
	cs := fake.NewClientset()
	c := &conflicting{}
	c.install(cs)
	clk := &clock{now: time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)}
	turn, err := TakeTurn(t.Context(), TurnOptions{Client: cs, Holder: "cp3", Now: clk.Now, Interval: time.Millisecond, Lease: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.loseAnswer = true
	c.mu.Unlock()
	if err := turn.Record(t.Context(), "https://10.0.0.13:2380"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Record whose answer is lost: %v", err)
	}
	if err := turn.Release(t.Context()); err != nil {
		t.Fatalf("Release after a lost answer: %v", err)
	}
	l, err := cs.CoordinationV1().Leases("kube-system").Get(t.Context(), TurnLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity != nil || l.Annotations[LearnerAnnotation] != "" {
		t.Fatalf("after Release the Lease names holder %v, learner %q", ptr.Deref(l.Spec.HolderIdentity, ""), l.Annotations[LearnerAnnotation])
	}

	// A Lease that another node took since: this holder's change is refused, naming it.
	other, err := TakeTurn(t.Context(), TurnOptions{Client: cs, Holder: "cp4", Now: clk.Now, Interval: time.Millisecond, Lease: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release(context.Background())
	if err := turn.update(t.Context(), func(*coordinationv1.Lease) {}); err == nil || !strings.Contains(err.Error(), `it names "cp4" now`) {
		t.Fatalf("cp3 changing the Lease cp4 holds: %v", err)
	}
	if holderOf(t, cs) != "cp4" {
		t.Fatalf("holder %q, want cp4", holderOf(t, cs))
	}
}
