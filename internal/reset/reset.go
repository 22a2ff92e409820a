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
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/preflight"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// Data is what every reset phase works on.
type Data struct {
	// Env is the node: its filesystem (the real root or a --rootfs directory), the output (the phases' detail lines
	// and the confirmation prompt), the root check's view of the machine, the container runtime, and the init
	// system, which restarts the kubelet and, if it is also a Stopper, stops it while the node is cleaned.
	nodeenv.Env
	// Cfg is defaulted and validated (config.SetResetDefaults, config.ValidateReset).
	Cfg *config.ResetConfiguration
	// In answers the confirmation prompt.
	In io.Reader
	// InTerminal says whether In is a terminal; it only changes what a refusal says.
	InTerminal bool
	// Mounts is the mount table.
	Mounts Mounter
	// Etcd connects to the etcd cluster of this node's member at endpoints (OpenEtcd); nil: etcd cannot be reached.
	Etcd func(ctx context.Context, fsys nodefs.FS, m *EtcdMember, endpoints []string, callTimeout time.Duration) (EtcdMembership, error)
	// EtcdRemoteNode says FS is another node's root (--rootfs): its member is reached on its advertised client
	// URLs, not on this machine's loopback.
	EtcdRemoteNode bool
	// EtcdMembers lists the members as the local etcd member alone knows them (no quorum needed, LocalEtcdMembers),
	// for when the member list cannot be read through it; nil trusts the manifest alone.
	EtcdMembers func(ctx context.Context, fsys nodefs.FS, m *EtcdMember) ([]etcd.Member, error)

	// left collects what reset could not clean, for NotCleaned.
	left []string
	// removeAll deletes a path and what is below it; nil: os.RemoveAll.
	removeAll func(path string) error
}

// Stopper is an init system that can also stop a service. Stopping the kubelet first keeps it from starting
// the Pods again while they are being removed.
type Stopper interface {
	Stop(ctx context.Context, service string) error
}

// ErrNotConfirmed is returned when the user did not confirm the reset.
var ErrNotConfirmed = errors.New("reset not confirmed")

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
		return hint.With(fmt.Errorf("%w: %s", ErrNotConfirmed, what),
			"run 'kubeboot reset --force' to reset without a question (or answer y on standard input)")
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

// runRemoveEtcdMember removes this node's stacked etcd member from its cluster before cleanup-node stops the Pods,
// as kubeadm does: a member that is stopped but still listed counts toward quorum forever (a ghost). The removal
// is refused (unless --force) when the members left would not have a healthy majority.
func runRemoveEtcdMember(ctx context.Context, d *Data) error {
	m, err := ReadEtcdManifest(d.FS)
	if err == nil && m != nil && len(m.PeerURLs) == 0 {
		err = fmt.Errorf("%s: no --initial-advertise-peer-urls, so this member's peer URL is unknown", EtcdManifest)
	}
	if err != nil {
		if !d.Cfg.Force && !d.Cfg.DryRun {
			return hint.With(fmt.Errorf("cannot tell whether this node runs a member of a larger etcd cluster: %w", err),
				"fix or remove "+EtcdManifest+", or pass --force to reset anyway (a member of a larger cluster would then stay in its member list)")
		}
		d.leave(fmt.Sprintf("the etcd member of this node, if any: %v", err))
		fmt.Fprintf(d.Out, "  WARNING: %v\n", err)
		return nil
	}
	if m == nil {
		fmt.Fprintf(d.Out, "  no %s: this node runs no stacked etcd member (an external etcd must be cleaned up by hand)\n", EtcdManifest)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Timeouts.EtcdAPICall.Duration)
	defer cancel()
	peer := m.PeerURLs[0]
	members, err := d.etcdMembers(ctx, m)
	if err != nil {
		var viaOthers error
		if members, viaOthers = d.etcdMembersThroughOthers(ctx, m, peer); viaOthers != nil {
			return d.etcdUnreachable(ctx, m, err)
		}
		fmt.Fprintf(d.Out, "  this node's etcd member did not answer the member list (%v): asked the other members it knows\n", err)
	}
	i := slices.IndexFunc(members, func(x etcd.Member) bool { return slices.Contains(x.PeerURLs, peer) })
	switch {
	case i < 0:
		fmt.Fprintf(d.Out, "  etcd member %q (peer URL %s) is not in the member list: it was removed already; cleanup-node deletes %s\n", m.Name, peer, m.DataDir)
		return nil
	case len(members) == 1:
		fmt.Fprintf(d.Out, "  etcd member %q is the only member (per the member list of the local etcd member): nothing to remove; cleanup-node deletes %s\n", m.Name, m.DataDir)
		return nil
	}
	self := members[i]
	// Through the other members: the local one stops as soon as it learns it was removed, and a client retrying
	// on it alone would wait out its whole timeout.
	others := othersClientURLs(members, peer)
	if len(others) == 0 {
		others = d.localEtcdURLs(m) // the other members never started: only this one can take the request
	}
	mc, err := d.Etcd(ctx, d.FS, m, others, d.Cfg.Timeouts.EtcdAPICall.Duration)
	if err != nil {
		return d.etcdUnreachable(ctx, m, err)
	}
	defer mc.Close()
	what := fmt.Sprintf("etcd member %q (ID %s, peer URL %s)", m.Name, self.IDString(), peer)
	if err := mc.CheckQuorumSafeToRemove(ctx, self.ID); err != nil {
		switch {
		case d.Cfg.DryRun && !d.Cfg.Force:
			fmt.Fprintf(d.Out, "  [dryrun] %v: without --force a reset stops here\n", err)
			return nil
		case !d.Cfg.Force:
			return hint.With(err, "bring the members that are down back first; or pass --force to remove this member anyway, "+
				"at the risk of the cluster losing its quorum (and with it the API)")
		}
		fmt.Fprintf(d.Out, "  WARNING (--force): %v; removing %s anyway\n", err, what)
	}
	if d.Cfg.DryRun {
		fmt.Fprintf(d.Out, "  [dryrun] would remove %s from the %d-member etcd cluster\n", what, len(members))
		return nil
	}
	restoreAPIServer := d.retireAPIServer(ctx)
	if err := mc.Remove(ctx, self.ID); err != nil {
		if !d.Cfg.Force {
			restoreAPIServer()
			return hint.With(err, "retry the reset; or pass --force to reset anyway, and the member stays in the member list "+
				"(remove it from another control-plane node: 'etcdctl member remove "+self.IDString()+"')")
		}
		fmt.Fprintf(d.Out, "  WARNING (--force): %v; the member stays in the member list\n", err)
		d.leave(fmt.Sprintf("%s: it is still in the member list; run 'etcdctl member remove %s' on another control-plane node", what, self.IDString()))
		return nil
	}
	fmt.Fprintf(d.Out, "  removed %s from the etcd cluster: %d members remain\n", what, len(members)-1)
	return nil
}

