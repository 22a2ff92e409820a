package node

import (
	"slices"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{
			name: "kubeadm flags",
			in:   "KUBELET_KUBEADM_ARGS=\"--node-ip=10.77.0.11 --pod-infra-container-image=registry.k8s.io/pause:3.10.1\"\n",
			want: map[string]string{"KUBELET_KUBEADM_ARGS": "--node-ip=10.77.0.11 --pod-infra-container-image=registry.k8s.io/pause:3.10.1"},
		},
		{
			name: "comments, blanks, single quotes, no quotes",
			in:   "# generated\n\n; also a comment\nA='x y'\nB=plain\n  C = spaced  \n",
			want: map[string]string{"A": "x y", "B": "plain", "C": "spaced"},
		},
		{name: "empty", in: "", want: map[string]string{}},
		{name: "no equals", in: "A=1\nnonsense\n", wantErr: `line 2: want KEY=VALUE, got "nonsense"`},
		{name: "unterminated quote", in: "A=\"x y\n", wantErr: `line 1: unterminated quote in "A=\"x y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvFile([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestKubeletArgs(t *testing.T) {
	base := []string{
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml",
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no flags file", map[string]string{}, base},
		{"split on whitespace", map[string]string{"KUBELET_KUBEADM_ARGS": " --a=1\t--b=2  "}, append(slices.Clone(base), "--a=1", "--b=2")},
		{"other variables ignored", map[string]string{"OTHER": "--x"}, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KubeletArgs(tt.env); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
