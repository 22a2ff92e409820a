package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Started is a node whose init process runs.
type Started struct {
	PID   int    // node-run, the supervisor of containerd and the kubelet
	MntNS uint64 // inode of its mount namespace
	NetNS uint64 // inode of its network namespace
}

// Start launches node-run (self is the lab binary) in a new mount and UTS namespace inside the
// node's netns, and waits until the node's containerd answers (the load balancer: until it accepts). nsenter --net is used rather than
// `ip netns exec`, which remounts /sys and hides the cgroup mounts from the kubelet (LAB-FACTS §5).
func Start(ctx context.Context, s Spec, self string, timeout time.Duration) (Started, error) {
	_ = os.Remove(s.ReadyFile())
	logPath := filepath.Join(s.LogDir(), "node-run.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Started{}, fmt.Errorf("open node log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "--mount", "--uts", "--propagation", "private",
		"nsenter", "--net="+s.NetNSPath(), "--", self, "node-run", s.SpecFile())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = s.env()
	// Its own session: the node outlives `lab up` and its terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Started{}, fmt.Errorf("start node %s: %w", s.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	st := Started{PID: cmd.Process.Pid}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if _, err := os.Stat(s.ReadyFile()); err == nil {
			break
		}
		select {
		case err := <-exited:
			return st, fmt.Errorf("node %s exited before it was ready (%v); see %s:\n%s", s.Name, err, logPath, Tail(logPath, 15))
		case <-ctx.Done():
			return st, fmt.Errorf("node %s not ready after %s; see %s and the other logs there:\n%s", s.Name, timeout, logPath, Tail(logPath, 15))
		case <-time.After(50 * time.Millisecond):
		}
	}
	// unshare and nsenter exec'd into node-run, so the PID we started is now inside both namespaces.
	if st.MntNS, err = NSInode(st.PID, "mnt"); err != nil {
		return st, err
	}
	if st.NetNS, err = NSInode(st.PID, "net"); err != nil {
		return st, err
	}
	return st, nil
}

// Command runs args inside node s, whose init process is pid, with the node's environment.
func Command(ctx context.Context, s Spec, pid int, args ...string) *exec.Cmd {
	full := append([]string{"-t", strconv.Itoa(pid), "-m", "-u", "-n", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = s.env()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Tail returns the last n lines of a file, for error messages.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// NSInode identifies the namespace of a kind ("mnt", "net") a process is in.
func NSInode(pid int, kind string) (uint64, error) {
	fi, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", kind))
	if err != nil {
		return 0, fmt.Errorf("namespace of pid %d: %w", pid, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("namespace inode: no stat data")
	}
	return st.Ino, nil
}

// FileInode identifies the namespace a namespace file (e.g. /run/netns/NAME) refers to.
func FileInode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("namespace inode: no stat data")
	}
	return st.Ino, nil
}

// Home is the node's home directory. The machine's /root is visible in a node, and tools run there
// (kubectl's cache, say) must not write into it.
func (s Spec) Home() string { return filepath.Join(s.Dir, "home") }

func (s Spec) env() []string {
	return []string{"PATH=" + Path(s.BinDir), "HOME=" + s.Home(), "LANG=C.UTF-8"}
}
