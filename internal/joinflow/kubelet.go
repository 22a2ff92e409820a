package joinflow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
	"kubeboot.dev/kubeboot/internal/patches"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/waiter"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// caCertMode is kubeadm's mode for ca.crt: a certificate is public.
const caCertMode = 0o644

// NodeReadyError refuses to join under the name of a Node that is already Ready: two kubelets would fight over it.
type NodeReadyError struct {
	Name string
}

func (e *NodeReadyError) Error() string {
	return fmt.Sprintf("a Node named %s is already Ready in the cluster: run kubeboot reset on it or choose --node-name", e.Name)
}

func runKubeletStart(ctx context.Context, d *Data) error {
	cl, err := d.Cluster(ctx)
	if err != nil {
		return err
	}
	jc := &d.Cfg.Join
	name := kubelet.NodeName(jc.NodeRegistration, d.Hostname)
	if err := checkNodeName(ctx, d, cl, name); err != nil {
		return err
	}

	// Everything is read and rendered before the first write.
	set, err := patches.LoadConfigured(d.FS, jc.Patches)
	if err != nil {
		return err
	}
	// The node-local API endpoint, when the cluster's nodes run it.
	var local *localEndpointPlan
	if port, ok := d.localEndpoint(cl); ok {
		if local, err = d.planLocalEndpoint(ctx, cl, port); err != nil {
			return err
		}
	}
	// kubeboot does the kubelet's TLS bootstrap itself, before the kubelet starts, with the API server discovery
	// found (or, on a control plane with the cluster CA's key at hand, signs the certificate itself: signingCA), and
	// writes kubelet.conf: no bootstrap-kubelet.conf, so the token never reaches the disk.
	//   - A worker's kubelet talks to the API server of cluster-info, as the kubelet would after bootstrapping
	//     itself. A kubelet that bootstraps itself runs as system:anonymous until its certificate comes, and its Node
	//     registration is refused and retried after 0.2, 0.4, 0.8, 1.6, 3.2 and 6.4 s; right after init the
	//     certificate waits seconds for the controller-manager's approver, and the Node then waits for the next
	//     retry. Started with its certificate, the kubelet registers at once. A settled cluster signs in about 30 ms.
	//   - A control plane's kubelet talks to its own API server, as kubeadm's does, so that it does not depend on
	//     the load balancer in front of controlPlaneEndpoint. That API server cannot serve the bootstrap: it only
	//     runs once this kubelet has started etcd and it.
	//   - With the node-local API endpoint, startLocalEndpoint does it, for the endpoint.
	kubeletServer := cl.Server
	if d.ControlPlane() && local == nil {
		cp, err := d.controlPlaneJoin(ctx)
		if err != nil {
			return err
		}
		if kubeletServer, err = kubeconfig.LocalURL(cp.node); err != nil {
			return err
		}
	}
	kubeletFiles, err := kubelet.RenderJoin(kubelet.JoinInput{
		NodeRegistration: jc.NodeRegistration,
		Cluster:          cl.Config,
		Kubelet:          cl.Kubelet,
		Hostname:         d.Hostname,
		SystemdResolved:  d.SystemdResolved,
		ControlPlane:     d.ControlPlane(),
		Patches:          set,
	})
	if err != nil {
		return err
	}
	// The certificate first: a request that is not issued leaves nothing behind.
	// kubelet.conf before the kubelet's flags and config: an init system that starts the kubelet once those are
	// written (the lab's does, and a crash-looping systemd kubelet comes back on its own) finds everything it
	// needs at once.
	if local == nil {
		if err := d.bootstrapKubelet(ctx, cl, name, kubeletServer); err != nil {
			return err
		}
	}
	// kubeadm keeps an existing CA file (preflight has already complained about it).
	if existing, err := d.FS.ReadFile(jc.CACertPath); err == nil {
		if string(existing) != string(cl.CAPEM) {
			fmt.Fprintf(d.Out, "  WARNING: keeping the existing %s, which is not the CA of the cluster being joined\n", jc.CACertPath)
		}
	} else {
		if err := d.FS.WriteFile(jc.CACertPath, cl.CAPEM, caCertMode); err != nil {
			return err // names the file already
		}
		fmt.Fprintf(d.Out, "  wrote %s\n", jc.CACertPath)
	}
	if local != nil {
		if err := d.startLocalEndpoint(ctx, cl, name, local); err != nil {
			return err
		}
	}
	if d.kubeletAfterEtcdAdd(cl) {
		d.pendingKubelet = &kubeletFiles
		fmt.Fprintf(d.Out, "  etcd-join writes %s and %s and starts the kubelet once this node's etcd member is added, so that the kubelet "+
			"registers its Node as soon as this node's API server serves\n", config.KubeletFlagsEnvFile, config.KubeletConfigFile)
		return nil
	}
	// kubelet-wait-bootstrap waits, as in kubeadm.
	return startKubelet(ctx, d, kubeletFiles)
}

