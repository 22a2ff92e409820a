package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// stampedLine is one line of a command's output and when it arrived, counted from the command's start.
type stampedLine struct {
	at   time.Duration
	text string
}

// stamper collects a command's output and the arrival time of each of its lines.
type stamper struct {
	start time.Time
	mu    sync.Mutex
	all   bytes.Buffer
	part  []byte
	lines []stampedLine
}

func (s *stamper) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Since(s.start)
	s.all.Write(p)
	s.part = append(s.part, p...)
	for {
		i := bytes.IndexByte(s.part, '\n')
		if i < 0 {
			break
		}
		s.lines = append(s.lines, stampedLine{at, string(s.part[:i])})
		s.part = s.part[i+1:]
	}
	return len(p), nil
}

// inNodeStamped is inNode, also returning when each line of the output arrived, counted from start.
func (b *labBench) inNodeStamped(ctx context.Context, start time.Time, node string, args ...string) (string, []stampedLine, error) {
	cmd := exec.CommandContext(ctx, b.lab, append([]string{"exec", node, "--"}, args...)...)
	s := &stamper{start: start}
	cmd.Stdout, cmd.Stderr = s, s
	err := cmd.Run()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.part) > 0 {
		s.lines = append(s.lines, stampedLine{time.Since(start), string(s.part)})
	}
	return s.all.String(), s.lines, err
}

// phaseDone is when a phase's "[phase] done in ..." line arrived, and the duration it gives.
type phaseDone struct{ at, took time.Duration }

func phasesDone(lines []stampedLine) map[string]phaseDone {
	done := map[string]phaseDone{}
	for _, l := range lines {
		if m := phaseLine.FindStringSubmatch(strings.TrimSpace(l.text)); m != nil {
			took, _ := time.ParseDuration(m[2])
			done[m[1]] = phaseDone{l.at, took}
		}
	}
	return done
}

// ownInit is kubeboot's own time in one init: its wall time less its waits on components.
type ownInit struct {
	// beforeKubelet: from the start to kubelet-start done (preflight, the CA, kubelet.conf, the kubelet's files).
	// From there init waits for the kubelet (its restart by the init system, its own start) and then for the
	// control plane, while it writes its other files.
	beforeKubelet time.Duration
	// lateManifest: how long after the kubelet was ready for Pods (its sync loop started) the API server's manifest
	// was written, if it was: key generation that held the API server back.
	lateManifest time.Duration
	// afterWait: from wait-control-plane done to the end (the API phases that had not ended yet, the join command).
	afterWait time.Duration
	// busyBeforeWait is the naive measure, for comparison: the wall time less wait-control-plane's duration, which
	// counts the key generation that runs while the kubelet starts.
	busyBeforeWait time.Duration
}

func (o ownInit) total() time.Duration { return o.beforeKubelet + o.lateManifest + o.afterWait }

// ownInitTime computes ownInit from init's stamped output, its wall time and the moment (counted from init's
// start) the kubelet's main sync loop started.
func ownInitTime(lines []stampedLine, wall, syncLoop time.Duration) (ownInit, error) {
	done := phasesDone(lines)
	var missing []string
	for _, p := range []string{"kubelet-start", "control-plane/apiserver", "wait-control-plane"} {
		if _, ok := done[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return ownInit{}, fmt.Errorf("init's output has no done line for %s", strings.Join(missing, ", "))
	}
	wait := done["wait-control-plane"]
	o := ownInit{beforeKubelet: done["kubelet-start"].at, afterWait: wall - wait.at, busyBeforeWait: wall - wait.took}
	if late := done["control-plane/apiserver"].at - syncLoop; late > 0 {
		o.lateManifest = late
	}
	return o, nil
}

// syncLoopLine is the kubelet's log line when its main sync loop starts: from then on it starts Pods.
var syncLoopLine = regexp.MustCompile(`^I(\d{4} \d{2}:\d{2}:\d{2}\.\d{6})\s+\d+ \S+\] "Starting kubelet main sync loop"`)

// kubeletSyncLoop reads node's kubelet log in the lab for the first start of the kubelet's sync loop after since,
// and returns it counted from since. klog stamps lines with the month, day and local time of day.
func kubeletSyncLoop(node string, since time.Time) (time.Duration, error) {
	file := filepath.Join(labState, "nodes", node, "logs", "kubelet.log")
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return firstSyncLoop(f, since, file)
}

func firstSyncLoop(r interface{ Read([]byte) (int, error) }, since time.Time, file string) (time.Duration, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	local := since.Local()
	for sc.Scan() {
		m := syncLoopLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, err := time.ParseInLocation("0102 15:04:05.000000", m[1], time.Local)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", file, err)
		}
		t = t.AddDate(local.Year(), 0, 0)
		if t.Before(since) {
			continue
		}
		return t.Sub(since), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return 0, fmt.Errorf("%s: no %q line since %s", file, "Starting kubelet main sync loop", since.Format(time.RFC3339Nano))
}

// printOwn prints kubeboot's own time in init over the runs, and its parts.
func printOwn(w io.Writer, owns []ownInit) {
	if len(owns) == 0 {
		return
	}
	part := func(f func(ownInit) time.Duration) string {
		var ds []time.Duration
		for _, o := range owns {
			ds = append(ds, f(o))
		}
		return stat(ds)
	}
	fmt.Fprintf(w, "%-42s %-24s\n", "1c kubeboot's own time in init", part(ownInit.total))
	fmt.Fprintf(w, "   = before kubelet-start %s + API server manifest after the kubelet's sync loop %s + after wait-control-plane %s\n",
		part(func(o ownInit) time.Duration { return o.beforeKubelet }), part(func(o ownInit) time.Duration { return o.lateManifest }),
		part(func(o ownInit) time.Duration { return o.afterWait }))
	fmt.Fprintf(w, "   (init wall less wait-control-plane, which counts the keys made while the kubelet starts: %s)\n",
		part(func(o ownInit) time.Duration { return o.busyBeforeWait }))
}
