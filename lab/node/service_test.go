package node

import (
	"context"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testService runs `sh -c SCRIPT` under a Service; every start appends a line to starts.
func testService(t *testing.T, script string) (s *Service, starts, require, watched string) {
	dir := t.TempDir()
	starts = filepath.Join(dir, "starts")
	require = filepath.Join(dir, "config.yaml")
	watched = filepath.Join(dir, "flags.env")
	s = &Service{
		Name: "test",
		Command: func() (*exec.Cmd, error) {
			return exec.Command("sh", "-c", "echo $$ >> "+starts+"; "+script), nil
		},
		Watch:       []string{watched, require},
		Require:     require,
		Backoff:     50 * time.Millisecond,
		Poll:        10 * time.Millisecond,
		StopTimeout: 2 * time.Second,
		PIDFile:     filepath.Join(dir, "pid"),
		Log:         log.New(io.Discard, "", 0),
	}
	return s, starts, require, watched
}

func countStarts(path string) int {
	b, _ := os.ReadFile(path)
	return len(strings.Fields(string(b)))
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runService(t *testing.T, s *Service) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestServiceWaitsForRequiredFile(t *testing.T) {
	s, starts, require, _ := testService(t, "exec sleep 60")
	stop := runService(t, s)
	defer stop()
	time.Sleep(100 * time.Millisecond)
	if n := countStarts(starts); n != 0 {
		t.Fatalf("started %d times without %s", n, require)
	}
	if err := os.WriteFile(require, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a start once the file exists", func() bool { return countStarts(starts) == 1 })
	waitFor(t, "the PID file", func() bool { _, err := os.Stat(s.PIDFile); return err == nil })
	if err := os.Remove(require); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stop once the file is gone", func() bool { _, err := os.Stat(s.PIDFile); return err != nil })
	time.Sleep(100 * time.Millisecond)
	if n := countStarts(starts); n != 1 {
		t.Errorf("started %d times, want 1: the required file is missing", n)
	}
}

func TestServiceRestartsOnChange(t *testing.T) {
	tests := []struct {
		name   string
		change func(watched string) error
	}{
		{"file appears", func(w string) error { return os.WriteFile(w, []byte("A=1"), 0o644) }},
		{"file changes", func(w string) error { return os.WriteFile(w, []byte("A=2"), 0o644) }},
		{"file disappears", os.Remove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, starts, require, watched := testService(t, "exec sleep 60")
			if err := os.WriteFile(require, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.name != "file appears" {
				if err := os.WriteFile(watched, []byte("A=0"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			stop := runService(t, s)
			defer stop()
			waitFor(t, "the first start", func() bool { return countStarts(starts) == 1 })
			if err := tt.change(watched); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a restart", func() bool { return countStarts(starts) == 2 })
			time.Sleep(100 * time.Millisecond)
			if n := countStarts(starts); n != 2 {
				t.Errorf("started %d times after one change, want 2", n)
			}
		})
	}
}

func TestServiceRestartsAfterExit(t *testing.T) {
	s, starts, require, _ := testService(t, "exit 3")
	if err := os.WriteFile(require, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := runService(t, s)
	waitFor(t, "three starts", func() bool { return countStarts(starts) >= 3 })
	stop()
	// Two pauses of Backoff lie between three starts.
	if d := time.Since(start); d < 2*s.Backoff {
		t.Errorf("three starts in %s: no backoff between restarts", d)
	}
}

func TestServiceStopsProcessOnCancel(t *testing.T) {
	s, starts, require, _ := testService(t, "exec sleep 60")
	if err := os.WriteFile(require, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stop := runService(t, s)
	waitFor(t, "a start", func() bool { return countStarts(starts) == 1 })
	b, _ := os.ReadFile(starts)
	pid := strings.TrimSpace(string(b))
	stop()
	if _, err := os.Stat("/proc/" + pid); err == nil {
		if st, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(st), ") Z") {
			t.Errorf("process %s still runs after Run returned", pid)
		}
	}
}

// A process started because its required file appeared already reads that file: the appearance must not count as
// a change one poll later (it made every first kubelet start a restart, costing seconds of kubelet shutdown).
func TestServiceFirstStartIsNotRestarted(t *testing.T) {
	s, starts, require, _ := testService(t, "exec sleep 60")
	stop := runService(t, s)
	defer stop()
	time.Sleep(30 * time.Millisecond)
	// Atomically, as kubeboot and kubeadm write it: a file seen empty and then full is a real change.
	if err := os.WriteFile(require+".tmp", []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(require+".tmp", require); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first start", func() bool { return countStarts(starts) == 1 })
	time.Sleep(20 * s.Poll)
	if n := countStarts(starts); n != 1 {
		t.Fatalf("started %d times, want 1: the file that allowed the start was taken for a change", n)
	}
}

// Inputs are read at start, but their changes do not restart the process: the kubelet rewrites kubelet.conf
// itself, and a systemd kubelet is not restarted for that.
func TestServiceInputsDoNotRestart(t *testing.T) {
	s, starts, require, _ := testService(t, "exec sleep 60")
	input := filepath.Join(filepath.Dir(require), "kubelet.conf")
	s.Inputs = []string{input}
	if err := os.WriteFile(require, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stop := runService(t, s)
	defer stop()
	waitFor(t, "the first start", func() bool { return countStarts(starts) == 1 })
	for i, change := range []func() error{
		func() error { return os.WriteFile(input, []byte("a"), 0o644) },
		func() error { return os.WriteFile(input, []byte("b"), 0o644) },
		func() error { return os.Remove(input) },
	} {
		if err := change(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * s.Poll)
		if n := countStarts(starts); n != 1 {
			t.Fatalf("after change %d of an input: started %d times, want 1", i, n)
		}
	}
}