// kubeletAfterEtcdAdd says whether etcd-join, not kubelet-start, writes the kubelet's flags and config and starts it:
// when this run has both phases (Select) and this control plane runs a stacked etcd member, and the run is real.
func (d *Data) kubeletAfterEtcdAdd(cl *Cluster) bool {
	return d.kubeletWithEtcd && d.ControlPlane() && cl.Config.Etcd.External == nil && !d.DryRun
}

// startKubelet writes the kubelet's flags and config and (re)starts it.
func startKubelet(ctx context.Context, d *Data, kubeletFiles kubelet.JoinFiles) error {
	if err := kubelet.WriteJoin(d.FS, kubeletFiles); err != nil {
		return err
	}
	for _, p := range kubeletFiles.Applied {
		fmt.Fprintln(d.Out, "  "+p.Line())
	}
	fmt.Fprintf(d.Out, "  wrote %s and %s\n", config.KubeletFlagsEnvFile, config.KubeletConfigFile)
	return restartKubelet(ctx, d)
}

// checkNodeName refuses a name a Ready Node already has. A Node that exists but is not Ready may be this
// machine joining again after a reset; kubeadm lets it join, and so does kubeboot.
func checkNodeName(ctx context.Context, d *Data, cl *Cluster, name string) error {
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Join.Timeouts.KubernetesAPICall.Duration)
	defer cancel()
	var node *corev1.Node
	err := apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		node, err = cl.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return explainAPIError(err, fmt.Sprintf("check whether a Node named %s exists", name), cl.Server, credentials(&d.Cfg.Join), nodebootstrap.GetNodes)
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return &NodeReadyError{Name: name}
		}
	}
	fmt.Fprintf(d.Out, "  a Node named %s exists but is not Ready: this machine takes it over\n", name)
	return nil
}

// bootstrapKubelet does the kubelet's client TLS bootstrap before the kubelet starts (kubelet.TLSBootstrap), with
// the join's credentials and the API server discovery found, or on a control plane that has the cluster CA's key
// signs the certificate with it (kubelet.SignClientCert), and writes kubelet.conf for server. It writes nothing
// when no certificate is issued, and the error says why.
func (d *Data) bootstrapKubelet(ctx context.Context, cl *Cluster, name, server string) error {
	if d.DryRun {
		how := "request the kubelet's client certificate"
		if _, _, ok := d.signingCA(ctx); ok {
			how = "sign the kubelet's client certificate with the cluster CA"
		}
		fmt.Fprintf(d.Out, "  dry run: would %s for %s and write %s (server %s)\n", how, name, config.KubeletKubeconfigFile, server)
		return nil
	}
	in := kubelet.TLSBootstrapInput{
		Client: cl.Client, NodeName: name, CertDir: kubeletCertDir(&d.Cfg.Join), Kubeconfig: config.KubeletKubeconfigFile,
		Server: server, CAPEM: cl.CAPEM, Timeout: d.Cfg.Join.Timeouts.TLSBootstrap.Duration, Source: d.Source, Out: d.Out,
	}
	if cluster, ca, ok := d.signingCA(ctx); ok {
		_, err := kubelet.SignClientCert(d.FS, in, cluster, ca)
		return err
	}
	_, err := kubelet.TLSBootstrap(ctx, d.FS, in)
	return err
}

