package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/lab/node"
)

// CLI bootstraps with a kubeadm-compatible command (kubeadm itself, or kubeboot) run inside the
// node: `TOOL init --config FILE` and `TOOL join --config FILE`.
type CLI struct {
	Tool   string // binary name in BinDir
	BinDir string
	// CheckCommands makes Init and Join first ask the tool whether it has the command at all, so
	// that a tool still in development fails with a clear message instead of a usage dump.
	CheckCommands bool
}

func (c *CLI) Name() string { return c.Tool }

func (c *CLI) binary() string { return filepath.Join(c.BinDir, c.Tool) }

// Init runs TOOL init on the first control plane and returns how to join it.
func (c *CLI) Init(ctx context.Context, cp Target, cl Cluster) (JoinInfo, error) {
	cfg, err := InitConfig(cl, cp.Spec)
	if err != nil {
		return JoinInfo{}, err
	}
	args := []string{"init"}
	if cl.CertificateKey != "" {
		// Other control planes download the cluster's CA keys from the Secret this creates.
		args = append(args, "--upload-certs")
	}
	if err := c.run(ctx, cp, "init", cfg, args...); err != nil {
		return JoinInfo{}, err
	}
	hash, err := CACertHash(cp.Spec.HostPath("/etc/kubernetes/pki/ca.crt"))
	if err != nil {
		return JoinInfo{}, fmt.Errorf("%s init on %s: %w", c.Tool, cp.Spec.Name, err)
	}
	// Joins discover the cluster where every client reaches it: the endpoint, when there is one.
	endpoint := cl.ControlPlaneEndpoint
	if endpoint == "" {
		endpoint = fmt.Sprintf("%s:%d", cp.Spec.IP, apiPort)
	}
	return JoinInfo{APIServerEndpoint: endpoint, CACertHashes: []string{hash}}, nil
}

// Join runs TOOL join on n.
func (c *CLI) Join(ctx context.Context, n Target, cl Cluster, j JoinInfo, controlPlane bool) error {
	cfg, err := JoinConfig(cl, n.Spec, j, controlPlane)
	if err != nil {
		return err
	}
	return c.run(ctx, n, "join", cfg, "join")
}

// run writes the node's kubeadm config and patches, then runs the tool with --config, its output
// in the node's log directory.
func (c *CLI) run(ctx context.Context, t Target, phase string, cfg []byte, args ...string) error {
	n := t.Spec
	if _, err := os.Stat(c.binary()); err != nil {
		return fmt.Errorf("%s %s on %s: %w (was it built into %s?)", c.Tool, phase, n.Name, err, c.BinDir)
	}
	if c.CheckCommands {
		if err := c.checkCommand(ctx, t, phase); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(PatchesDir(n), 0o755); err != nil {
		return fmt.Errorf("%s %s on %s: %w", c.Tool, phase, n.Name, err)
	}
	if err := os.WriteFile(filepath.Join(PatchesDir(n), kubeletPatch), KubeletPatch(n), 0o644); err != nil {
		return fmt.Errorf("%s %s on %s: %w", c.Tool, phase, n.Name, err)
	}
	// The config carries the bootstrap token and certificate key: readable by root only.
	cfgPath := filepath.Join(n.Dir, c.Tool+"-"+phase+".yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return fmt.Errorf("%s %s on %s: %w", c.Tool, phase, n.Name, err)
	}
	logPath := filepath.Join(n.LogDir(), c.Tool+"-"+phase+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", c.Tool, phase, n.Name, err)
	}
	defer logf.Close()
	full := append([]string{c.binary()}, args...)
	full = append(full, "--config", cfgPath)
	fmt.Fprintf(logf, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(full, " "))
	if err := t.Run(ctx, logf, full...); err != nil {
		return fmt.Errorf("%s %s on %s failed: %w; last lines of %s:\n%s", c.Tool, phase, n.Name, err, logPath, node.Tail(logPath, 25))
	}
	return nil
}

// checkCommand asks `TOOL COMMAND --help`; a tool without the command fails or prints only its
// root usage.
func (c *CLI) checkCommand(ctx context.Context, t Target, command string) error {
	var out bytes.Buffer
	err := t.Run(ctx, &out, c.binary(), command, "--help")
	if err == nil && strings.Contains(out.String(), c.Tool+" "+command) {
		return nil
	}
	first := strings.TrimSpace(out.String())
	if i := strings.IndexByte(first, '\n'); i > 0 {
		first = first[:i]
	}
	return fmt.Errorf("%s has no working %q command yet (`%s %s --help`: %v, %q): use --bootstrapper kubeadm until it has",
		c.binary(), command, c.Tool, command, errText(err), first)
}

func errText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
