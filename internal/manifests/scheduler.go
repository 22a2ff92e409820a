package manifests

import (
	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/config"
)

// Scheduler renders the kube-scheduler static Pod.
func Scheduler(cfg *config.Init, host Host) *corev1.Pod {
	extra := cfg.Cluster.Scheduler.ExtraArgs
	hp := newHostPaths()
	hp.add("kubeconfig", config.SchedulerConfig, config.SchedulerConfig, true, corev1.HostPathFileOrCreate)
	hp.addExtra(cfg.Cluster.Scheduler.ExtraVolumes)

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
	timeout := healthCheckTimeout(cfg)
	c := corev1.Container{
		Name:            SchedulerName,
		Image:           kubernetesImage(cfg, SchedulerName),
		ImagePullPolicy: pullPolicy(cfg),
		Command:         commandLine(SchedulerName, args, extra),
		VolumeMounts:    hp.volumeMounts(),
		LivenessProbe:   livenessProbe(probe, "/livez", corev1.URISchemeHTTPS),
		ReadinessProbe:  readinessProbe(probe, "/readyz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(probe, "/livez", corev1.URISchemeHTTPS, timeout),
		Resources:       cpuRequest("100m"),
		Env:             mergeEnv(host.ProxyEnv, extraEnv(cfg.Cluster.Scheduler.ExtraEnvs)),
		Ports:           probePort(schedulerPort),
	}
	return componentPod(c, hp.volumes, nil)
}