// signingCA is the cluster CA with its key when this node is a control plane that has it (control-plane-prepare
// put it here): its kubelet's client certificate is then signed here (kubelet.SignClientCert).
func (d *Data) signingCA(ctx context.Context) (*config.Cluster, pki.CA, bool) {
	if !d.ControlPlane() {
		return nil, pki.CA{}, false
	}
	cp, err := d.controlPlaneJoin(ctx)
	if err != nil {
		return nil, pki.CA{}, false
	}
	now := time.Now()
	if d.Source.Now != nil {
		now = d.Source.Now()
	}
	ca, err := pki.LoadCA(d.FS, cp.cluster, pki.CAPhase, now)
	if err != nil || ca.Key == nil {
		return nil, pki.CA{}, false
	}
	return cp.cluster, ca, true
}

// kubeletCertDir is where the kubelet keeps its certificates: its --cert-dir (kubeletExtraArgs), else the default.
func kubeletCertDir(jc *config.JoinConfiguration) string {
	certDir := kubelet.CertDir
	for _, a := range jc.NodeRegistration.KubeletExtraArgs {
		if a.Name == "cert-dir" {
			certDir = a.Value
		}
	}
	return certDir
}

func restartKubelet(ctx context.Context, d *Data) error {
	return kubelet.Restart(ctx, d.InitSystem, d.Out, d.DryRun)
}

func runKubeletWaitBootstrap(ctx context.Context, d *Data) error {
	cl, err := d.Cluster(ctx)
	if err != nil {
		return err
	}
	return waitBootstrap(ctx, d, cl)
}

