package upgrade

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// The UpgradePlan object of `upgrade plan -o json|yaml`: kubeadm's output.kubeadm.k8s.io/v1alpha3.
const (
	OutputAPIVersion = "output.kubeadm.k8s.io/v1alpha3"
	KindUpgradePlan  = "UpgradePlan"
)

// UpgradePlan is kubeadm's UpgradePlan.
type UpgradePlan struct {
	metav1.TypeMeta   `json:",inline"`
	AvailableUpgrades []AvailableUpgrade   `json:"availableUpgrades,omitempty"`
	ConfigVersions    []ConfigVersionState `json:"configVersions,omitempty"`
}

// AvailableUpgrade is one upgrade the plan offers.
type AvailableUpgrade struct {
	Description string                 `json:"description"`
	Components  []ComponentUpgradePlan `json:"components"`
}

// ComponentUpgradePlan is one row of an upgrade's table.
type ComponentUpgradePlan struct {
	Name           string `json:"name"`
	CurrentVersion string `json:"currentVersion"`
	NewVersion     string `json:"newVersion"`
	NodeName       string `json:"nodeName,omitempty"`
}

// ConfigVersionState is one component config's API version.
type ConfigVersionState struct {
	Group                 string `json:"group"`
	CurrentVersion        string `json:"currentVersion"`
	PreferredVersion      string `json:"preferredVersion"`
	ManualUpgradeRequired bool   `json:"manualUpgradeRequired"`
}

// Component names of the plan, kubeadm's.
const (
	kubeletComponent   = "kubelet"
	kubeProxyComponent = "kube-proxy"
	coreDNSComponent   = "CoreDNS"
)

// upgradeTo is one target with kubeadm's description of it.
type upgradeTo struct {
	description string
	release     *release.Release
	version     string
}

// Targets lists the upgrades the release table offers a cluster at clusterVersion, as kubeadm's
// GetAvailableUpgrades does with the labels it fetches: a newer patch of the cluster's minor ("version in the
// v1.X series"), and the next minor ("stable version"). With want set, only want (kubeadm's offline version).
func targets(clusterVersion, want string) ([]upgradeTo, error) {
	cv, err := version.ParseSemantic(strings.TrimPrefix(clusterVersion, "v"))
	if err != nil {
		return nil, fmt.Errorf("cluster version %q: %w", clusterVersion, err)
	}
	branch := fmt.Sprintf("version in the v%d.%d series", cv.Major(), cv.Minor())
	if want != "" {
		r, err := release.For(want)
		if err != nil {
			return nil, err
		}
		wv, err := version.ParseSemantic(strings.TrimPrefix(want, "v"))
		if err != nil {
			return nil, err
		}
		if !cv.LessThan(wv) {
			return nil, nil
		}
		d := "stable version"
		if wv.Minor() == cv.Minor() {
			d = branch
		}
		return []upgradeTo{{d, r, "v" + strings.TrimPrefix(want, "v")}}, nil
	}
	var out []upgradeTo
	if r, err := release.For(clusterVersion); err == nil && cv.LessThan(version.MustParseSemantic(r.Version)) {
		out = append(out, upgradeTo{branch, r, r.Version})
	}
	for _, r := range release.All() {
		if uint(r.Minor) == cv.Minor()+1 {
			out = append(out, upgradeTo{"stable version", r, r.Version})
		}
	}
	return out, nil
}

// Plan computes the UpgradePlan of s, offline: the targets come from the release table (want, when set, is the
// only one). etcdUpgrade adds the etcd rows, as kubeadm does for a local etcd.
func Plan(s *State, want string, etcdUpgrade bool) (*UpgradePlan, error) {
	ts, err := targets(s.ClusterVersion, want)
	if err != nil {
		return nil, err
	}
	p := &UpgradePlan{TypeMeta: metav1.TypeMeta{APIVersion: OutputAPIVersion, Kind: KindUpgradePlan}, ConfigVersions: s.ConfigVersions}
	etcdUpgrade = etcdUpgrade && s.Config.Etcd.External == nil && len(s.Components[staticpod.EtcdName]) > 0
	for _, t := range ts {
		var rows []ComponentUpgradePlan
		if canUpgradeKubelets(s.Kubelets, t.version) {
			rows = append(rows, perNode(kubeletComponent, s.Kubelets, t.version)...)
		}
		for _, c := range []string{staticpod.APIServerName, staticpod.ControllerManagerName, staticpod.SchedulerName} {
			rows = append(rows, perNode(c, s.Components[c], t.version)...)
		}
		proxy := s.KubeProxy
		if proxy == "" {
			proxy = s.ClusterVersion
		}
		rows = append(rows, ComponentUpgradePlan{Name: kubeProxyComponent, CurrentVersion: proxy, NewVersion: t.version})
		if s.DNS != "" {
			rows = append(rows, ComponentUpgradePlan{Name: coreDNSComponent, CurrentVersion: s.DNS, NewVersion: t.release.CoreDNSVersion})
		}
		if etcdUpgrade {
			etcd := t.release.EtcdVersion
			if l := s.Config.Etcd.Local; l != nil && l.ImageTag != "" {
				etcd = l.ImageTag
			}
			rows = append(rows, perNode(staticpod.EtcdName, s.Components[staticpod.EtcdName], etcd)...)
		}
		p.AvailableUpgrades = append(p.AvailableUpgrades, AvailableUpgrade{Description: t.description, Components: rows})
	}
	return p, nil
}

