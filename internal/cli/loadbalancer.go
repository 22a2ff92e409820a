package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/loadbalancer"
)

type loadBalancerFlags struct {
	listen     string
	backends   []string
	caFile     string
	kubeconfig string
	stateFile  string
}

func newLoadBalancerCmd(stdout io.Writer) *cobra.Command {
	var f loadBalancerFlags
	cmd := &cobra.Command{
		Use:   "loadbalancer --listen ADDR:PORT --backend HOST:PORT [--backend HOST:PORT ...]",
		Short: "Run a TCP load balancer in front of the API servers (the control-plane endpoint)",
		Long: `Run a TCP load balancer in front of the API servers of a highly available control plane, until SIGTERM.

Point controlPlaneEndpoint at --listen. Every API server is asked GET /readyz every 500 ms and put back in
rotation when it passes again. One that says it is not ready, or refuses the connection, leaves the rotation at
once: it is usually shutting down, so the connections it holds are left to finish for up to 30 s before they are
closed. One that does not answer within 3 s, three times in a row, leaves the rotation with its connections
closed, so clients reconnect to a live one; the last API server in rotation is never dropped that way. New connections go round robin to the healthy API servers. TLS passes
through: --ca-file (the cluster CA, /etc/kubernetes/pki/ca.crt) only makes the health checks verify the API
servers' certificates. A line is printed whenever an API server goes up or down.

With --follow-kubeconfig the backends follow the cluster: every 2 s the EndpointSlice default/kubernetes (which
every API server keeps, adding itself while it runs) is read with that kubeconfig, through its server (this load
balancer, typically), and the backends become its ready API servers. A new one is checked and joins the rotation;
one no longer listed leaves once another is healthy, never before. With --state-file the last list is kept on
disk and joins the --backend seeds at the next start, so a restart works while the seeds are down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := loadBalancerOptions(f)
			if err != nil {
				return err
			}
			opts.Log = stdout
			lb, err := loadbalancer.Listen(opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "listening on %s, forwarding to %s\n", lb.Addr(), strings.Join(opts.Backends, ", "))
			if f.kubeconfig != "" {
				rc, err := kubeclient.LoadFile(f.kubeconfig)
				if err != nil {
					return fmt.Errorf("--follow-kubeconfig: %w", err)
				}
				client, err := kubeclient.New(rc, kubeclient.Follow)
				if err != nil {
					return fmt.Errorf("--follow-kubeconfig: %w", err)
				}
				fmt.Fprintf(stdout, "following the API servers of the EndpointSlice default/kubernetes, read through %s\n", rc.Host)
				go lb.Follow(cmd.Context(), loadbalancer.FollowOptions{
					List:      func(ctx context.Context) ([]string, error) { return loadbalancer.APIServers(ctx, client) },
					StateFile: f.stateFile,
				})
			}
			err = lb.Serve(cmd.Context())
			fmt.Fprintln(stdout, "stopped")
			return err
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen", "", "ADDR:PORT to accept connections on (the control-plane endpoint)")
	cmd.Flags().StringArrayVar(&f.backends, "backend", nil, "an API server's HOST:PORT; repeat for each")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "verify the API servers' certificates in health checks with this CA (default: no verification)")
	cmd.Flags().StringVar(&f.kubeconfig, "follow-kubeconfig", "", "follow every API server of the cluster (EndpointSlice default/kubernetes), read with this kubeconfig")
	cmd.Flags().StringVar(&f.stateFile, "state-file", "", "keep the followed backend list in this file; at start its backends join --backend")
	return cmd
}

// loadBalancerOptions checks the flags and reads the CA file.
func loadBalancerOptions(f loadBalancerFlags) (loadbalancer.Options, error) {
	if f.listen == "" {
		return loadbalancer.Options{}, hint.With(errors.New("--listen is required"), "e.g. --listen 10.0.0.10:6443")
	}
	if len(f.backends) == 0 {
		return loadbalancer.Options{}, hint.With(errors.New("--backend is required"), "give each API server: --backend 10.0.0.1:6443 --backend 10.0.0.2:6443")
	}
	if f.stateFile != "" && f.kubeconfig == "" {
		return loadbalancer.Options{}, hint.With(errors.New("--state-file without --follow-kubeconfig"), "the state file keeps the list the load balancer follows; give --follow-kubeconfig too")
	}
	opts := loadbalancer.Options{Listen: f.listen, Backends: slices.Clone(f.backends)}
	if f.stateFile != "" {
		st, err := loadbalancer.ReadState(f.stateFile)
		if err != nil {
			return loadbalancer.Options{}, fmt.Errorf("--state-file: %w", err)
		}
		if st != nil {
			for _, b := range st.Backends {
				if !slices.Contains(opts.Backends, b) {
					opts.Backends = append(opts.Backends, b)
				}
			}
		}
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return loadbalancer.Options{}, fmt.Errorf("--ca-file: %w", err)
		}
		opts.RootCAs = x509.NewCertPool()
		if !opts.RootCAs.AppendCertsFromPEM(pem) {
			return loadbalancer.Options{}, fmt.Errorf("--ca-file %s: no PEM certificate in it", f.caFile)
		}
	}
	return opts, nil
}
