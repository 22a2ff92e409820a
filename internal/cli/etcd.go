package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
)

// etcdAPI is what the etcd commands ask; tests replace it.
type etcdAPI interface {
	MemberList(ctx context.Context) ([]etcd.Member, error)
	Status(ctx context.Context) ([]etcd.MemberStatus, error)
	Close() error
}

type etcdFlags struct {
	endpoints []string
	certDir   string
	rootfs    string
	timeout   time.Duration
}

// etcdConnect builds the client from the flags; tests replace it.
type etcdConnect func(f etcdFlags) (etcdAPI, error)

func hostEtcdConnect(f etcdFlags) (etcdAPI, error) {
	fsys, err := rootFS(f.rootfs)
	if err != nil {
		return nil, err
	}
	// Connect fails only for want of the etcd CA or a client certificate: it does not dial.
	c, err := etcd.Connect(fsys, f.certDir, etcd.Options{Endpoints: f.endpoints})
	if err != nil {
		return nil, hint.With(err, "run this on a control-plane node with stacked etcd, or pass --cert-dir")
	}
	return c, nil
}

func newEtcdCmd(stdout io.Writer) *cobra.Command {
	return newEtcdCmdWithDeps(stdout, hostEtcdConnect, hostSnapshotDeps())
}

func newEtcdCmdWith(stdout io.Writer, connect etcdConnect) *cobra.Command {
	return newEtcdCmdWithDeps(stdout, connect, hostSnapshotDeps())
}

func newEtcdCmdWithDeps(stdout io.Writer, connect etcdConnect, snapshotDeps snapshotDeps) *cobra.Command {
	var f etcdFlags
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Inspect the cluster's stacked etcd, back it up and restore it",
		Long: `Inspect the cluster's stacked etcd: its members and their health; back it up and restore it (snapshot).

The commands reach etcd as kubeadm's own tools do: with the etcd CA and the healthcheck-client certificate
(or apiserver-etcd-client) of the certificates directory, at the local member by default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringSliceVar(&f.endpoints, "endpoints", []string{etcd.LocalEndpoint}, "client URLs of etcd members to ask")
	pf.StringVar(&f.certDir, "cert-dir", config.DefaultCertificatesDir, "the certificates directory holding etcd/ca.crt and the etcd client certificate")
	pf.DurationVar(&f.timeout, "timeout", 15*time.Second, "give up after this long")

	run := func(cmd *cobra.Command, do func(ctx context.Context, api etcdAPI) error) error {
		f.rootfs = rootfsOf(cmd)
		api, err := connect(f)
		if err != nil {
			return err
		}
		defer api.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		return do(ctx, api)
	}

	member := &cobra.Command{
		Use:   "member",
		Short: "Inspect etcd members",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var listOutput string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the etcd members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEtcdOutput(listOutput); err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, api etcdAPI) error {
				members, err := api.MemberList(ctx)
				if err != nil {
					return hint.With(err, "is etcd running? `kubeboot etcd status --endpoints URL,...` asks other members")
				}
				if listOutput == "json" {
					return writeJSON(stdout, memberViews(members))
				}
				return writeMemberTable(stdout, members)
			})
		},
	}
	list.Flags().StringVarP(&listOutput, "output", "o", "table", "output format: table or json")
	member.AddCommand(list)

	var statusOutput string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show every member's health, the leader and the learners",
		Long: `Show every etcd member's health, the leader and the learners.

A member is healthy when it answers, knows a leader and reports no alarm. The command fails when any
member is not healthy, so scripts can wait on it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEtcdOutput(statusOutput); err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, api etcdAPI) error {
				st, err := api.Status(ctx)
				if err != nil {
					return hint.With(err, "is etcd running? --endpoints URL,... asks other members")
				}
				if statusOutput == "json" {
					err = writeJSON(stdout, statusViews(st))
				} else {
					err = writeStatusTable(stdout, st)
				}
				if err != nil {
					return err
				}
				return unhealthyError(st)
			})
		},
	}
	status.Flags().StringVarP(&statusOutput, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(member, status, newEtcdSnapshotCmd(stdout, &f, snapshotDeps))
	return cmd
}

func checkEtcdOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("--output %q: must be table or json", o)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// memberView is a member as scripts read it: the ID in etcd's hexadecimal.
type memberView struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Started    bool     `json:"started"`
	IsLearner  bool     `json:"isLearner"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
}

func memberViews(members []etcd.Member) []memberView {
	out := make([]memberView, 0, len(members))
	for _, m := range members {
		out = append(out, memberView{ID: m.IDString(), Name: m.Name, Started: m.Started(), IsLearner: m.IsLearner,
			PeerURLs: nonNil(m.PeerURLs), ClientURLs: nonNil(m.ClientURLs)})
	}
	return out
}

type statusView struct {
	memberView
	Endpoint         string `json:"endpoint,omitempty"`
	Healthy          bool   `json:"healthy"`
	Problem          string `json:"problem,omitempty"`
	IsLeader         bool   `json:"isLeader"`
	Leader           string `json:"leader,omitempty"`
	RaftTerm         uint64 `json:"raftTerm"`
	RaftIndex        uint64 `json:"raftIndex"`
	RaftAppliedIndex uint64 `json:"raftAppliedIndex"`
	DBSize           int64  `json:"dbSize"`
	Version          string `json:"version,omitempty"`
}

func statusViews(st []etcd.MemberStatus) []statusView {
	out := make([]statusView, 0, len(st))
	for _, s := range st {
		v := statusView{memberView: memberViews([]etcd.Member{s.Member})[0], Endpoint: s.Endpoint, Healthy: s.Healthy, Problem: s.Problem,
			IsLeader: s.IsLeader, RaftTerm: s.RaftTerm, RaftIndex: s.RaftIndex, RaftAppliedIndex: s.RaftAppliedIndex, DBSize: s.DBSize, Version: s.Version}
		if s.Leader != 0 {
			v.Leader = strconv.FormatUint(s.Leader, 16)
		}
		out = append(out, v)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeMemberTable prints members as etcdctl's member list table does.
func writeMemberTable(w io.Writer, members []etcd.Member) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tLEARNER\tPEER URLS\tCLIENT URLS")
	for _, m := range members {
		st := "started"
		if !m.Started() {
			st = "unstarted"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\n", m.IDString(), orDash(m.Name), st, m.IsLearner,
			orDash(strings.Join(m.PeerURLs, ",")), orDash(strings.Join(m.ClientURLs, ",")))
	}
	return tw.Flush()
}

// writeStatusTable prints one row per member and a summary: leader, learners, how many are healthy.
func writeStatusTable(w io.Writer, st []etcd.MemberStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tENDPOINT\tHEALTH\tROLE\tRAFT TERM\tRAFT INDEX\tVERSION\tDB SIZE\tPROBLEM")
	leader := "none"
	var learners []string
	healthy := 0
	for _, s := range st {
		role := "follower"
		switch {
		case s.IsLearner:
			role = "learner"
			learners = append(learners, orDash(s.Name)+" ("+s.IDString()+")")
		case s.IsLeader:
			role = "leader"
			leader = s.Name + " (" + s.IDString() + ")"
		case !s.Healthy:
			role = "-"
		}
		health := "unhealthy"
		if s.Healthy {
			health = "healthy"
			healthy++
		}
		term, index, size := "-", "-", "-"
		if s.Version != "" {
			term, index, size = strconv.FormatUint(s.RaftTerm, 10), strconv.FormatUint(s.RaftIndex, 10), humanBytes(s.DBSize)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(s.Name), s.IDString(), orDash(s.Endpoint), health, role,
			term, index, orDash(s.Version), size, orDash(s.Problem))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ls := "none"
	if len(learners) > 0 {
		ls = strings.Join(learners, ", ")
	}
	_, err := fmt.Fprintf(w, "\nleader: %s; learners: %s; healthy: %d of %d members\n", leader, ls, healthy, len(st))
	return err
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func unhealthyError(st []etcd.MemberStatus) error {
	var bad []string
	for _, s := range st {
		if !s.Healthy {
			bad = append(bad, orDash(s.Name)+" ("+s.IDString()+")")
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return hint.With(fmt.Errorf("%d of %d etcd members are not healthy: %s", len(bad), len(st), strings.Join(bad, ", ")),
		"the PROBLEM column says why each one is not healthy")
}
