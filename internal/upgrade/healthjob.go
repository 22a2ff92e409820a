package upgrade

import (
	"context"
	"fmt"
	"io"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
)

// HealthJobTimeout bounds kubeadm's CreateJob check (60 s from 1.36 on).
var HealthJobTimeout = 60 * time.Second

// healthJobInterval is how often the Job's status is read.
var healthJobInterval = time.Second

// RunHealthJob is kubeadm's CreateJob check: a Job kube-system/upgrade-health-check-<unix ms> running the pause
// image must complete, which proves that the API server, the scheduler, the controller manager and a kubelet
// work together. A cluster without a schedulable Node skips it with a warning, as kubeadm does.
func RunHealthJob(ctx context.Context, client kubernetes.Interface, cluster *config.Cluster, out io.Writer) error {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{FieldSelector: "spec.unschedulable=false", Limit: 1})
	if err != nil {
		return fmt.Errorf("[CreateJob]: could not list Nodes: %w", err)
	}
	if len(nodes.Items) == 0 {
		fmt.Fprintln(out, "[upgrade/health] WARNING: The CreateJob health check is skipped: no schedulable Nodes")
		return nil
	}
	pause, err := cluster.PauseImage()
	if err != nil {
		return err
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("upgrade-health-check-%d", time.Now().UnixMilli()), Namespace: metav1.NamespaceSystem},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			TTLSecondsAfterFinished: ptr.To[int32](65),
			ActiveDeadlineSeconds:   ptr.To[int64](65),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{
					RunAsUser: ptr.To[int64](999), RunAsGroup: ptr.To[int64](999), RunAsNonRoot: ptr.To(true),
				},
				Tolerations: []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}},
				Containers:  []corev1.Container{{Name: "upgrade-health-check", Image: pause, Args: []string{"-v"}}},
			}},
		},
	}
	start := time.Now()
	if _, err := client.BatchV1().Jobs(metav1.NamespaceSystem).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("[CreateJob]: could not create Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, healthJobInterval, HealthJobTimeout, true, func(ctx context.Context) (bool, error) {
		j, err := client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		last = "the Job has not completed"
		return false, nil
	})
	if err != nil {
		return hint.With(fmt.Errorf("%w: [CreateJob]: Job %s/%s did not complete within %s: %s", ErrNotReady, job.Namespace, job.Name, HealthJobTimeout, last),
			fmt.Sprintf("nothing was changed; look at `kubectl -n kube-system describe job %s` and its Pod: the scheduler, the controller manager or the kubelets may not work", job.Name))
	}
	fmt.Fprintf(out, "[upgrade/health] Job %s completed (%s)\n", job.Name, time.Since(start).Round(100*time.Millisecond))
	return nil
}
