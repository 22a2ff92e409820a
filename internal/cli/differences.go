package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/hint"
)

// A difference is a place where kubeboot's command line knowingly departs from upstream kubeadm v1.37's. Every
// command and flag of kubeadm either exists in kubeboot with the same meaning or is listed here with the reason;
// parity_test.go compares the two trees and fails on a difference that is not listed (and on an entry that no
// longer matches one). What kubeboot has beyond kubeadm is no difference and is not listed: the test looks for
// kubeadm's commands and flags in kubeboot's tree, not the reverse, so a kubeboot-only command (etcd,
// loadbalancer, certs auto-renew) or flag (certs renew's --restart, --restart-timeout, --if-expires-within) leaves
// kubeadm's meanings intact. kubeboot's own flags on kubeadm's commands start their help with "(beyond kubeadm)".
type difference struct {
	// Path is the command after "kubeadm", e.g. "upgrade" or "init phase kubeconfig *"; "*" matches any one word.
	// A refused command covers its subcommands.
	Path string
	// Flag is the flag's name without dashes; "" means the command itself.
	Flag string
	// Refuse makes kubeboot answer the command, or the flag when it is set, with an error giving the reason.
	// Otherwise the difference is in a flag's shorthand, type or default, and kubeboot's behaviour is described by
	// the reason.
	Refuse bool
	// Bool says a refused flag takes no value, as in kubeadm (only for Flag entries with Refuse).
	Bool bool
	// Partial marks a command or flag that kubeboot has, with kubeadm's name, type and default, but whose meaning
	// it covers only in part; the reason says how. The trees agree there, so the test cannot see it.
	Partial bool
	Reason  string
}

const (
	stableLabel = "kubeboot never asks dl.k8s.io for the \"stable-1\" label: it deploys the newest release of its release table unless a version is given"
)

// differences is kubeboot's list of intended differences from kubeadm v1.37.2.
var differences = []difference{
	{Path: "init", Flag: "kubernetes-version", Reason: stableLabel},
	{Path: "init phase * *", Flag: "kubernetes-version", Reason: stableLabel},
	{Path: "config images list", Flag: "kubernetes-version", Reason: stableLabel},
	{Path: "config images pull", Flag: "kubernetes-version", Reason: stableLabel},

	{Path: "config migrate", Flag: "allow-experimental-api", Refuse: true, Bool: true,
		Reason: "kubeboot does not read the experimental kubeadm.k8s.io/v1 (kubeadm v1.37's init and join refuse it too)"},
	{Path: "config validate", Flag: "allow-experimental-api", Refuse: true, Bool: true,
		Reason: "kubeboot does not read the experimental kubeadm.k8s.io/v1 (kubeadm v1.37's init and join refuse it too)"},

	{Path: "", Flag: "rootfs", Partial: true,
		Reason: "kubeboot reads and writes the node's files under the directory instead of chrooting into it: paths given in flags (--config, --kubeconfig) are read as given"},
	{Path: "config images list", Flag: "allow-missing-template-keys", Partial: true, Reason: "accepted and unused: kubeboot prints text, json and yaml, no templates"},
	{Path: "config images list", Flag: "show-managed-fields", Partial: true, Reason: "accepted and unused: kubeboot's output has no managed fields"},
	{Path: "token list", Flag: "allow-missing-template-keys", Partial: true, Reason: "accepted and unused: kubeboot prints text, json and yaml, no templates"},
	{Path: "token list", Flag: "show-managed-fields", Partial: true, Reason: "accepted and unused: kubeboot's output has no managed fields"},
	{Path: "reset", Flag: "kubeconfig", Partial: true, Reason: "accepted and unused: kubeboot's reset finds the etcd member and the certificates in the node's own files, not in the cluster's kubeadm-config"},
	{Path: "reset phase remove-etcd-member", Flag: "kubeconfig", Partial: true, Reason: "accepted and unused: the etcd member is found in the node's etcd manifest"},
}

// matchPath reports whether a command path matches a difference's pattern; with prefix, a pattern also matches
// the paths under it.
func matchPath(pattern, path string, prefix bool) bool {
	pw, cw := strings.Fields(pattern), strings.Fields(path)
	if len(cw) < len(pw) || (!prefix && len(cw) != len(pw)) {
		return false
	}
	for i, w := range pw {
		if w != "*" && w != cw[i] {
			return false
		}
	}
	return true
}

// commandPath is a command's path without the root's name, as the differences name it.
func commandPath(cmd *cobra.Command) string {
	p := cmd.CommandPath()
	if i := strings.IndexByte(p, ' '); i >= 0 {
		return p[i+1:]
	}
	return ""
}

// refusedCommandError is what a command kubeboot does not have answers.
func refusedCommandError(path, reason string) error {
	return hint.With(fmt.Errorf("kubeboot does not support \"kubeadm %s\": %s", path, reason),
		"run upstream kubeadm for this command; kubeboot's files and objects are the same as kubeadm's")
}

// refusedFlagError is what setting a flag kubeboot does not have answers.
func refusedFlagError(path, flag, reason string) error {
	return hint.With(fmt.Errorf("kubeboot does not support \"kubeadm %s --%s\": %s", path, flag, reason),
		"leave the flag out, or run upstream kubeadm for this command")
}

// refusedFlagUsage starts the help of a flag kubeboot refuses.
const refusedFlagUsage = "not in kubeboot: "

// applyDifferences adds the refused commands (with their subcommands and flags taking any arguments) and the
// refused flags to the tree, and makes them answer with their reasons.
func applyDifferences(root *cobra.Command, list []difference) {
	for _, d := range list {
		if !d.Refuse || d.Flag != "" {
			continue
		}
		parent := root
		words := strings.Fields(d.Path)
		for i, w := range words {
			child := findChild(parent, w)
			if child == nil {
				path, reason := strings.Join(words[:i+1], " "), d.Reason
				child = &cobra.Command{
					Use:                w,
					Short:              "Not in kubeboot: " + reason,
					DisableFlagParsing: true,
					RunE: func(*cobra.Command, []string) error {
						return refusedCommandError(path, reason)
					},
				}
				parent.AddCommand(child)
			}
			parent = child
		}
	}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		path := commandPath(cmd)
		var refused []difference
		for _, d := range list {
			if d.Refuse && d.Flag != "" && matchPath(d.Path, path, false) {
				refused = append(refused, d)
			}
		}
		if len(refused) > 0 {
			// A command with subcommands gets the flag for them too, as kubeadm's persistent flags.
			fs := cmd.Flags()
			if cmd.HasSubCommands() {
				fs = cmd.PersistentFlags()
			}
			for _, d := range refused {
				if fs.Lookup(d.Flag) != nil {
					continue
				}
				usage := refusedFlagUsage + d.Reason
				if d.Bool {
					fs.Bool(d.Flag, false, usage)
				} else {
					fs.String(d.Flag, "", usage)
				}
			}
			refuseIn(cmd, path, refused)
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

// refuseIn makes cmd and its subcommands answer with the reason when one of the refused flags is set.
func refuseIn(cmd *cobra.Command, path string, refused []difference) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			for _, d := range refused {
				if c.Flags().Changed(d.Flag) {
					return refusedFlagError(path, d.Flag, d.Reason)
				}
			}
			return run(c, args)
		}
	}
	for _, c := range cmd.Commands() {
		refuseIn(c, path, refused)
	}
}

func findChild(parent *cobra.Command, name string) *cobra.Command {
	for _, c := range parent.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}