// canUpgradeKubelets is kubeadm's: several versions, or one that is not the target.
func canUpgradeKubelets(kubelets map[string][]string, target string) bool {
	if len(kubelets) > 1 {
		return true
	}
	if len(kubelets) == 0 {
		return false
	}
	_, same := kubelets[target]
	return !same
}

// perNode is one row per node, grouped by the current version sorted as strings, as kubeadm sorts them.
func perNode(name string, versions map[string][]string, target string) []ComponentUpgradePlan {
	keys := make([]string, 0, len(versions))
	for k := range versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []ComponentUpgradePlan
	for _, k := range keys {
		for _, n := range versions[k] {
			out = append(out, ComponentUpgradePlan{Name: name, CurrentVersion: k, NewVersion: target, NodeName: n})
		}
	}
	return out
}

// separator is kubeadm's line between the plan's blocks.
const separator = "_____________________________________________________________________\n\n"

// PrintText prints the plan as kubeadm's text tables (cmd/upgrade/plan.go), with kubeboot's command. With no
// upgrade available only the component-config table is printed, as kubeadm does.
func (p *UpgradePlan) PrintText(w io.Writer) error {
	for _, au := range p.AvailableUpgrades {
		var target string
		for _, c := range au.Components {
			if c.Name == staticpod.APIServerName {
				target = c.NewVersion
			}
		}
		v, err := version.ParseSemantic(strings.TrimPrefix(target, "v"))
		if err != nil {
			return fmt.Errorf("unable to parse normalized version %q as a semantic version: %w", target, err)
		}
		flag := ""
		if pre := v.PreRelease(); pre != "" {
			flag = " --allow-experimental-upgrades"
			if strings.HasPrefix(pre, "rc") {
				flag = " --allow-release-candidate-upgrades"
			}
		}
		fmt.Fprintln(w, "Components that must be upgraded manually after you have upgraded the control plane with 'kubeboot upgrade apply':")
		tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "COMPONENT\tNODE\tCURRENT\tTARGET")
		for _, c := range au.Components {
			if c.Name == kubeletComponent {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.NodeName, c.CurrentVersion, c.NewVersion)
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Upgrade to the latest %s:\n", au.Description)
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "COMPONENT\tNODE\tCURRENT\tTARGET")
		for _, c := range au.Components {
			if c.Name != kubeletComponent {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.NodeName, c.CurrentVersion, c.NewVersion)
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
		fmt.Fprintln(w, "You can now apply the upgrade by executing the following command:")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "\tkubeboot upgrade apply %s%s\n", target, flag)
		fmt.Fprintln(w)
		fmt.Fprint(w, separator)
	}
	if len(p.ConfigVersions) == 0 {
		_, err := fmt.Fprintln(w, "No information available on component configs.")
		return err
	}
	fmt.Fprint(w, `
The table below shows the current state of component configs as understood by this version of kubeboot.
Configs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED" column require manual config upgrade or
resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually
upgrade to is denoted in the "PREFERRED VERSION" column.

`)
	tw := tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "API GROUP\tCURRENT VERSION\tPREFERRED VERSION\tMANUAL UPGRADE REQUIRED")
	for _, s := range p.ConfigVersions {
		manual := "no"
		if s.ManualUpgradeRequired {
			manual = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Group, orDash(s.CurrentVersion), orDash(s.PreferredVersion), manual)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, separator)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
