//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
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

	resetEmptiesCP1(t, "the interrupted init")
}

// resetEmptiesCP1 runs kubeboot reset on cp1 after a failed init (what), and checks that no file existing before
// the reset is left.
func resetEmptiesCP1(t *testing.T, what string) {
	t.Helper()
	start := time.Now()
	if out, err := inNode(t.Context(), cp1, kubeboot, "reset", "-f"); err != nil {
		t.Fatalf("reset after %s: %v\n%s", what, err, out)
	}
	waitKubeletStopped(t, cp1)
	var left []string
	for f, mtime := range nodeFileTimes(t) {
		if mtime.Before(start) {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("files of %s left after reset: %v", what, left)
	}
}

// checkInitEtcdFails is a row of issue 19's fault table: kubeboot init on cp1 (reset and empty) whose etcd cannot
// start (a patch gives it a flag it does not know) must fail within its control-plane timeout with a diagnosis
// that names etcd and shows its container's state and its log, not only the API server's; reset then empties the
// node. initConfig is the lab's init configuration, whose patches directory (the kubelet's cgroupRoot) is kept.
func checkInitEtcdFails(t *testing.T, initConfig []byte) {
	t.Helper()
	ctx := t.Context()
	const timeout = "40s"
	m := regexp.MustCompile(`(?m)^  directory: (\S+)$`).FindSubmatch(initConfig)
	if m == nil || !bytes.Contains(initConfig, []byte("kind: InitConfiguration\n")) {
		t.Fatalf("no patches directory or InitConfiguration in the init configuration:\n%s", initConfig)
	}
	patches := filepath.Join(nodeDir(cp1), "patches-etcd-fails")
	// The lab's patches directory (a node directory, the same path on the machine) with one more patch.
	if err := os.MkdirAll(patches, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", string(m[1])+"/.", patches+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the patches: %v\n%s", err, out)
	}
	const badFlag = "--e2e-no-such-flag"
	if err := os.WriteFile(filepath.Join(patches, "etcd+json.json"), []byte(`[{"op": "add", "path": "/spec/containers/0/command/-", "value": "`+badFlag+`"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := bytes.Replace(initConfig, m[0], []byte("  directory: "+patches), 1)
	cfg = bytes.Replace(cfg, []byte("kind: InitConfiguration\n"), []byte("kind: InitConfiguration\ntimeouts:\n  controlPlaneComponentHealthCheck: "+timeout+"\n"), 1)
	file := filepath.Join(nodeDir(cp1), "etcd-fails.yaml")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := inNode(ctx, cp1, kubeboot, "init", "--config", file)
	t.Logf("kubeboot init with an etcd that cannot start (%s, %v):\n%s", time.Since(start).Round(time.Second), err, out)
	if err == nil {
		t.Fatal("init succeeded with an etcd that cannot start")
	}
	// The fault was injected: the flag reached etcd's command line.
	if manifest, rerr := os.ReadFile(nodeHostPath(cp1, "/etc/kubernetes/manifests/etcd.yaml")); rerr != nil || !bytes.Contains(manifest, []byte(badFlag)) {
		t.Fatalf("the patch did not reach etcd.yaml (%v)", rerr)
	}
	_, diagnosis, found := strings.Cut(out, "  etcd (http://127.0.0.1:2381/livez)")
	if !found {
		t.Fatalf("the error does not name etcd among the components that did not become healthy")
	}
	if !strings.Contains(diagnosis, "container etcd (") || !strings.Contains(diagnosis, "last log lines:") {
		t.Errorf("the diagnosis of etcd does not show its container's state and log lines")
	}
	if !strings.Contains(diagnosis, strings.TrimLeft(badFlag, "-")) {
		t.Errorf("etcd's log lines in the diagnosis do not show why it stopped (its complaint about %s)", badFlag)
	}
	resetEmptiesCP1(t, "the init whose etcd failed")
}

// checkInitDiskFull is a row of issue 19's fault table: kubeboot init on cp1 (reset and empty) with
// /etc/kubernetes on a tmpfs too small for what init writes there must fail with an error that names the file it
// could not write and the full disk, and leave no file half-written: every file there is whole (its PEM blocks or
// its YAML parse, nothing after them) and no temporary file is left. Then the tmpfs goes and reset empties the node.
func checkInitDiskFull(t *testing.T, initConfig string) {
	t.Helper()
	ctx := t.Context()
	// 64 KiB is 16 pages: fewer than the files of the PKI, so init runs out of space while it writes them.
	if out, err := inNode(ctx, cp1, "mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "kblab-e2e-full", "/etc/kubernetes"); err != nil {
		t.Fatalf("mount a small tmpfs on cp1's /etc/kubernetes: %v\n%s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if out, err := inNode(context.WithoutCancel(ctx), cp1, "umount", "/etc/kubernetes"); err != nil {
				t.Errorf("umount cp1's /etc/kubernetes: %v\n%s", err, out)
			}
			mounted = false
		}
	}
	defer unmount()
	out, err := inNode(ctx, cp1, "df", "-k", "/etc/kubernetes")
	if err != nil || !strings.Contains(out, "kblab-e2e-full") {
		t.Fatalf("the tmpfs is not on cp1's /etc/kubernetes: %v\n%s", err, out)
	}
	out, err = inNode(ctx, cp1, kubeboot, "init", "--config", initConfig)
	t.Logf("kubeboot init with /etc/kubernetes full (%v):\n%s", err, out)
	if err == nil {
		t.Fatal("init succeeded on a full /etc/kubernetes")
	}
	errLine := ""
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "error: ") {
			errLine = strings.TrimSpace(line)
		}
	}
	if !strings.Contains(errLine, "no space left on device") || !regexp.MustCompile(`/etc/kubernetes/\S+`).MatchString(errLine) {
		t.Errorf("the error does not name the file and the full disk: %q", errLine)
	}
	listing, err := inNode(ctx, cp1, "find", "/etc/kubernetes", "-type", "f")
	if err != nil {
		t.Fatalf("find: %v\n%s", err, listing)
	}
	files := strings.Fields(listing)
	if len(files) == 0 {
		t.Fatal("init wrote nothing before the disk was full: the fault did not happen where this row looks")
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") || strings.Contains(f, ".tmp") {
			t.Errorf("temporary file left: %s", f)
			continue
		}
		body, err := inNode(ctx, cp1, "cat", f)
		if err != nil {
			t.Fatalf("cat %s: %v", f, err)
		}
		if problem := wholeFile(f, []byte(body)); problem != "" {
			t.Errorf("%s is not whole: %s", f, problem)
		}
	}
	t.Logf("%d files written before the disk was full, each whole", len(files))
	unmount()
	resetEmptiesCP1(t, "the init on a full disk")
}

// wholeFile says what is wrong with a file init writes, or "" if it is whole: PEM files are one or more blocks
// and nothing else, YAML files (kubeconfigs, manifests) parse to a non-empty document.
func wholeFile(name string, b []byte) string {
	switch filepath.Ext(name) {
	case ".crt", ".key", ".pub", ".pem":
		n := 0
		rest := b
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			n++
		}
		if n == 0 {
			return "no PEM block"
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return fmt.Sprintf("%d bytes after its PEM blocks", len(rest))
		}
	case ".conf", ".yaml", ".yml":
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return err.Error()
		}
		if len(doc) == 0 {
			return "empty"
		}
	default:
		if len(b) == 0 {
			return "empty"
		}
	}
	return ""
}
