package upgrade

import (
	"fmt"
	"io"

	"github.com/pmezard/go-difflib/difflib"

	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// DefaultContextLines is `upgrade diff`'s default -c/--context-lines.
const DefaultContextLines = 3

// Diff writes a unified diff of each of this node's current manifests against the one t renders, with context
// lines of context, as kubeadm's `upgrade diff` does (the same diff library): kube-apiserver,
// kube-controller-manager and kube-scheduler, and, beyond kubeadm, etcd when this node runs a local member. Equal
// manifests print nothing.
func Diff(w io.Writer, fsys nodefs.FS, t Target, context int) error {
	components := []string{staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName}
	if t.Cluster.Etcd.External == nil && fsys.Exists(staticpod.Path(staticpod.EtcdName)) {
		components = append([]string{staticpod.EtcdName}, components...)
	}
	rendered, err := Render(fsys, t, components)
	if err != nil {
		return err
	}
	for _, r := range rendered {
		current, err := fsys.ReadFile(staticpod.Path(r.Component))
		if err != nil {
			return fmt.Errorf("read the current manifest of %s: %w", r.Component, err)
		}
		d := difflib.UnifiedDiff{
			A:        difflib.SplitLines(string(current)),
			B:        difflib.SplitLines(string(r.YAML)),
			FromFile: staticpod.Path(r.Component),
			ToFile:   "new manifest",
			Context:  context,
		}
		if err := difflib.WriteUnifiedDiff(w, d); err != nil {
			return fmt.Errorf("error writing unified diff: %w", err)
		}
	}
	return nil
}
