package upgrade

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPolicy(t *testing.T) {
	current := map[string][]string{"v1.36.3": {"cp1", "w1"}}
	tests := []struct {
		name          string
		in            PolicyInput
		wantMandatory []string
		wantSkippable []string
	}{
		{name: "one minor up", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.37.2", Kubelets: current}},
		{name: "a patch within the minor", in: PolicyInput{Cluster: "v1.37.0", Target: "v1.37.2", Kubelets: current}},
		{name: "the same version", in: PolicyInput{Cluster: "v1.37.2", Target: "v1.37.2", Kubelets: current}},
		{name: "one minor down", in: PolicyInput{Cluster: "v1.37.2", Target: "v1.36.3", Kubelets: current}},
		{name: "two minors up", in: PolicyInput{Cluster: "v1.35.4", Target: "v1.37.2", Kubelets: current},
			wantMandatory: []string{`Specified version to upgrade to "v1.37.2" is too high; kubeboot can upgrade only 1 minor version at a time`}},
		{name: "a minor the table does not know, above the newest", in: PolicyInput{Cluster: "v1.37.2", Target: "v1.38.0", Kubelets: current},
			wantMandatory: []string{`Specified version to upgrade to "v1.38.0" is at least one minor release higher than the kubeboot minor release (38 > 37). Such an upgrade is not supported`}},
		{name: "below the oldest minor", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.35.4", Kubelets: current},
			wantMandatory: []string{`Specified version to upgrade to "v1.35.4" is equal to or lower than the minimum supported version "v1.36.0". Please specify a higher version to upgrade to`}},
		{name: "two minors down", in: PolicyInput{Cluster: "v1.38.0", Target: "v1.36.3", Kubelets: current},
			wantMandatory: []string{`Specified version to downgrade to "v1.36.3" is too low; kubeboot can downgrade only 1 minor version at a time`}},
		{name: "a patch newer than the table's", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.37.9", Kubelets: current},
			wantSkippable: []string{`Specified version to upgrade to "v1.37.9" is higher than the kubeboot version "v1.37.2". Upgrade kubeboot first using the tool you used to install kubeboot`}},
		{name: "a release candidate without --allow-release-candidate-upgrades", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.37.2-rc.1", Kubelets: current},
			wantSkippable: []string{`Specified version to upgrade to "v1.37.2-rc.1" is an unstable version and such upgrades weren't allowed via setting the --allow-*-upgrades flags`}},
		{name: "a release candidate allowed", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.37.2-rc.1", Kubelets: current, AllowRC: true}},
		{name: "a pre-release two minors up is only skippable", in: PolicyInput{Cluster: "v1.35.0", Target: "v1.37.0-alpha.1", Kubelets: current, AllowExperimental: true},
			wantSkippable: []string{`Specified version to upgrade to "v1.37.0-alpha.1" is too high; kubeboot can upgrade only 1 minor version at a time`}},
		{name: "kubelets too old", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.37.2", Kubelets: map[string][]string{"v1.33.1": {"w1"}, "v1.36.3": {"cp1"}}},
			wantSkippable: []string{`There are kubelets in this cluster that are too old that have these versions [v1.33.1]`}},
		{name: "kubelets unknown", in: PolicyInput{Cluster: "v1.36.3", Target: "v1.37.2"},
			wantSkippable: []string{`Unable to fetch kubelet version`}},
		{name: "not a version", in: PolicyInput{Cluster: "v1.36.3", Target: "latest", Kubelets: current},
			wantMandatory: []string{`Unable to parse the version to upgrade to "latest": could not parse "latest" as version`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Policy(tt.in)
			if tt.wantMandatory == nil && tt.wantSkippable == nil {
				if got != nil {
					t.Fatalf("Policy = %+v, want nil", got)
				}
				return
			}
			if got == nil {
				t.Fatal("Policy = nil")
			}
			if d := cmp.Diff(tt.wantMandatory, texts(got.Mandatory)); d != "" {
				t.Errorf("Mandatory (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantSkippable, texts(got.Skippable)); d != "" {
				t.Errorf("Skippable (-want +got):\n%s", d)
			}
		})
	}
}

func TestPolicyErr(t *testing.T) {
	skip := Policy(PolicyInput{Cluster: "v1.36.3", Target: "v1.37.9", Kubelets: map[string][]string{}})
	err := skip.Err(false)
	want := "the version policy refuses this upgrade: the upgrade version policy (can be skipped with --force):\n" +
		`- Specified version to upgrade to "v1.37.9" is higher than the kubeboot version "v1.37.2". Upgrade kubeboot first using the tool you used to install kubeboot`
	if err == nil || err.Error() != want || !errors.Is(err, ErrVersionPolicy) {
		t.Errorf("Err(false) = %v\nwant %s", err, want)
	}
	if err := skip.Err(true); err != nil {
		t.Errorf("Err(true) = %v, want nil", err)
	}
	if w := skip.Warnings(true); len(w) != 1 {
		t.Errorf("Warnings(true) = %q", w)
	}
	hard := Policy(PolicyInput{Cluster: "v1.35.4", Target: "v1.37.2", Kubelets: map[string][]string{}})
	if err := hard.Err(true); err == nil {
		t.Error("Err(true) of a mandatory objection = nil")
	}
}

func texts(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, fmt.Sprint(e))
	}
	return out
}
