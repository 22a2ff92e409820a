package cli

import (
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// kubeadmHelp is upstream kubeadm's command tree, written by testdata/kubeadm/generate.sh.
const kubeadmHelp = "testdata/kubeadm/help-v1.37.2.txt"

// cliFlag is one flag as --help shows it.
type cliFlag struct{ Short, Type, Default string }

// cliTree maps a command path (without the root's name) to its local flags by name.
type cliTree map[string]map[string]cliFlag

// readKubeadmTree parses generate.sh's output.
func readKubeadmTree(t *testing.T) cliTree {
	t.Helper()
	data, err := os.ReadFile(kubeadmHelp)
	if err != nil {
		t.Fatal(err)
	}
	tree := cliTree{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		f := strings.Split(line, "\t")
		path := strings.TrimPrefix(strings.TrimPrefix(f[0], "kubeadm"), " ")
		if len(f) == 1 {
			tree[path] = map[string]cliFlag{}
			continue
		}
		if len(f) != 5 {
			t.Fatalf("%s: malformed line %q", kubeadmHelp, line)
		}
		tree[path][strings.TrimPrefix(f[1], "--")] = cliFlag{Short: f[2], Type: f[3], Default: f[4]}
	}
	return tree
}

// usageLine is pflag's help line of one flag: "  -s, --name type   usage (default x)".
var usageLine = regexp.MustCompile(`^\s+(?:(-\S), )?--(\S+)(?: (\S+))?\s{2,}`)

// kubebootTree walks kubeboot's cobra tree and describes each flag the way generate.sh reads kubeadm's --help:
// from pflag's own usage text, so types and defaults are shown by the same code.
func kubebootTree(t *testing.T, root *cobra.Command) (tree cliTree, refused map[string]bool) {
	t.Helper()
	tree, refused = cliTree{}, map[string]bool{}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Hidden || cmd.Name() == "help" {
			return
		}
		flags := map[string]cliFlag{}
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			one := pflag.NewFlagSet("", pflag.ContinueOnError)
			one.AddFlag(f)
			text := one.FlagUsagesWrapped(0)
			m := usageLine.FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("%s --%s: cannot read usage %q", cmd.CommandPath(), f.Name, text)
			}
			cf := cliFlag{Short: m[1], Type: m[3]}
			if cf.Type == "" {
				cf.Type = "bool"
			}
			text = strings.TrimSuffix(text, "\n")
			if i := strings.LastIndex(text, " (default "); i >= 0 && strings.HasSuffix(text, ")") {
				cf.Default = text[i+len(" (default ") : len(text)-1]
			}
			flags[f.Name] = cf
			if strings.HasPrefix(f.Usage, refusedFlagUsage) {
				refused[commandPath(cmd)+" --"+f.Name] = true
			}
		})
		tree[commandPath(cmd)] = flags
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
	return tree, refused
}

// found is one difference between the trees.
type found struct{ path, flag, what string }

func (f found) String() string {
	s := "kubeadm " + f.path
	if f.path == "" {
		s = "kubeadm"
	}
	if f.flag != "" {
		s += " --" + f.flag
	}
	return s + ": " + f.what
}

// listed returns the intended difference that covers f.
func listed(f found) (difference, bool) {
	for _, d := range differences {
		switch {
		case d.Refuse && d.Flag == "" && matchPath(d.Path, f.path, true):
			return d, true
		case d.Flag != "" && d.Flag == f.flag && matchPath(d.Path, f.path, false):
			return d, true
		case d.Flag == "" && f.flag == "" && matchPath(d.Path, f.path, false):
			return d, true
		}
	}
	return difference{}, false
}

func TestKubeadmCLIParity(t *testing.T) {
	upstream := readKubeadmTree(t)
	ours, refusedFlags := kubebootTree(t, newRoot(io.Discard, io.Discard))

	var all []found
	for path, flags := range upstream {
		refused := false
		for _, d := range differences {
			if d.Refuse && d.Flag == "" && matchPath(d.Path, path, true) {
				refused = true
			}
		}
		if refused {
			all = append(all, found{path, "", "refused"})
			continue
		}
		have, ok := ours[path]
		if !ok {
			all = append(all, found{path, "", "missing command"})
			continue
		}
		for name, want := range flags {
			got, ok := have[name]
			switch {
			case !ok:
				all = append(all, found{path, name, "missing flag"})
			case refusedFlags[path+" --"+name]:
				all = append(all, found{path, name, "refused"})
			case got != want:
				all = append(all, found{path, name, "kubeadm " + want.String() + ", kubeboot " + got.String()})
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].String() < all[j].String() })

	// The differences, one line per intended difference, with what the trees show there.
	matched := map[int][]found{}
	for _, f := range all {
		d, ok := listed(f)
		if !ok {
			t.Errorf("not an intended difference: %s", f)
			continue
		}
		if f.what == "refused" && !d.Refuse {
			t.Errorf("%s: refused, but listed as a difference that is not", f)
		}
		for i := range differences {
			if differences[i] == d {
				matched[i] = append(matched[i], f)
			}
		}
	}
	for i, d := range differences {
		name := strings.TrimSpace("kubeadm " + d.Path)
		if d.Flag != "" {
			name += " --" + d.Flag
		}
		fs := matched[i]
		switch {
		case d.Partial:
			t.Logf("%s: partly: %s", name, d.Reason)
		case len(fs) == 0:
			t.Errorf("stale intended difference (kubeboot and kubeadm agree, or kubeadm has no such command or flag): %s", name)
		case len(fs) == 1:
			t.Logf("%s: %s: %s", name, fs[0].what, d.Reason)
		default:
			t.Logf("%s: %d commands, e.g. %s: %s", name, len(fs), fs[0], d.Reason)
		}
	}
}

func (f cliFlag) String() string {
	s := f.Type
	if f.Short != "" {
		s = f.Short + " " + s
	}
	if f.Default != "" {
		s += " (default " + f.Default + ")"
	}
	return s
}

func commandAt(t *testing.T, root *cobra.Command, path string) *cobra.Command {
	t.Helper()
	cmd := root
	for _, w := range strings.Fields(path) {
		if cmd = findChild(cmd, w); cmd == nil {
			t.Fatalf("kubeboot has no command %q", path)
		}
	}
	return cmd
}

// TestDifferencesAreRefused runs every refused command and flag: each must answer with its reason before doing
// anything.
func TestDifferencesAreRefused(t *testing.T) {
	upstream := readKubeadmTree(t)
	for _, d := range differences {
		if !d.Refuse {
			continue
		}
		for path := range upstream {
			if d.Flag == "" && !matchPath(d.Path, path, true) || d.Flag != "" && !matchPath(d.Path, path, false) {
				continue
			}
			if _, ok := upstream[path][d.Flag]; d.Flag != "" && !ok {
				continue
			}
			args := strings.Fields(path)
			if d.Flag != "" {
				args = append(args, "--"+d.Flag)
				if !d.Bool {
					args = append(args, "x")
				}
			}
			code, _, errs := run(t, args...)
			if code != 1 || !strings.Contains(errs, d.Reason) || !strings.Contains(errs, "kubeboot does not support") {
				t.Errorf("kubeboot %s: exit %d, stderr:\n%s\nwant a refusal naming %q", strings.Join(args, " "), code, errs, d.Reason)
			}
		}
	}
}
