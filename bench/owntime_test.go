package main

import (
	"strings"
	"testing"
	"time"
)

func TestOwnInitTime(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	lines := []stampedLine{
		{ms(80), "[preflight] done in 40ms"},
		{ms(150), "[kubelet-start] done in 2ms"},
		{ms(600), "[control-plane/apiserver] done in 1ms"},
		{ms(4900), "  kube-apiserver healthy after 4.1s"},
		{ms(4900), "[wait-control-plane] done in 4.2s"},
	}
	t.Run("the manifest before the kubelet is ready: before the kubelet and after the wait", func(t *testing.T) {
		o, err := ownInitTime(lines, ms(4950), ms(900))
		if err != nil {
			t.Fatal(err)
		}
		if o.total() != ms(200) || o.beforeKubelet != ms(150) || o.lateManifest != 0 || o.afterWait != ms(50) || o.busyBeforeWait != ms(750) {
			t.Fatalf("own time %+v, total %s; want 150 ms + 0 + 50 ms = 200 ms, and 750 ms outside the wait", o, o.total())
		}
	})
	t.Run("the manifest after the kubelet is ready counts", func(t *testing.T) {
		o, err := ownInitTime(lines, ms(4950), ms(500))
		if err != nil {
			t.Fatal(err)
		}
		if o.lateManifest != ms(100) || o.total() != ms(300) {
			t.Fatalf("own time %+v, total %s; want the manifest 100 ms late, 300 ms in all", o, o.total())
		}
	})
	t.Run("a missing phase line is an error naming it", func(t *testing.T) {
		_, err := ownInitTime(lines[:2], ms(4950), ms(900))
		if err == nil || !strings.Contains(err.Error(), "control-plane/apiserver, wait-control-plane") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFirstSyncLoop(t *testing.T) {
	since := time.Date(2026, 12, 8, 1, 18, 2, 502000000, time.Local)
	log := `=== 2026-12-08T01:17:00Z kubelet
I1208 01:17:01.000000   19000 kubelet.go:2673] "Starting kubelet main sync loop"
=== 2026-12-08T01:18:02.948511651Z kubelet
I1208 01:18:03.186340   19483 server.go:545] "Kubelet version" kubeletVersion="v1.37.2"
I1208 01:18:03.458078   19483 kubelet.go:2673] "Starting kubelet main sync loop"
I1208 01:18:09.000000   19483 kubelet.go:2673] "Starting kubelet main sync loop"
`
	got, err := firstSyncLoop(strings.NewReader(log), since, "kubelet.log")
	if err != nil {
		t.Fatal(err)
	}
	if want := 956078 * time.Microsecond; got != want {
		t.Fatalf("sync loop %s after init's start, want %s (the first line after it)", got, want)
	}
	if _, err := firstSyncLoop(strings.NewReader(log), since.Add(time.Minute), "kubelet.log"); err == nil || !strings.Contains(err.Error(), "kubelet.log: no") {
		t.Fatalf("err = %v, want no sync loop since then", err)
	}
}
