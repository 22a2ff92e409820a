package upgrade

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/cri"
)

func TestRunHealthJob(t *testing.T) {
	defer func(t0, i0 time.Duration) { HealthJobTimeout, healthJobInterval = t0, i0 }(HealthJobTimeout, healthJobInterval)
	HealthJobTimeout, healthJobInterval = 50*time.Millisecond, time.Millisecond
	cfg := testInit(t, "v1.37.2")
	for _, complete := range []bool{true, false} {
		client := threeNodes().client(t)
		var created *batchv1.Job
		client.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
			created = a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
			if complete {
				created.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
			}
			return false, nil, nil
		})
		var out bytes.Buffer
		err := RunHealthJob(t.Context(), client, cfg.ClusterPart(), &out)
		if created == nil {
			t.Fatal("no Job created")
		}
		c := created.Spec.Template.Spec.Containers[0]
		if c.Image != "registry.k8s.io/pause:3.10.2" || *created.Spec.BackoffLimit != 0 || *created.Spec.ActiveDeadlineSeconds != 65 ||
			!strings.HasPrefix(created.Name, "upgrade-health-check-") || created.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("Job %+v", created)
		}
		if complete && err != nil {
			t.Errorf("a completed Job: %v", err)
		}
		if !complete && (!errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "did not complete within 50ms")) {
			t.Errorf("a Job that does not complete: %v", err)
		}
	}
}

type puller struct {
	present map[string]bool
	pulled  []string
}

func (p *puller) ImageStatus(_ context.Context, ref string) (cri.Image, error) {
	return cri.Image{Present: p.present[ref]}, nil
}

func (p *puller) PullImage(_ context.Context, ref string) error {
	p.pulled = append(p.pulled, ref)
	if strings.Contains(ref, "coredns") {
		return errors.New("unreachable registry")
	}
	return nil
}

func TestApplyPrepullsImages(t *testing.T) {
	c := threeNodes()
	c.controlPlanes = []string{"cp-1"}
	var out bytes.Buffer
	d, _ := flowData(t, c, "v1.37.2", &out)
	p := &puller{present: map[string]bool{"registry.k8s.io/pause:3.10.2": true}}
	d.Images = p
	r := ApplyPhases()[:1] // preflight
	if err := run(t, r, d); err != nil {
		t.Fatalf("preflight: %v\n%s", err, out.String())
	}
	want := []string{"registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2", "registry.k8s.io/kube-scheduler:v1.37.2",
		"registry.k8s.io/kube-proxy:v1.37.2", "registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/etcd:3.7.0-0"}
	if strings.Join(p.pulled, " ") != strings.Join(want, " ") {
		t.Errorf("pulled %q\nwant %q", p.pulled, want)
	}
	if !strings.Contains(out.String(), "[upgrade/prepull] WARNING: pull registry.k8s.io/coredns/coredns:v1.14.6: unreachable registry") {
		t.Errorf("output:\n%s", out.String())
	}
}

// With the UpgradeConfiguration's imagePullPolicy Never nothing is pulled: a missing image refuses the upgrade in
// preflight, naming it, and with every image present preflight passes.
func TestApplyPullPolicyNever(t *testing.T) {
	for _, allPresent := range []bool{false, true} {
		c := threeNodes()
		c.controlPlanes = []string{"cp-1"}
		var out bytes.Buffer
		d, _ := flowData(t, c, "v1.37.2", &out)
		d.ImagePullPolicy = corev1.PullNever
		p := &puller{present: map[string]bool{}}
		for _, ref := range []string{"registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2", "registry.k8s.io/kube-scheduler:v1.37.2",
			"registry.k8s.io/kube-proxy:v1.37.2", "registry.k8s.io/etcd:3.7.0-0", "registry.k8s.io/pause:3.10.2"} {
			p.present[ref] = true
		}
		p.present["registry.k8s.io/coredns/coredns:v1.14.6"] = allPresent
		d.Images = p
		err := run(t, ApplyPhases()[:1], d)
		if len(p.pulled) > 0 {
			t.Errorf("pulled %q with the pull policy Never", p.pulled)
		}
		if allPresent && err != nil {
			t.Errorf("every image present: %v", err)
		}
		if want := "[ImagePull]: image registry.k8s.io/coredns/coredns:v1.14.6 not found and the image pull policy is Never"; !allPresent && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("a missing image: %v, want %s", err, want)
		}
	}
}
