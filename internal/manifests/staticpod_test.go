package manifests

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/config"
)

func TestStaticPodIsShapedAsTheControlPlanes(t *testing.T) {
	c := corev1.Container{Name: "node-thing", Image: "img", VolumeMounts: []corev1.VolumeMount{{Name: "dropped", MountPath: "/x"}}}
	labels := map[string]string{"component": "node-thing", "tier": "node"}
	pod := StaticPod(c, labels, []config.HostPathMount{
		{Name: "b", HostPath: "/host/b", MountPath: "/b", PathType: corev1.HostPathDirectoryOrCreate},
		{Name: "a", HostPath: "/host/a", MountPath: "/a", ReadOnly: true, PathType: corev1.HostPathFile},
	})
	// Everything but the container, the labels and the volumes is what the control plane's Pods share.
	want := componentPod(corev1.Container{}, nil, nil)
	got := pod.DeepCopy()
	if d := cmp.Diff(labels, got.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if got.Name != "node-thing" {
		t.Errorf("name %q", got.Name)
	}
	got.Name, got.Labels, got.Spec.Containers, got.Spec.Volumes = "", want.Labels, want.Spec.Containers, want.Spec.Volumes
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Pod (-control plane's +got):\n%s", d)
	}
	gc := pod.Spec.Containers[0]
	wantMounts := []corev1.VolumeMount{{Name: "a", MountPath: "/a", ReadOnly: true}, {Name: "b", MountPath: "/b"}}
	if d := cmp.Diff(wantMounts, gc.VolumeMounts); d != "" {
		t.Errorf("mounts (-want +got):\n%s", d)
	}
	if gc.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("pull policy %q", gc.ImagePullPolicy)
	}
	if len(pod.Spec.Volumes) != 2 || pod.Spec.Volumes[0].Name != "a" || *pod.Spec.Volumes[0].HostPath.Type != corev1.HostPathFile {
		t.Errorf("volumes %+v", pod.Spec.Volumes)
	}
}
