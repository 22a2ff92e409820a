package loadbalancer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func apiServerSlice(ready map[string]*bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(6443))}},
	}
	for addr, r := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: r}})
	}
	return s
}

func TestAPIServersFromTheEndpointSlice(t *testing.T) {
	cs := fake.NewClientset(apiServerSlice(map[string]*bool{"10.0.0.12": ptr.To(true), "10.0.0.11": nil, "10.0.0.13": ptr.To(false)}))
	got, err := APIServers(t.Context(), cs)
	if err != nil || !slices.Equal(got, []string{"10.0.0.11:6443", "10.0.0.12:6443"}) {
		t.Fatalf("APIServers = %v, %v; want the ready (or unconditioned) endpoints, sorted", got, err)
	}
	if _, err := addresses(apiServerSlice(map[string]*bool{"10.0.0.13": ptr.To(false)})); err == nil || !strings.Contains(err.Error(), "lists no ready API server") {
		t.Errorf("no ready endpoint: %v", err)
	}
	noPort := apiServerSlice(map[string]*bool{"10.0.0.11": nil})
	noPort.Ports = nil
	if _, err := addresses(noPort); err == nil || !strings.Contains(err.Error(), "no https port") {
		t.Errorf("no port: %v", err)
	}
	if _, err := APIServers(t.Context(), fake.NewClientset()); err == nil || !strings.Contains(err.Error(), "default/kubernetes") {
		t.Errorf("no EndpointSlice: %v", err)
	}
}

// lister is a List whose answer the test changes.
type lister struct {
	mu   sync.Mutex
	list []string
	err  error
}

func (l *lister) set(list []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list, l.err = list, err
}

func (l *lister) List(context.Context) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list), l.err
}

// Follow: a new API server is added and written to the state file; one that leaves is removed; while the list
// cannot be read, the last one is kept.
func TestFollowKeepsTheListAndItsFile(t *testing.T) {
	p := newTestPKI(t)
	a, b := startBackend(t, "a", p), startBackend(t, "b", p)
	lb, log := startLB(t, Options{Backends: []string{a.addr()}, CheckInterval: 20 * time.Millisecond})
	state := filepath.Join(t.TempDir(), "lb", "backends.json")
	src := &lister{list: []string{a.addr(), b.addr()}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		lb.Follow(ctx, FollowOptions{List: src.List, StateFile: state, Interval: 10 * time.Millisecond})
	}()
	t.Cleanup(func() { cancel(); <-done })

	written := func(want ...string) func() bool {
		return func() bool {
			s, err := ReadState(state)
			return err == nil && s != nil && slices.Equal(s.Backends, want)
		}
	}
	eventually(t, 2*time.Second, "b followed and written", written(a.addr(), b.addr()))
	eventually(t, 2*time.Second, "a and b healthy", func() bool { return len(lb.Healthy()) == 2 })
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("state file: %v, %v; want 0644", fi, err)
	}

	src.set(nil, errors.New("connection refused"))
	time.Sleep(100 * time.Millisecond)
	if got := lb.Backends(); !slices.Equal(got, []string{a.addr(), b.addr()}) {
		t.Fatalf("backends while the list cannot be read: %v, want both kept", got)
	}
	if n := strings.Count(log.String(), "following the API servers: connection refused"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, log)
	}

	src.set([]string{b.addr()}, nil)
	eventually(t, 2*time.Second, "a removed and the file rewritten", func() bool {
		return slices.Equal(lb.Backends(), []string{b.addr()}) && written(b.addr())()
	})
	if !strings.Contains(log.String(), "following the API servers again") {
		t.Errorf("the recovery is not logged:\n%s", log)
	}
}

func TestReadState(t *testing.T) {
	dir := t.TempDir()
	if s, err := ReadState(filepath.Join(dir, "none.json")); s != nil || err != nil {
		t.Fatalf("a missing file: %v, %v", s, err)
	}
	file := filepath.Join(dir, "backends.json")
	want := State{Backends: []string{"10.0.0.11:6443"}, Updated: time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)}
	if err := WriteState(file, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadState(file); err != nil || !slices.Equal(got.Backends, want.Backends) || !got.Updated.Equal(want.Updated) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	for _, bad := range []string{"{", `{"backends": []}`, `{"backends": ["nohostport"]}`} {
		if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadState(file); err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "delete it") {
			t.Errorf("state %q: %v", bad, err)
		}
	}
}
