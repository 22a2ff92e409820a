package release

import (
	"slices"
	"testing"
)

func TestTableIsNewestFirstAndDefaultIsNewest(t *testing.T) {
	all := All()
	if len(all) != 2 || all[0].Minor != 37 || all[1].Minor != 36 {
		t.Fatalf("releases %v, want 1.37 then 1.36 (kubeadm v1.37's window)", minors(all))
	}
	if Default() != all[0] || DefaultVersion() != "v1.37.2" || Oldest() != all[1] {
		t.Errorf("Default %s, Oldest v1.%d", DefaultVersion(), Oldest().Minor)
	}
	for _, r := range all {
		if r.EtcdVersion == "" || r.CoreDNSVersion == "" || r.PauseVersion == "" || r.Kubeadm == "" || r.MinKubeletMinor != r.Minor-3 {
			t.Errorf("v1.%d: incomplete row %+v", r.Minor, r)
		}
	}
}

func TestFor(t *testing.T) {
	for _, tc := range []struct{ version, wantErr string }{
		{version: "v1.37.2"},
		{version: "1.37.0"},
		{version: "v1.36.0-rc.1"},
		{version: "v1.35.4", wantErr: "this version of kubeboot only supports deploying clusters with the control plane version >= v1.36.0. Current version: v1.35.4"},
		{version: "v1.38.0", wantErr: "this version of kubeboot supports control planes v1.36.x to v1.37.x (default v1.37.2), not v1.38.0"},
		{version: "v2.36.0", wantErr: "this version of kubeboot supports control planes v1.36.x to v1.37.x (default v1.37.2), not v2.36.0"},
		{version: "stable", wantErr: `kubernetesVersion "stable" is not a version such as v1.37.2: could not parse "stable" as version`},
	} {
		r, err := For(tc.version)
		switch {
		case tc.wantErr == "" && (err != nil || r == nil):
			t.Errorf("For(%q) = %v, %v", tc.version, r, err)
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("For(%q) error %v\nwant %s", tc.version, err, tc.wantErr)
		}
	}
}

func TestFeatureGates(t *testing.T) {
	r37, r36 := Default(), Oldest()
	if got := r37.FeatureGateNames(); !slices.Equal(got, []string{"RootlessControlPlane"}) {
		t.Errorf("1.37 gates %v", got)
	}
	if _, ok := r37.FeatureGate("NodeLocalCRISocket"); ok {
		t.Error("1.37 still knows NodeLocalCRISocket, which kubeadm v1.37 removed")
	}
	// A locked gate keeps its default whatever the configuration says; an unknown one is off.
	if !r36.Enabled(map[string]bool{"NodeLocalCRISocket": false}, "NodeLocalCRISocket") {
		t.Error("1.36's locked NodeLocalCRISocket turned off")
	}
	if r36.Enabled(nil, "RootlessControlPlane") || !r36.Enabled(map[string]bool{"RootlessControlPlane": true}, "RootlessControlPlane") {
		t.Error("RootlessControlPlane does not follow the configuration")
	}
	if r37.Enabled(map[string]bool{"Bogus": true}, "Bogus") {
		t.Error("an unknown gate is on")
	}
}

func TestEtcdServerVersion(t *testing.T) {
	if got := Default().EtcdServerVersion(); got != "v3.7.0" {
		t.Errorf("EtcdServerVersion = %s, want v3.7.0", got)
	}
}

func minors(rs []*Release) []int {
	var m []int
	for _, r := range rs {
		m = append(m, r.Minor)
	}
	return m
}
