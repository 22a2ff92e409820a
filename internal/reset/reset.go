// Package reset is the phase tree of `kubeboot reset`: it undoes what init and join did to a node, so that
// either can run again. Every effect goes through Data (the node's filesystem under a root directory, the
// container runtime, the mount table, the init system), so tests run it on a temporary directory with fakes.
package reset

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Data is what every reset phase works on.
type Data struct {
	// Cfg is defaulted and validated (config.SetResetDefaults, config.ValidateReset).
	Cfg *config.ResetConfiguration
	// FS is the node's filesystem: the real root or a --rootfs directory.
	FS nodefs.FS
	// Out receives the phases' detail lines and the confirmation prompt.
	Out io.Writer
	// In answers the confirmation prompt.
	In io.Reader
	// InTerminal says whether In is a terminal; it only changes what a refusal says.
	InTerminal bool
	// Preflight is the machine as the root check sees it.
	Preflight preflight.Env
	// DialRuntime connects to the container runtime.
	DialRuntime func(ctx context.Context, criSocket string) (cri.Runtime, error)
	// InitSystem restarts the kubelet; if it is also a Stopper, the kubelet is stopped while the node is cleaned.
	InitSystem kubelet.InitSystem
	// Mounts is the mount table.
	Mounts Mounter
	// EtcdMembers counts the members of the local etcd member's cluster; nil trusts the manifest alone.
	EtcdMembers func(ctx context.Context, fsys nodefs.FS, m *EtcdMember) (int, error)

	// left collects what reset could not clean, for NotCleaned.
	left []string
}

// Stopper is an init system that can also stop a service. Stopping the kubelet first keeps it from starting
// the Pods again while they are being removed.
type Stopper interface {
	Stop(ctx context.Context, service string) error
}

// ErrNotConfirmed is returned when the user did not confirm the reset.
var ErrNotConfirmed = errors.New("reset not confirmed")

// ErrNotSupported is wrapped by errors about what reset cannot do yet.
var ErrNotSupported = errors.New("not supported yet")

// HintError carries advice for the user; the CLI prints the hint after the error.
type HintError struct {
	Err  error
	Text string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// Hint returns the advice.
func (e *HintError) Hint() string { return e.Text }

// Phases is the reset phase tree, with kubeadm's names.
func Phases() []workflow.Phase[*Data] {
	return []workflow.Phase[*Data]{
		{Name: "preflight", Short: "Run reset pre-flight checks", Run: runPreflight},
		{Name: "remove-etcd-member", Short: "Remove a local etcd member", Run: runRemoveEtcdMember},
		{Name: "cleanup-node", Short: "Run cleanup node", Run: runCleanupNode},
	}
}

func runPreflight(ctx context.Context, d *Data) error {
	switch {
	case d.Cfg.DryRun && !d.Cfg.Force:
		fmt.Fprintln(d.Out, "  [dryrun] would ask for confirmation; nothing is changed")
	case !d.Cfg.DryRun && !d.Cfg.Force:
		if err := confirm(d); err != nil {
			return err
		}
	}
	return preflight.Run(ctx, []preflight.Check{preflight.IsPrivilegedUser(d.Preflight)}, d.Cfg.IgnorePreflightErrors, d.Out)
}

// confirm asks "Are you sure?" and accepts y or yes. A script may answer through a pipe, as with kubeadm; with
// nothing to read (no terminal, stdin closed or /dev/null) it refuses rather than guess.
func confirm(d *Data) error {
	fmt.Fprintln(d.Out, "[reset] WARNING: Changes made to this host by 'kubeboot init' or 'kubeboot join' (or kubeadm's) will be reverted.")
	fmt.Fprint(d.Out, "[reset] Are you sure you want to proceed? [y/N]: ")
	line, err := bufio.NewReader(d.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(d.Out)
		return fmt.Errorf("%w: reading the answer from standard input: %w", ErrNotConfirmed, err)
	}
	if errors.Is(err, io.EOF) && line == "" {
		fmt.Fprintln(d.Out)
		what := "standard input is closed"
		if !d.InTerminal {
			what = "standard input is not a terminal and gave no answer"
		}
		return &HintError{
			Err:  fmt.Errorf("%w: %s", ErrNotConfirmed, what),
			Text: "run 'kubeboot reset --force' to reset without a question (or answer y on standard input)",
		}
	}
	if err != nil {
		fmt.Fprintln(d.Out) // the answer had no newline of its own
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("%w: the answer was not y or yes; nothing was changed", ErrNotConfirmed)
}

func runRemoveEtcdMember(ctx context.Context, d *Data) error {
	m, err := ReadEtcdManifest(d.FS)
	if err != nil {
		if !d.Cfg.Force && !d.Cfg.DryRun {
			return &HintError{
				Err:  fmt.Errorf("cannot tell whether this node runs a member of a larger etcd cluster: %w", err),
				Text: "fix or remove " + EtcdManifest + ", or pass --force to reset anyway (a member of a larger cluster would then stay in its member list)",
			}
		}
		d.leave(fmt.Sprintf("the etcd member of this node, if any: %v", err))
		fmt.Fprintf(d.Out, "  WARNING: %v\n", err)
		return nil
	}
	if m == nil {
		fmt.Fprintf(d.Out, "  no %s: this node runs no stacked etcd member (an external etcd must be cleaned up by hand)\n", EtcdManifest)
		return nil
	}
	n, source := len(m.InitialCluster), "the --initial-cluster of "+EtcdManifest
	if d.EtcdMembers != nil {
		live, err := d.EtcdMembers(ctx, d.FS, m)
		if err != nil {
			fmt.Fprintf(d.Out, "  could not ask the local etcd member for the member list (%v); relying on %s\n", err, source)
		} else {
			n, source = live, "the member list of the local etcd member"
		}
	}
	if n <= 1 {
		fmt.Fprintf(d.Out, "  etcd member %q is the only member (per %s): nothing to remove; cleanup-node deletes %s\n", m.Name, source, m.DataDir)
		return nil
	}
	err = fmt.Errorf("this node runs etcd member %q of a %d-member cluster (per %s), and removing a member from an etcd cluster is %w",
		m.Name, n, source, ErrNotSupported)
	switch {
	case d.Cfg.DryRun:
		fmt.Fprintf(d.Out, "  [dryrun] %v: without --force a reset stops here\n", err)
		return nil
	case !d.Cfg.Force:
		return &HintError{
			Err: err,
			Text: "remove the member from another control-plane node first ('etcdctl member remove <ID>'), or pass --force to reset anyway; " +
				"with --force the member stays in the member list and the other members count it toward quorum",
		}
	}
	fmt.Fprintf(d.Out, "  WARNING (--force): %v; the member stays in the member list\n", err)
	d.leave(fmt.Sprintf("etcd member %q: it is still in the member list of the other %d members; run 'etcdctl member remove <ID>' on another control-plane node", m.Name, n-1))
	return nil
}

func (d *Data) leave(what string) { d.left = append(d.left, what) }
