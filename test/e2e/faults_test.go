//go:build e2e

package e2e

import (
	"bufio"
	"io"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// checkInitInterrupted is a row of issue 19's fault table: kubeboot init on cp1 (reset and empty) is sent sig once a
// line of its output contains marker, and must stop within 30 s with an error naming the signal and the phase it
// was in, and a hint to reset; `kubeboot reset` must then empty the node again (the next init is the caller's).
func checkInitInterrupted(t *testing.T, initConfig string, sig syscall.Signal, marker string) {
	t.Helper()
	ctx := t.Context()
	cmd := execLab(ctx, "exec", cp1, "--", kubeboot, "init", "--config", initConfig)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	reached := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		seen := false
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if !seen && strings.Contains(sc.Text(), marker) {
				seen = true
				close(reached)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		exited <- err
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	select {
	case <-reached:
	case err := <-exited:
		t.Fatalf("init ended (%v) before its output said %q:\n%s", err, marker, output())
	case <-time.After(3 * time.Minute):
		t.Fatalf("init did not say %q within 3 minutes:\n%s", marker, output())
	}
	pid := kubebootPID(t, "init", "--config", initConfig)
	if pid == 0 {
		t.Fatalf("init said %q but no kubeboot init process runs", marker)
	}
	sent := time.Now()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("kubeboot init still runs 30 s after %v:\n%s", sig, output())
	}
	<-scanned
	took := time.Since(sent)
	t.Logf("kubeboot init, sent %v once it said %q, ended in %s (%v):\n%s", sig, marker, took.Round(time.Millisecond), err, output())
	if err == nil {
		t.Fatalf("the interrupted init exited 0")
	}
	wantSignal := map[syscall.Signal]string{syscall.SIGTERM: "terminated", syscall.SIGINT: "interrupt"}[sig]
	errLine := ""
	for line := range strings.Lines(output()) {
		if strings.HasPrefix(line, "error: ") {
			errLine = strings.TrimSpace(line)
		}
	}
	// It stopped in a phase ("phase X: ...") or between two ("stopped before phase X: ...").
	if !regexp.MustCompile(`^error: interrupted \(` + wantSignal + ` signal received\): (stopped before )?phase [a-z-/]+`).MatchString(errLine) {
		t.Errorf("the interrupted init's error does not name the signal and the phase: %q", errLine)
	}
	if !strings.Contains(output(), "hint: what `kubeboot init` wrote before it stopped stays on the node: undo it with `kubeboot reset`, then run it again") {
		t.Errorf("the interrupted init does not say how to go back")
	}
	t.Logf("FIGURE kubeboot init stopped %s after %v (%s)", took.Round(time.Millisecond), sig, strings.TrimPrefix(errLine, "error: "))

	start := time.Now()
	if out, err := inNode(ctx, cp1, kubeboot, "reset", "-f"); err != nil {
		t.Fatalf("reset after the interrupted init: %v\n%s", err, out)
	}
	waitKubeletStopped(t, cp1)
	var left []string
	for f, mtime := range nodeFileTimes(t) {
		if mtime.Before(start) {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("files of the interrupted init left after reset: %v", left)
	}
}