// etcdMembers asks this node's etcd member for the member list (a linearizable read: it needs quorum).
func (d *Data) etcdMembers(ctx context.Context, m *EtcdMember) ([]etcd.Member, error) {
	if d.Etcd == nil {
		return nil, errors.New("no connection to etcd is configured")
	}
	endpoints := d.localEtcdURLs(m)
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%s: no loopback address in --listen-client-urls %s", EtcdManifest, strings.Join(m.ClientURLs, ","))
	}
	mc, err := d.Etcd(ctx, d.FS, m, endpoints, d.Cfg.Timeouts.EtcdAPICall.Duration)
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	return mc.MemberList(ctx)
}

// etcdMembersThroughOthers reads the member list through the other members the local one knows of (its own
// member list, which needs no quorum): a member that has just started, or that has not yet applied its own publish,
// may answer that but not a linearizable read, and the others can remove it all the same.
func (d *Data) etcdMembersThroughOthers(ctx context.Context, m *EtcdMember, peer string) ([]etcd.Member, error) {
	if d.EtcdMembers == nil || d.Etcd == nil {
		return nil, errors.New("no other way to reach the etcd cluster is configured")
	}
	local, err := d.EtcdMembers(ctx, d.FS, m)
	if err != nil {
		return nil, err
	}
	others := othersClientURLs(local, peer)
	if len(others) == 0 {
		return nil, errors.New("the local etcd member knows of no other member with a client URL")
	}
	mc, err := d.Etcd(ctx, d.FS, m, others, d.Cfg.Timeouts.EtcdAPICall.Duration)
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	return mc.MemberList(ctx)
}

// othersClientURLs are the client URLs of the members other than the one at peer.
func othersClientURLs(members []etcd.Member, peer string) []string {
	var out []string
	for _, x := range members {
		if !slices.Contains(x.PeerURLs, peer) {
			out = append(out, x.ClientURLs...)
		}
	}
	return out
}

// localEtcdURLs are where this node's etcd member answers: its loopback client URLs, or under --rootfs (whose
// loopback is not this machine's) its advertised ones.
func (d *Data) localEtcdURLs(m *EtcdMember) []string {
	if d.EtcdRemoteNode {
		return m.AdvertiseClientURLs
	}
	var out []string
	for _, u := range m.ClientURLs {
		if isLoopbackURL(u) {
			out = append(out, u)
		}
	}
	return out
}

// etcdUnreachable decides what to do when the member list cannot be read: a member that is alone may go with
// the node; a member of a larger cluster cannot be removed, and stays a ghost unless the user forces the reset.
func (d *Data) etcdUnreachable(ctx context.Context, m *EtcdMember, cause error) error {
	n, source := len(m.InitialCluster), "the --initial-cluster of "+EtcdManifest
	if d.EtcdMembers != nil {
		// Answered by the local member alone: it works without quorum.
		if live, err := d.EtcdMembers(ctx, d.FS, m); err == nil {
			n, source = len(live), "the local etcd member's own member list"
		}
	}
	fmt.Fprintf(d.Out, "  could not read the etcd member list (%v); relying on %s\n", cause, source)
	if n <= 1 {
		fmt.Fprintf(d.Out, "  etcd member %q is the only member (per %s): nothing to remove; cleanup-node deletes %s\n", m.Name, source, m.DataDir)
		return nil
	}
	err := fmt.Errorf("cannot remove etcd member %q from its %d-member cluster (per %s): %w", m.Name, n, source, cause)
	switch {
	case d.Cfg.DryRun:
		fmt.Fprintf(d.Out, "  [dryrun] %v: without --force a reset stops here\n", err)
		return nil
	case !d.Cfg.Force:
		return hint.With(err,
			"start the member again (the kubelet runs it from "+EtcdManifest+") so that reset can remove it; or remove it from "+
				"another control-plane node ('etcdctl member remove <ID>'); or pass --force to reset anyway, and the member stays "+
				"in the member list, where the other members count it toward quorum")
	}
	fmt.Fprintf(d.Out, "  WARNING (--force): %v; the member stays in the member list\n", err)
	d.leave(fmt.Sprintf("etcd member %q: it is still in the member list of the other %d members; run 'etcdctl member remove <ID>' on another control-plane node", m.Name, n-1))
	return nil
}

func (d *Data) leave(what string) { d.left = append(d.left, what) }
