package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

func voter(id uint64, name string, healthy bool) MemberStatus {
	s := MemberStatus{Member: Member{ID: id, Name: name, PeerURLs: []string{fmt.Sprintf("https://10.0.0.%d:2380", id)}}, Healthy: healthy}
	if !healthy {
		s.Problem = "unreachable"
	}
	return s
}

func learner(id uint64, name string, healthy bool) MemberStatus {
	s := voter(id, name, healthy)
	s.IsLearner = true
	return s
}

func TestCheckAdd(t *testing.T) {
	tests := []struct {
		name string
		st   []MemberStatus
		want string
	}{
		{"all healthy", []MemberStatus{voter(1, "a", true), voter(2, "b", true)}, ""},
		{"a learner down does not count", []MemberStatus{voter(1, "a", true), learner(2, "", false)}, ""},
		{"one voter down", []MemberStatus{voter(1, "a", true), voter(2, "b", false), voter(3, "c", true)},
			"etcd cluster is not healthy enough to add a member: voting member b (ID 2, peer https://10.0.0.2:2380) is not healthy: unreachable; bring it back, or remove it from the cluster, before adding another"},
		{"two down, one never started", []MemberStatus{voter(1, "a", false), voter(2, "", false)},
			"etcd cluster is not healthy enough to add a member: voting member a (ID 1, peer https://10.0.0.1:2380) is not healthy: unreachable; voting member (not started) (ID 2, peer https://10.0.0.2:2380) is not healthy: unreachable; bring it back, or remove it from the cluster, before adding another"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAdd(tt.st)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrUnhealthy) {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

func TestUntilNil(t *testing.T) {
	ctx := context.Background()
	t.Run("nil once the check passes", func(t *testing.T) {
		calls := 0
		err := untilNil(ctx, time.Second, 10*time.Millisecond, func(context.Context) error {
			if calls++; calls < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("err = %v after %d calls, want nil after 3", err, calls)
		}
	})
	t.Run("the last error once the wait ends", func(t *testing.T) {
		calls := 0
		start := time.Now()
		err := untilNil(ctx, 200*time.Millisecond, 20*time.Millisecond, func(context.Context) error {
			calls++
			return fmt.Errorf("down %d", calls)
		})
		took := time.Since(start)
		if err == nil || err.Error() != fmt.Sprintf("down %d", calls) || calls < 2 {
			t.Fatalf("err = %v after %d calls, want the last call's error", err, calls)
		}
		if took > 200*time.Millisecond+time.Second {
			t.Errorf("took %v with a 200ms wait", took)
		}
	})
	t.Run("a cancelled context ends the wait with its error", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := untilNil(cctx, time.Minute, 10*time.Millisecond, func(context.Context) error { return errors.New("down") })
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "down") {
			t.Fatalf("err = %v, want context.Canceled naming the check's error", err)
		}
	})
}

func TestCheckRemove(t *testing.T) {
	tests := []struct {
		name string
		st   []MemberStatus
		id   uint64
		want string
	}{
		{"3 healthy, remove one", []MemberStatus{voter(1, "a", true), voter(2, "b", true), voter(3, "c", true)}, 2, ""},
		{"remove the one that is down", []MemberStatus{voter(1, "a", true), voter(2, "b", true), voter(3, "c", false)}, 3, ""},
		{"a learner", []MemberStatus{voter(1, "a", false), learner(2, "b", true)}, 2, ""},
		{"2 of 3 left healthy of 4", []MemberStatus{voter(1, "a", true), voter(2, "b", true), voter(3, "c", false), voter(4, "d", true)}, 4, ""},
		{"would leave 1 of 2 healthy", []MemberStatus{voter(1, "a", true), voter(2, "b", true), voter(3, "c", false)}, 2,
			"etcd cluster is not healthy enough to remove b (ID 2, peer https://10.0.0.2:2380): 1 of the 2 voting members left would be healthy, and quorum needs 2 (down: c (ID 3, peer https://10.0.0.3:2380): unreachable); bring them back first"},
		{"learners do not make quorum", []MemberStatus{voter(1, "a", true), voter(2, "b", false), learner(3, "c", true)}, 1,
			"etcd cluster is not healthy enough to remove a (ID 1, peer https://10.0.0.1:2380): 0 of the 1 voting members left would be healthy, and quorum needs 1 (down: b (ID 2, peer https://10.0.0.2:2380): unreachable); bring them back first"},
		{"the last voter", []MemberStatus{voter(1, "a", true), learner(2, "b", true)}, 1,
			"etcd cluster is not healthy enough to remove a (ID 1, peer https://10.0.0.1:2380): it is the only voting member, and removing it ends the cluster"},
		{"unknown", []MemberStatus{voter(1, "a", true)}, 0x1f, "no such etcd member: ID 1f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRemove(tt.st, tt.id)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

func TestInitialClusterOf(t *testing.T) {
	members := []Member{
		{ID: 0x10, Name: "cp-1", PeerURLs: []string{"https://10.0.0.1:2380", "https://10.0.1.1:2380"}},
		{ID: 0x2a, PeerURLs: []string{"https://10.0.0.2:2380"}}, // added by someone else, not started
		{ID: 0x33, PeerURLs: []string{"https://10.0.0.3:2380"}}, // ours
	}
	got := initialClusterOf(members, 0x33, "cp-3")
	if want := "cp-1=https://10.0.0.1:2380,2a=https://10.0.0.2:2380,cp-3=https://10.0.0.3:2380"; got != want {
		t.Fatalf("initial cluster %q, want %q", got, want)
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrMemberLearnerNotReady, true},
		{fmt.Errorf("wrapped: %w", rpctypes.ErrUnhealthy), true},
		{rpctypes.ErrLeaderChanged, true},
		{context.DeadlineExceeded, true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{rpctypes.ErrMemberNotFound, false},
		{rpctypes.ErrTooManyLearners, false},
		{rpctypes.ErrPermissionDenied, false},
		{context.Canceled, false},
		{errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestClientTLS(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	cfg := &config.Init{}
	cfg.Init.NodeRegistration.Name = "n"
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "127.0.0.1"
	cfg.Cluster.Networking.ServiceSubnet = "10.96.0.0/12"
	cfg.Cluster.CertificatesDir = testCertDir
	cfg.Cluster.Etcd.Local = &config.LocalEtcd{}
	cfg.Cluster.EncryptionAlgorithm = config.EncryptionAlgorithmECDSAP256
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	leafCN := func() string {
		c, err := ClientTLS(fsys, testCertDir)
		if err != nil {
			t.Fatal(err)
		}
		if c.RootCAs == nil || len(c.Certificates) != 1 {
			t.Fatalf("config = %+v", c)
		}
		return c.Certificates[0].Leaf.Subject.CommonName
	}
	if cn := leafCN(); cn != "kube-etcd-healthcheck-client" {
		t.Errorf("client CN %q, want the healthcheck client", cn)
	}
	for _, f := range []string{"etcd/healthcheck-client.crt", "etcd/healthcheck-client.key"} {
		if err := os.Remove(fsys.Path(testCertDir + "/" + f)); err != nil {
			t.Fatal(err)
		}
	}
	if cn := leafCN(); cn != "kube-apiserver-etcd-client" {
		t.Errorf("client CN %q, want the apiserver's etcd client", cn)
	}
	for _, f := range []string{"apiserver-etcd-client.crt", "apiserver-etcd-client.key"} {
		if err := os.Remove(fsys.Path(testCertDir + "/" + f)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ClientTLS(fsys, testCertDir)
	want := "no etcd client certificate: none of /etc/kubernetes/pki/etcd/healthcheck-client.crt, /etc/kubernetes/pki/apiserver-etcd-client.crt exists; this node is not a control-plane node with stacked etcd, or run `kubeboot init phase certs etcd-healthcheck-client`"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	_, err = ClientTLS(nodefs.FS{Root: t.TempDir()}, testCertDir)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error without a CA = %v", err)
	}
}

func etcdPod(name, urls string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name, Labels: map[string]string{"component": "etcd", "tier": "control-plane"}}}
	if urls != "" {
		p.Annotations = map[string]string{staticpod.EtcdAdvertiseClientURLsAnnotation: urls}
	}
	return p
}

func TestEndpointsFromPods(t *testing.T) {
	other := etcdPod("kube-apiserver-cp-1", "https://10.0.0.9:2379")
	other.Labels["component"] = "kube-apiserver"
	c := fake.NewClientset(
		etcdPod("etcd-cp-2", "https://10.0.0.2:2379"),
		etcdPod("etcd-cp-1", "https://10.0.0.1:2379"),
		etcdPod("etcd-cp-3", ""), // not yet annotated
		other,
	)
	failed := false
	c.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failed {
			return false, nil, nil
		}
		failed = true
		return true, nil, apierrors.NewServiceUnavailable("restarting")
	})
	got, err := EndpointsFromPods(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}; !slices.Equal(got, want) {
		t.Fatalf("endpoints = %v, want %v", got, want)
	}

	// No annotated Pod: waited for until the context ends, then refused with the reason.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = EndpointsFromPods(ctx, fake.NewClientset(etcdPod("etcd-cp-1", "")))
	want := "no etcd Pod in kube-system carries the annotation kubeadm.kubernetes.io/etcd.advertise-client-urls: the cluster's etcd is external (set etcd.external), or its control-plane nodes were not made by kubeadm or kubeboot"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func apiServerSlice(ready map[string]bool) *discoveryv1.EndpointSlice {
	port, name := int32(6443), "https"
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}}}
	for addr, r := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &r}})
	}
	return s
}

