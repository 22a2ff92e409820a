package traffic

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestStartCountsEachFailureByItsCause(t *testing.T) {
	cs := fake.NewClientset()
	var calls atomic.Int32
	cs.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		switch calls.Add(1) {
		case 2:
			return true, nil, errors.New("etcdserver: leader changed")
		case 3:
			return true, nil, errors.New("Post https://10.77.0.5:6443: connection reset by peer")
		}
		return false, nil, nil // the fake's tracker stores it
	})
	stop := Start(context.Background(), cs, "t")
	time.Sleep(6*Interval + Interval/2)
	c := stop()
	if again := stop(); again.Sent != c.Sent {
		t.Errorf("a second stop returned %d writes, the first %d", again.Sent, c.Sent)
	}
	if c.Sent < 4 || c.Sent != int(calls.Load()) {
		t.Fatalf("Sent = %d, the API saw %d creates; want them equal and at least 4", c.Sent, calls.Load())
	}
	if len(c.LeaderChange) != 1 || !strings.Contains(c.LeaderChange[0], "leader changed") {
		t.Errorf("LeaderChange = %q, want the one leader-change error", c.LeaderChange)
	}
	if len(c.Failed) != 1 || !strings.Contains(c.Failed[0], "connection reset") {
		t.Errorf("Failed = %q, want the one connection error", c.Failed)
	}
	if c.AllFailed() != 2 {
		t.Errorf("AllFailed() = %d, want 2", c.AllFailed())
	}
	list, err := cs.CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != c.Sent-2 {
		t.Errorf("ConfigMaps stored: %d (%v), want the %d writes that did not fail", len(list.Items), err, c.Sent-2)
	}
	if s := c.Summary("a test"); !strings.Contains(s, "2 of ") || !strings.Contains(s, "1 of them failed by etcd") {
		t.Errorf("Summary = %q", s)
	}
}
