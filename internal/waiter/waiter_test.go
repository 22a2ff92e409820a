package waiter

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type fakeDiagnoser map[string]string

func (f fakeDiagnoser) Diagnose(_ context.Context, c string) string { return f[c] }

func TestWaitBecomesHealthy(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	var out bytes.Buffer
	w := Waiter{Interval: 5 * time.Millisecond, Out: &out}
	if err := w.Wait(t.Context(), 5*time.Second, Endpoint{Component: "kube-apiserver", URL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("polled %d times, want 3", calls.Load())
	}
	if !strings.HasPrefix(out.String(), "  kube-apiserver healthy after ") {
		t.Fatalf("progress %q", out.String())
	}
}

func TestWaitTimeoutExplains(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer healthy.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "[-]poststarthook/rbac failed", http.StatusInternalServerError)
	}))
	defer sick.Close()
	w := Waiter{Interval: 5 * time.Millisecond, Diagnose: fakeDiagnoser{"kube-scheduler": "container kube-scheduler: EXITED (exit code 1)\nlast log: bad flag"}}
	err := w.Wait(t.Context(), 200*time.Millisecond,
		Endpoint{Component: "kube-apiserver", URL: healthy.URL},
		Endpoint{Component: "kube-scheduler", URL: sick.URL},
		Endpoint{Component: "kube-controller-manager", URL: "http://127.0.0.1:1/healthz"},
	)
	var ue *UnhealthyError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want UnhealthyError", err)
	}
	if len(ue.Components) != 2 || ue.Components[0].Endpoint.Component != "kube-controller-manager" || ue.Components[1].Endpoint.Component != "kube-scheduler" {
		t.Fatalf("components %+v", ue.Components)
	}
	msg := err.Error()
	for _, want := range []string{
		"not healthy after 200ms: kube-controller-manager, kube-scheduler",
		"connection refused",
		"HTTP 500: [-]poststarthook/rbac failed",
		"    container kube-scheduler: EXITED (exit code 1)\n    last log: bad flag",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestWaitCanceledIsNotTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	w := Waiter{}
	err := w.Wait(ctx, time.Minute, Endpoint{Component: "kubelet", URL: "http://127.0.0.1:1/healthz"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestControlPlaneEndpoints(t *testing.T) {
	pod := func(cmd ...string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Command: cmd}}}}
	}
	eps, err := ControlPlane(map[string]*corev1.Pod{
		"kube-apiserver":          pod("kube-apiserver", "--advertise-address=10.0.0.5", "--secure-port=6444"),
		"kube-controller-manager": pod("kube-controller-manager", "--bind-address=127.0.0.1"),
		"kube-scheduler":          pod("kube-scheduler", "--bind-address=0.0.0.0", "--secure-port=10300"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kube-apiserver https://10.0.0.5:6444/livez",
		"kube-controller-manager https://127.0.0.1:10257/healthz",
		"kube-scheduler https://127.0.0.1:10300/livez",
	}
	var got []string
	for _, e := range eps {
		got = append(got, e.Component+" "+e.URL)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if k := Kubelet("127.0.0.1", 10248); k.URL != "http://127.0.0.1:10248/healthz" {
		t.Fatalf("kubelet %s", k.URL)
	}
}

// A stacked etcd is waited for too, at its metrics listener (kubeadm's probes), so that its failure is diagnosed.
func TestControlPlaneEndpointsWithEtcd(t *testing.T) {
	pod := func(cmd ...string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Command: cmd}}}}
	}
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"etcd", "--listen-metrics-urls=http://127.0.0.1:2381"}, "http://127.0.0.1:2381/livez"},
		{[]string{"etcd", "--listen-metrics-urls=http://127.0.0.1:2999,http://10.0.0.5:2999"}, "http://127.0.0.1:2999/livez"},
		{[]string{"etcd"}, "http://127.0.0.1:2381/livez"},
	} {
		eps, err := ControlPlane(map[string]*corev1.Pod{"etcd": pod(c.cmd...)})
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 1 || eps[0].Component != "etcd" || eps[0].URL != c.want {
			t.Errorf("%v: got %+v, want etcd at %s", c.cmd, eps, c.want)
		}
	}
}
