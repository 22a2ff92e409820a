package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// LoadBalancerArgs is the command line of the control-plane endpoint: kubeboot's own TCP load balancer,
// with the health checks verifying the API servers' certificates once the cluster CA exists.
func LoadBalancerArgs(binDir string, lb LoadBalancerSpec, caExists bool) []string {
	args := []string{filepath.Join(binDir, "kubeboot"), "loadbalancer", "--listen", lb.Listen}
	for _, b := range lb.Backends {
		args = append(args, "--backend", b)
	}
	if caExists && lb.CAFile != "" {
		args = append(args, "--ca-file", lb.CAFile)
	}
	return args
}

// runLoadBalancer keeps `kubeboot loadbalancer` running in the load balancer's netns, restarting it when it
// exits and when the cluster CA appears or changes (a lab whose first control plane is reset and initialised
// again has a new CA). The node is ready once the endpoint accepts connections.
func runLoadBalancer(ctx context.Context, s Spec, logger *log.Logger) error {
	if s.LoadBalancer == nil {
		return fmt.Errorf("node %s has the role %s but no loadBalancer in %s", s.Name, LoadBalancer, s.SpecFile())
	}
	lb := *s.LoadBalancer
	svc := &Service{
		Name: "loadbalancer",
		Command: func() (*exec.Cmd, error) {
			_, err := os.Stat(lb.CAFile)
			args := LoadBalancerArgs(s.BinDir, lb, err == nil)
			return s.logCommand("loadbalancer", args[0], args[1:]...)
		},
		Watch:   []string{lb.CAFile},
		Backoff: time.Second, Poll: 250 * time.Millisecond, StopTimeout: 5 * time.Second,
		PIDFile: s.PIDFile("loadbalancer"), Log: logger,
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { _ = svc.Run(ctx) })
	if err := waitTCP(ctx, lb.Listen, time.Minute); err != nil {
		return fmt.Errorf("load balancer %s (log %s): %w", s.Name, filepath.Join(s.LogDir(), "loadbalancer.log"), err)
	}
	if err := os.WriteFile(s.ReadyFile(), nil, 0o644); err != nil {
		return fmt.Errorf("node %s: %w", s.Name, err)
	}
	logger.Printf("load balancer %s ready: accepting on %s", s.Name, lb.Listen)
	<-ctx.Done()
	return nil
}

// waitTCP waits until addr accepts a TCP connection.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing accepts on %s: %w", addr, errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
