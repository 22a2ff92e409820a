package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Service keeps one process running the way a systemd unit with Restart=always would, and also
// restarts it when one of its Watch files changes, appears or disappears, standing in for the
// `systemctl restart` that kubeadm and kubeboot run after writing them: there is no systemd in a lab node,
// and a kubelet left running with old credentials never registers (LAB-FACTS §4).
type Service struct {
	Name string
	// Command builds the process afresh for every start, so that it picks up changed flags. Files it
	// opens as the process's Stdout and Stderr are closed once the process started.
	Command func() (*exec.Cmd, error)
	// Watch lists files whose change restarts the process.
	Watch []string
	// Inputs lists more files the process reads when it starts, whose later changes do not restart it (as
	// systemd would not: kubelet.conf, which the kubelet itself rewrites when it gets its client certificate).
	// A start waits until Watch and Inputs have not changed for one poll, so that a tool writing several files in
	// a row is seen once it is done, like `systemctl restart` after the last write.
	Inputs []string
	// Require, if set, is a file without which the process is not started (and is stopped).
	Require string
	// Backoff is the pause after the process exited before it is started again.
	Backoff time.Duration
	// Poll is how often Watch and Require are checked.
	Poll time.Duration
	// StopTimeout is how long a stopped process gets between SIGTERM and SIGKILL.
	StopTimeout time.Duration
	// PIDFile, if set, holds the PID of the running process.
	PIDFile string
	Log     *log.Logger
}

// Run supervises until ctx is done, then stops the process and returns nil.
func (s *Service) Run(ctx context.Context) error {
	var (
		cmd      *exec.Cmd
		exited   chan error
		lastExit time.Time
		seen     = s.fingerprint(s.Watch)
		pending  = seen
		inputs   = s.fingerprint(s.all())
		stable   bool // Watch and Inputs did not change over the last poll
	)
	tick := time.NewTicker(s.Poll)
	defer tick.Stop()
	stop := func(reason string) {
		if cmd == nil {
			return
		}
		s.Log.Printf("%s: stopping (pid %d): %s", s.Name, cmd.Process.Pid, reason)
		s.stop(cmd, exited)
		cmd, exited = nil, nil
		s.writePID(0)
	}
	for {
		if cmd == nil && stable && s.required() && time.Since(lastExit) >= s.Backoff {
			// The process about to start reads the inputs as they are now: a change seen before this
			// point must not restart it again one poll later.
			seen = s.fingerprint(s.Watch)
			pending = seen
			c, done, err := s.start()
			if err != nil {
				s.Log.Printf("%s: start failed: %v", s.Name, err)
				lastExit = time.Now()
			} else {
				cmd, exited = c, done
			}
		}
		select {
		case <-ctx.Done():
			stop("node shutting down")
			return nil
		case err := <-exited:
			s.Log.Printf("%s: exited (pid %d): %v", s.Name, cmd.Process.Pid, exitText(err))
			cmd, exited = nil, nil
			s.writePID(0)
			lastExit = time.Now()
		case <-tick.C:
			all := s.fingerprint(s.all())
			stable, inputs = all == inputs, all
			fp := s.fingerprint(s.Watch)
			// Act only once a change has been stable for one poll, so that a tool writing several
			// files in a row causes one restart, not one per file.
			if fp != seen && fp == pending {
				seen = fp
				stop("inputs changed")
			}
			pending = fp
			if !s.required() {
				stop(s.Require + " is missing")
			}
		}
	}
}

func (s *Service) required() bool {
	if s.Require == "" {
		return true
	}
	_, err := os.Stat(s.Require)
	return err == nil
}

func (s *Service) start() (*exec.Cmd, chan error, error) {
	cmd, err := s.Command()
	if err != nil {
		return nil, nil, err
	}
	err = cmd.Start()
	closeOutput(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s.Log.Printf("%s: started (pid %d)", s.Name, cmd.Process.Pid)
	s.writePID(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done, nil
}

func (s *Service) stop(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(s.StopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (s *Service) writePID(pid int) {
	if s.PIDFile == "" {
		return
	}
	if pid == 0 {
		_ = os.Remove(s.PIDFile)
		return
	}
	if err := os.WriteFile(s.PIDFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		s.Log.Printf("%s: %v", s.Name, err)
	}
}

func (s *Service) all() []string { return append(append([]string(nil), s.Watch...), s.Inputs...) }

// fingerprint sums the files' contents; a missing file counts differently from an empty one.
func (s *Service) fingerprint(files []string) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range files {
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			fmt.Fprintf(h, "%s present %d\n", p, len(b))
			h.Write(b)
		case errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(h, "%s missing\n", p)
		default:
			fmt.Fprintf(h, "%s error %v\n", p, err)
		}
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// closeOutput closes the log files Command opened for the process: the child has its own copies.
func closeOutput(cmd *exec.Cmd) {
	for _, w := range []io.Writer{cmd.Stdout, cmd.Stderr} {
		if f, ok := w.(*os.File); ok && f != os.Stdout && f != os.Stderr {
			_ = f.Close()
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
