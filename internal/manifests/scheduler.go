package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Scheduler renders the kube-scheduler static Pod.
func Scheduler(cluster *config.Cluster, node *config.Node, host Host) *corev1.Pod {
	extra := cluster.Scheduler.ExtraArgs
	hp := newHostPaths()
	hp.add("kubeconfig", config.SchedulerConfig, config.SchedulerConfig, true, corev1.HostPathFileOrCreate)
	hp.addExtra(cluster.Scheduler.ExtraVolumes)

	probe := "127.0.0.1"
	if addr, ok := argValue(extra, "bind-address"); ok {
		probe = probeHost(addr)
	}
	kubeconfig := config.SchedulerConfig
	args := []config.Arg{
		{Name: "bind-address", Value: "127.0.0.1"},
		{Name: "leader-elect", Value: "true"},
		{Name: "kubeconfig", Value: kubeconfig},
		{Name: "authentication-kubeconfig", Value: kubeconfig},
		{Name: "authorization-kubeconfig", Value: kubeconfig},
	}
	timeout := healthCheckTimeout(node)
	d := staticpod.Scheduler
	c := corev1.Container{
		Name:            d.Name,
		Image:           cluster.KubernetesImage(d.Name),
		ImagePullPolicy: pullPolicy,
		Command:         commandLine(d.Name, args, extra),
		VolumeMounts:    hp.volumeMounts(),
		LivenessProbe:   livenessProbe(probe, d.LivenessPath, d.Scheme),
		ReadinessProbe:  readinessProbe(probe, d.ReadinessPath, d.Scheme),
		StartupProbe:    startupProbe(probe, d.StartupPath, d.Scheme, timeout),
		Resources:       cpuRequest("100m"),
		Env:             mergeEnv(host.ProxyEnv, extraEnv(cluster.Scheduler.ExtraEnvs)),
		Ports:           probePort(d.Port),
	}
	return componentPod(c, hp.volumes, nil)
}
