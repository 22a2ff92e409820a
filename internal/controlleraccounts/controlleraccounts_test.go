package controlleraccounts

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/release"
)

// kubeadmCommand is the controller-manager command line kubeadm renders (the flags Plan reads).
var kubeadmCommand = []string{"kube-controller-manager", "--bind-address=127.0.0.1", "--controllers=*,bootstrapsigner,tokencleaner", "--leader-elect=true", "--use-service-account-credentials=true"}

func TestPlan(t *testing.T) {
	tests := []struct {
		name       string
		command    []string
		version    string
		want       bool
		wantReason string
	}{
		{name: "kubeadm's flags at v1.37", command: kubeadmCommand, version: "v1.37.2", want: true},
		{name: "kubeadm's flags at v1.36", command: kubeadmCommand, version: "v1.36.0", want: true},
		{name: "v1.38 may run other controllers", command: kubeadmCommand, version: "v1.38.0",
			wantReason: "this version of kubeboot supports control planes v1.36.x to v1.37.x (default v1.37.2), not v1.38.0"},
		{name: "v1.35 too", command: kubeadmCommand, version: "v1.35.4",
			wantReason: "this version of kubeboot only supports deploying clusters with the control plane version >= v1.36.0. Current version: v1.35.4"},
		{name: "a version that does not parse", command: kubeadmCommand, version: "stable",
			wantReason: `kubernetesVersion "stable" is not a version such as v1.37.2: could not parse "stable" as version`},
		{name: "controllers share the controller-manager's identity", version: "v1.37.0",
			command:    append(slices.Clone(kubeadmCommand), "--use-service-account-credentials=false"),
			wantReason: "kube-controller-manager runs with --use-service-account-credentials=false: its controllers do not use their own accounts"},
		{name: "no credentials flag at all", version: "v1.37.0",
			command:    []string{"kube-controller-manager", "--controllers=*,bootstrapsigner,tokencleaner"},
			wantReason: "kube-controller-manager runs without --use-service-account-credentials: its controllers do not use their own accounts"},
		{name: "a user's controllers list, last one wins", version: "v1.37.0",
			command:    append(slices.Clone(kubeadmCommand), "--controllers=*,-ttl"),
			wantReason: "kube-controller-manager runs with --controllers=*,-ttl, not kubeadm's --controllers=*,bootstrapsigner,tokencleaner"},
		{name: "the last value is kubeadm's again", version: "v1.37.0",
			command: []string{"kube-controller-manager", "--controllers=*", "--use-service-account-credentials=true", "--controllers=*,bootstrapsigner,tokencleaner"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, reason := Plan(tt.command, tt.version)
			if tt.want {
				r, err := release.For(tt.version)
				if err != nil {
					t.Fatal(err)
				}
				if want := r.ControllerServiceAccounts; !slices.Equal(names, want) || reason != "" {
					t.Errorf("Plan = %d names, reason %q; want all %d names of v1.%d and no reason", len(names), reason, len(want), r.Minor)
				}
				return
			}
			if names != nil || reason != tt.wantReason {
				t.Errorf("Plan = %v, %q\nwant nil, %q", names, reason, tt.wantReason)
			}
		})
	}
}

func TestNamesAreSortedAndUnique(t *testing.T) {
	for _, r := range release.All() {
		names := r.ControllerServiceAccounts
		if len(names) == 0 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("v1.%d: ControllerServiceAccounts must be sorted, unique and not empty (the e2e test compares them with a kubeadm cluster as a set): %v", r.Minor, names)
		}
	}
}

// Names is the default release's list, which the Create tests use.
var Names = release.Default().ControllerServiceAccounts

func TestCreateLeavesExistingAccounts(t *testing.T) {
	existing := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "ttl-controller", Labels: map[string]string{"kept": "yes"}}}
	c := fake.NewClientset(existing)
	created, err := Create(t.Context(), c, Names)
	if err != nil {
		t.Fatal(err)
	}
	if created != len(Names)-1 {
		t.Errorf("created %d, want %d (all but the existing one)", created, len(Names)-1)
	}
	list, err := c.CoreV1().ServiceAccounts(Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sa := range list.Items {
		got = append(got, sa.Name)
		if sa.Name == "ttl-controller" && sa.Labels["kept"] != "yes" {
			t.Errorf("the existing account was changed: %+v", sa.ObjectMeta)
		}
		if sa.Name != "ttl-controller" && (len(sa.Labels) != 0 || len(sa.Annotations) != 0 || len(sa.Secrets) != 0) {
			t.Errorf("%s carries more than a name, unlike the controller-manager's own: %+v", sa.Name, sa)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, Names) {
		t.Errorf("accounts %v\nwant %v", got, Names)
	}

	created, err = Create(t.Context(), c, Names)
	if err != nil || created != 0 {
		t.Errorf("second Create = %d, %v; want 0, nil", created, err)
	}
}

func TestCreateRetriesAndNamesFailures(t *testing.T) {
	c := fake.NewClientset()
	var unavailable atomic.Int32
	gr := schema.GroupResource{Resource: "serviceaccounts"}
	c.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.CreateAction).GetObject().(*corev1.ServiceAccount).Name
		switch {
		case name == "ttl-controller":
			return true, nil, apierrors.NewForbidden(gr, name, errors.New("no"))
		case name == "job-controller" && unavailable.Add(1) <= 2:
			// kube-system does not exist yet for a moment after the API server starts serving.
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, Namespace)
		}
		return false, nil, nil
	})
	created, err := Create(t.Context(), c, []string{"job-controller", "ttl-controller", "cronjob-controller"})
	want := `create ServiceAccount kube-system/ttl-controller: serviceaccounts "ttl-controller" is forbidden: no`
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	if created != 2 || unavailable.Load() != 3 {
		t.Errorf("created %d after %d tries of job-controller; want 2 after 3", created, unavailable.Load())
	}
}

func TestCreateStopsWhenContextEnds(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("starting")
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := Create(ctx, c, []string{"job-controller"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "create ServiceAccount kube-system/job-controller: gave up after") {
		t.Errorf("error %v; want the account named and the deadline wrapped", err)
	}
}