// waitBootstrap waits for the kubelet to answer on its healthz port (within timeouts.kubeletHealthCheck). When
// kubelet-start did the TLS bootstrap (kubeboot's always does), that is all. A kubelet that bootstraps itself from
// a bootstrap-kubelet.conf another tool's kubelet-start wrote must also have written kubelet.conf with its new
// client certificate (within timeouts.tlsBootstrap), both polled quickly; bootstrap-kubelet.conf is then removed,
// also when the wait fails, as kubeadm does: its token must not stay on the node.
func waitBootstrap(ctx context.Context, d *Data, cl *Cluster) error {
	if d.DryRun {
		fmt.Fprintln(d.Out, "  dry run: would wait for the kubelet's TLS bootstrap")
		return nil
	}
	to := d.Cfg.Join.Timeouts
	addr, port := config.KubeletHealthzBindAddress, int32(config.KubeletHealthzPort)
	if k := cl.Kubelet; k != nil {
		if k.HealthzBindAddress != "" {
			addr = k.HealthzBindAddress
		}
		if k.HealthzPort != nil && *k.HealthzPort != 0 {
			port = *k.HealthzPort
		}
	}
	if endpointPort, ok := d.localEndpoint(cl); ok {
		// kubelet-start did the TLS bootstrap: what is left is the kubelet running and registering its Node.
		if err := waitLocalBootstrap(ctx, d, cl, addr, port, endpointPort); err != nil {
			return err
		}
		d.bootstrapped = true
		return nil
	}
	if !d.FS.Exists(config.BootstrapKubeletConf) && kubeletConfUsable(d) == nil {
		// kubelet-start did the TLS bootstrap: what is left is the kubelet running.
		fmt.Fprintf(d.Out, "  %s is in place (kubelet-start did the TLS bootstrap): waiting for the kubelet (healthz up to %s)\n",
			config.KubeletKubeconfigFile, to.KubeletHealthCheck.Duration)
		w := &waiter.Waiter{Interval: d.interval(), Out: d.Out}
		if err := w.Wait(ctx, to.KubeletHealthCheck.Duration, waiter.Kubelet(addr, port)); err != nil {
			return hint.With(fmt.Errorf("the kubelet did not become healthy: %w", err),
				fmt.Sprintf("check the kubelet's log: it must run with --kubeconfig=%s --config=%s and the flags of %s",
					config.KubeletKubeconfigFile, config.KubeletConfigFile, config.KubeletFlagsEnvFile))
		}
		d.bootstrapped = true
		return nil
	}
	defer func() {
		if err := d.FS.Remove(config.BootstrapKubeletConf); err != nil {
			fmt.Fprintf(d.Out, "  WARNING: could not remove %s: %v\n", config.BootstrapKubeletConf, err)
		}
	}()
	fmt.Fprintf(d.Out, "  waiting for the kubelet's TLS bootstrap (healthz up to %s, %s up to %s)\n",
		to.KubeletHealthCheck.Duration, config.KubeletKubeconfigFile, to.TLSBootstrap.Duration)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := workflow.Locked(d.Out) // both waits below report
	start := time.Now()
	var healthErr, confErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		w := &waiter.Waiter{Interval: d.interval(), Out: out}
		if healthErr = w.Wait(ctx, to.KubeletHealthCheck.Duration, waiter.Kubelet(addr, port)); healthErr != nil {
			cancel() // no TLS bootstrap without a running kubelet
		}
	}()
	go func() {
		defer wg.Done()
		if confErr = waitKubeletConf(ctx, d, to.TLSBootstrap.Duration); confErr == nil {
			fmt.Fprintf(out, "  the kubelet wrote %s after %s\n", config.KubeletKubeconfigFile, time.Since(start).Round(10*time.Millisecond))
		}
	}()
	wg.Wait()
	if healthErr != nil || confErr != nil {
		return hint.With(fmt.Errorf("the kubelet did not finish its TLS bootstrap: %w", errors.Join(healthErr, confErr)),
			fmt.Sprintf("check the kubelet's log: it must run with --bootstrap-kubeconfig=%s --kubeconfig=%s --config=%s and the flags of %s",
				config.BootstrapKubeletConf, config.KubeletKubeconfigFile, config.KubeletConfigFile, config.KubeletFlagsEnvFile))
	}
	d.bootstrapped = true
	return nil
}

// waitKubeletConf polls until kubelet.conf is usable, as kubeadm checks it: it loads and its current context has a
// cluster and client credentials whose files exist.
func waitKubeletConf(ctx context.Context, d *Data, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(d.interval())
	defer t.Stop()
	last := errors.New("not checked yet")
	for {
		err := kubeletConfUsable(d)
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("%s not usable after %s: %w", config.KubeletKubeconfigFile, timeout, last)
			}
			return fmt.Errorf("%s not usable yet: %w", config.KubeletKubeconfigFile, last)
		case <-t.C:
		}
	}
}

func kubeletConfUsable(d *Data) error {
	kc, err := kubeconfig.Read(d.FS, config.KubeletKubeconfigFile)
	if err != nil {
		return err
	}
	_, user, err := kubeconfig.Current(kc)
	if err != nil {
		return err
	}
	if user == nil {
		return errors.New("no credentials in its current context")
	}
	for _, f := range []string{user.ClientCertificate, user.ClientKey} {
		if f != "" && !d.FS.Exists(f) {
			return fmt.Errorf("it names %s, which does not exist", f)
		}
	}
	if (len(user.ClientCertificateData) == 0 && user.ClientCertificate == "") || (len(user.ClientKeyData) == 0 && user.ClientKey == "") {
		return errors.New("no client certificate in its current context")
	}
	return nil
}
