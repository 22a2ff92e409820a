// Package upgrade is `kubeboot upgrade`: the version policy, the plan, the static Pod upgrade engine, the phases of
// `upgrade apply` and `upgrade node`, and the manifest diff. It renders with the renderers init uses (package
// manifests) and reuses init's uploads, kubelet files, RBAC and addons; the version facts come from package release.
package upgrade

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"kubeboot.dev/kubeboot/internal/release"
)

// Skews kubeadm allows (kubeadm's phases/upgrade/policy.go).
const (
	MaxMinorUpgradeSkew   = 1
	MaxMinorDowngradeSkew = 1
	MaxMinorKubeletSkew   = 3
)

// PolicyInput is what the version policy looks at.
type PolicyInput struct {
	// Cluster is the control plane's version now (kubeadm-config's kubernetesVersion).
	Cluster string
	// Target is the version asked for, as the user wrote it.
	Target string
	// Kubelets maps each kubelet version of the cluster to its nodes; nil when they could not be read.
	Kubelets map[string][]string
	// AllowExperimental and AllowRC are --allow-experimental-upgrades and --allow-release-candidate-upgrades.
	AllowExperimental, AllowRC bool
}

// PolicyErrors are the policy's objections, sorted as kubeadm sorts them: Mandatory ones cannot be overridden,
// Skippable ones give way to --force.
type PolicyErrors struct {
	Mandatory []error
	Skippable []error
}

// ErrVersionPolicy is wrapped by the error of Enforce.
var ErrVersionPolicy = errors.New("the version policy refuses this upgrade")

// Err returns the objections that stop the upgrade given force, nil when none does.
func (p *PolicyErrors) Err(force bool) error {
	if p == nil {
		return nil
	}
	var lines []string
	for _, e := range p.Mandatory {
		lines = append(lines, "- "+e.Error())
	}
	if !force {
		for _, e := range p.Skippable {
			lines = append(lines, "- "+e.Error())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	head := "the upgrade version policy"
	if len(p.Mandatory) == 0 {
		head += " (can be skipped with --force)"
	}
	return fmt.Errorf("%w: %s:\n%s", ErrVersionPolicy, head, strings.Join(lines, "\n"))
}

// Warnings are the skippable objections that --force overrides, to print.
func (p *PolicyErrors) Warnings(force bool) []string {
	if p == nil || !force {
		return nil
	}
	var out []string
	for _, e := range p.Skippable {
		out = append(out, e.Error())
	}
	return out
}

// Policy is kubeadm's EnforceVersionPolicies with the release table in the place of kubeadm's own version: the
// target's minor must be in the table (kubeboot deploys every minor the table holds, where a kubeadm binary deploys
// its own), and its patch no higher than the table's for that minor (kubeadm: no higher than kubeadm's patch).
// The messages are kubeadm's, with kubeboot for kubeadm. nil: nothing objects.
func Policy(in PolicyInput) *PolicyErrors {
	errs := &PolicyErrors{}
	mandatory := func(format string, a ...any) { errs.Mandatory = append(errs.Mandatory, fmt.Errorf(format, a...)) }
	skippable := func(format string, a ...any) { errs.Skippable = append(errs.Skippable, fmt.Errorf(format, a...)) }
	cluster, err := version.ParseSemantic(strings.TrimPrefix(in.Cluster, "v"))
	if err != nil {
		mandatory("Unable to fetch cluster version: kubernetesVersion %q: %v", in.Cluster, err)
		return errs
	}
	target, err := version.ParseSemantic(strings.TrimPrefix(in.Target, "v"))
	if err != nil {
		mandatory("Unable to parse the version to upgrade to %q: %v", in.Target, err)
		return errs
	}
	if in.Kubelets == nil {
		skippable("Unable to fetch kubelet version")
	}
	// A pre-release target relaxes the minor skews to skippable, as in kubeadm.
	skew := mandatory
	if target.PreRelease() != "" {
		skew = skippable
	}
	oldest := release.Oldest()
	if target.Major() != 1 || target.Minor() < uint(oldest.Minor) {
		mandatory("Specified version to upgrade to %q is equal to or lower than the minimum supported version %q. Please specify a higher version to upgrade to",
			in.Target, fmt.Sprintf("v1.%d.0", oldest.Minor))
	}
	if target.Minor() > cluster.Minor()+MaxMinorUpgradeSkew {
		skew("Specified version to upgrade to %q is too high; kubeboot can upgrade only %d minor version at a time", in.Target, MaxMinorUpgradeSkew)
	}
	if target.Minor()+MaxMinorDowngradeSkew < cluster.Minor() {
		skew("Specified version to downgrade to %q is too low; kubeboot can downgrade only %d minor version at a time", in.Target, MaxMinorDowngradeSkew)
	}
	newest := release.Default()
	if r, err := release.For(in.Target); err != nil {
		if target.Minor() > uint(newest.Minor) {
			skew("Specified version to upgrade to %q is at least one minor release higher than the kubeboot minor release (%d > %d). Such an upgrade is not supported",
				in.Target, target.Minor(), newest.Minor)
		} else if target.Minor() >= uint(oldest.Minor) {
			mandatory("Specified version to upgrade to %q is not in kubeboot's release table: %v", in.Target, err)
		}
	} else if known := version.MustParseSemantic(r.Version); known.LessThan(target) {
		skippable("Specified version to upgrade to %q is higher than the kubeboot version %q. Upgrade kubeboot first using the tool you used to install kubeboot",
			in.Target, r.Version)
	}
	if target.PreRelease() != "" && !in.AllowExperimental && !(strings.HasPrefix(target.PreRelease(), "rc") && in.AllowRC) {
		skippable("Specified version to upgrade to %q is an unstable version and such upgrades weren't allowed via setting the --allow-*-upgrades flags", in.Target)
	}
	var tooOld []string
	for v := range in.Kubelets {
		kv, err := version.ParseSemantic(strings.TrimPrefix(v, "v"))
		if err != nil {
			skippable("couldn't parse kubelet version %s", v)
			continue
		}
		if target.Minor() > kv.Minor()+MaxMinorKubeletSkew {
			tooOld = append(tooOld, v)
		}
	}
	if len(tooOld) > 0 {
		sort.Strings(tooOld)
		skippable("There are kubelets in this cluster that are too old that have these versions %v", tooOld)
	}
	if len(errs.Mandatory) == 0 && len(errs.Skippable) == 0 {
		return nil
	}
	return errs
}
