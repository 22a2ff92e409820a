package loadbalancer

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// A new list: the added backend joins the rotation once healthy and the one no longer listed leaves then, its
// open connection left to finish.
func TestSetBackendsAddsAndRemoves(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr()}, CheckInterval: 20 * time.Millisecond, Drain: time.Hour})
	eventually(t, time.Second, "a healthy", func() bool { return len(lb.Healthy()) == 1 })
	open := dialRaw(t, lb)
	if name, err := ask(open); err != nil || name != "a" {
		t.Fatalf("first connection reached %q: %v", name, err)
	}

	changed, err := lb.SetBackends([]string{b.addr()})
	if err != nil || !changed {
		t.Fatalf("SetBackends: %v, changed %v", err, changed)
	}
	eventually(t, 2*time.Second, "a removed", func() bool { return slices.Equal(lb.Backends(), []string{b.addr()}) })
	for range 4 {
		if name, err := whoAnswers(t, lb); err != nil || name != "b" {
			t.Fatalf("a new connection reached %q (%v), want b", name, err)
		}
	}
	if name, err := ask(open); err != nil || name != "a" {
		t.Errorf("the connection opened to a before it was removed: %q, %v; want it left to finish", name, err)
	}
	for _, want := range []string{"backend " + b.addr() + " added", "backend " + a.addr() + " removed: no longer listed (1 connections left to finish"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if changed, err := lb.SetBackends([]string{b.addr()}); err != nil || changed {
		t.Errorf("the same list again: changed %v, %v", changed, err)
	}
}

// The last healthy backend is not dropped for a list whose backends do not answer yet: it keeps serving until
// one of them is healthy.
func TestSetBackendsKeepsTheLastHealthy(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	b.ready.Store(false)
	lb, _ := startLB(t, Options{Backends: []string{a.addr()}, CheckInterval: 20 * time.Millisecond})
	eventually(t, time.Second, "a healthy", func() bool { return len(lb.Healthy()) == 1 })
	if _, err := lb.SetBackends([]string{b.addr()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // ten rounds of checks
	if got := lb.Backends(); !slices.Equal(got, []string{a.addr(), b.addr()}) {
		t.Fatalf("backends %v while b is not ready, want a kept", got)
	}
	if name, err := whoAnswers(t, lb); err != nil || name != "a" {
		t.Fatalf("a new connection reached %q (%v), want a: the only healthy backend", name, err)
	}
	b.ready.Store(true)
	eventually(t, 2*time.Second, "a removed once b is ready", func() bool { return slices.Equal(lb.Backends(), []string{b.addr()}) })
	if name, err := whoAnswers(t, lb); err != nil || name != "b" {
		t.Fatalf("a new connection reached %q (%v), want b", name, err)
	}
}

func TestSetBackendsRefusesBadLists(t *testing.T) {
	p := newTestPKI(t)
	a := startBackend(t, "a", p)
	lb, _ := startLB(t, Options{Backends: []string{a.addr()}})
	for _, bad := range [][]string{nil, {"no-port"}, {a.addr(), a.addr()}} {
		if _, err := lb.SetBackends(bad); err == nil {
			t.Errorf("SetBackends(%q) accepted", bad)
		}
	}
	if got := lb.Backends(); !slices.Equal(got, []string{a.addr()}) {
		t.Errorf("backends after refused lists: %v", got)
	}
}
