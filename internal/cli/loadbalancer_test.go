package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadBalancerOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    loadBalancerFlags
		want string
	}{
		{"no listen", loadBalancerFlags{backends: []string{"10.0.0.1:6443"}}, "--listen is required"},
		{"no backend", loadBalancerFlags{listen: ":6443"}, "--backend is required"},
		{"missing CA", loadBalancerFlags{listen: ":6443", backends: []string{"10.0.0.1:6443"}, caFile: filepath.Join(dir, "nope")},
			"--ca-file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"CA not PEM", loadBalancerFlags{listen: ":6443", backends: []string{"10.0.0.1:6443"}, caFile: notPEM},
			"--ca-file " + notPEM + ": no PEM certificate in it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadBalancerOptions(tt.f)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
	opts, err := loadBalancerOptions(loadBalancerFlags{listen: ":6443", backends: []string{"10.0.0.1:6443", "10.0.0.2:6443"}})
	if err != nil || opts.Listen != ":6443" || len(opts.Backends) != 2 || opts.RootCAs != nil {
		t.Fatalf("options = %+v, %v", opts, err)
	}

	// The state file: its backends join the seeds; a corrupt one is refused naming the flag and the file; it
	// needs --follow-kubeconfig; a missing one is no state.
	state := filepath.Join(dir, "backends.json")
	if err := os.WriteFile(state, []byte(`{"backends": ["10.0.0.2:6443", "10.0.0.3:6443"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	seeded := loadBalancerFlags{listen: ":6443", backends: []string{"10.0.0.1:6443", "10.0.0.2:6443"}, kubeconfig: "/etc/kubernetes/kubelet.conf", stateFile: state}
	opts, err = loadBalancerOptions(seeded)
	if err != nil || strings.Join(opts.Backends, ",") != "10.0.0.1:6443,10.0.0.2:6443,10.0.0.3:6443" {
		t.Fatalf("with a state file: %v, %v", opts.Backends, err)
	}
	seeded.stateFile = filepath.Join(dir, "none.json")
	if opts, err = loadBalancerOptions(seeded); err != nil || len(opts.Backends) != 2 {
		t.Fatalf("with no state file yet: %v, %v", opts.Backends, err)
	}
	seeded.stateFile = notPEM
	if _, err = loadBalancerOptions(seeded); err == nil || !strings.HasPrefix(err.Error(), "--state-file: "+notPEM) {
		t.Fatalf("a corrupt state file: %v", err)
	}
	seeded.kubeconfig = ""
	if _, err = loadBalancerOptions(seeded); err == nil || !strings.Contains(err.Error(), "--state-file without --follow-kubeconfig") {
		t.Fatalf("--state-file alone: %v", err)
	}
}

func TestLoadBalancerCommandRunsUntilCancelled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now: the backend is down
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"loadbalancer", "--listen", "127.0.0.1:0", "--backend", dead}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "listening on 127.0.0.1:") || !strings.HasSuffix(lines[0], ", forwarding to "+dead) ||
		!strings.HasPrefix(lines[1], "backend "+dead+" is down: Get \"https://"+dead+"/readyz\": dial tcp "+dead+": connect: connection refused") ||
		lines[2] != "stopped" {
		t.Fatalf("output:\n%s", out.String())
	}
}