func TestMemberEndpoints(t *testing.T) {
	slice := apiServerSlice(map[string]bool{"10.0.0.2": true, "10.0.0.1": true, "10.0.0.3": false})
	// The etcd Pods' annotation wins (a member may advertise another address than its API server).
	got, fromAPI, err := MemberEndpoints(t.Context(), fake.NewClientset(etcdPod("etcd-cp-1", "https://192.168.0.1:2379"), slice))
	if err != nil || fromAPI || !slices.Equal(got, []string{"https://192.168.0.1:2379"}) {
		t.Fatalf("with an etcd Pod: %v, from API servers %v, %v", got, fromAPI, err)
	}
	// None yet: the ready API servers' addresses at etcd's client port.
	got, fromAPI, err = MemberEndpoints(t.Context(), fake.NewClientset(etcdPod("etcd-cp-1", ""), slice))
	if want := []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}; err != nil || !fromAPI || !slices.Equal(got, want) {
		t.Fatalf("without an annotated etcd Pod: %v, from API servers %v, %v; want %v", got, fromAPI, err, want)
	}
	// Neither: waited for until the context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, _, err = MemberEndpoints(ctx, fake.NewClientset(apiServerSlice(map[string]bool{"10.0.0.3": false})))
	want := "no etcd Pod in kube-system carries the annotation kubeadm.kubernetes.io/etcd.advertise-client-urls, and the EndpointSlice " +
		"default/kubernetes lists no ready API server: the cluster's etcd is external (set etcd.external), or its control-plane nodes were not made by kubeadm or kubeboot"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestClientTLSFromMemory(t *testing.T) {
	fsys := nodefs.Memory()
	cfg := &config.Init{}
	cfg.Init.NodeRegistration.Name = "n"
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "127.0.0.1"
	cfg.Cluster.CertificatesDir = testCertDir
	cfg.Cluster.Etcd.Local = &config.LocalEtcd{}
	cfg.Cluster.EncryptionAlgorithm = config.EncryptionAlgorithmECDSAP256
	for _, phase := range []string{"etcd-ca", "etcd-healthcheck-client"} {
		if _, err := pki.Ensure(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), phase, pki.SystemSource()); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ClientTLS(fsys, testCertDir)
	if err != nil {
		t.Fatal(err)
	}
	if cn := c.Certificates[0].Leaf.Subject.CommonName; cn != "kube-etcd-healthcheck-client" {
		t.Errorf("client CN %q, want the healthcheck client", cn)
	}
}
