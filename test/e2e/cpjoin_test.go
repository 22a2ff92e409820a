//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// The Lease kubeboot's control-plane joins take turns on (internal/etcd.TurnLease).
const turnLease = "kubeboot-etcd-member-change"

// checkTurnGivenBack: the Lease control-plane joins take turns on exists (so they took turns) and nobody holds it.
func checkTurnGivenBack(t *testing.T) {
	t.Helper()
	var lease coordinationv1.Lease
	if err := kubectl(t.Context(), &lease, "-n", "kube-system", "get", "lease", turnLease, "-o", "json"); err != nil {
		t.Fatalf("the Lease kube-system/%s of the control-plane joins: %v", turnLease, err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("the Lease kube-system/%s is still held by %s after every join finished", turnLease, *h)
	}
	if v := lease.Annotations["kubeboot.dev/etcd-learner-peer-url"]; v != "" {
		t.Errorf("the Lease kube-system/%s still names the learner %s", turnLease, v)
	}
}

// membersOf is `kubeboot etcd member list -o json` on node, or an error.
func membersOf(t *testing.T, node string) ([]etcdMember, error) {
	cmd := execLab(t.Context(), "exec", node, "--", kubeboot, "etcd", "member", "list", "-o", "json")
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var members []etcdMember
	return members, json.Unmarshal(out, &members)
}

// kubebootPID is the PID of the kubeboot process whose arguments are args (`join --config FILE`), 0 when there is
// none. The lab's nodes share the machine's PID namespace.
func kubebootPID(t *testing.T, args ...string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		got := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(got) > 0 && filepath.Base(got[0]) == "kubeboot" && slices.Equal(got[1:], args) {
			return pid
		}
	}
	return 0
}

// checkInterruptedJoin starts a control-plane join of the empty node with the join configuration file, sends
// kubeboot SIGTERM (what Ctrl-C, kill and systemd send) once its learner is in etcd's member list and before it
// can have started, and wants the join to take the learner out again: members are again exactly want, node has
// no etcd manifest, and the turn is given back.
func checkInterruptedJoin(t *testing.T, node, from, file string, want ...struct{ name, ip string }) {
	t.Helper()
	var out bytes.Buffer
	cmd := execLab(t.Context(), "exec", node, "--", kubeboot, "join", "--config", file)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var learner *etcdMember
	deadline := time.Now().Add(3 * time.Minute)
	for learner == nil {
		select {
		case err := <-exited:
			t.Fatalf("the join on %s ended (%v) before its learner was seen:\n%s", node, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no learner in the member list 3 minutes into the join on %s:\n%s", node, out.String())
		}
		members, err := membersOf(t, from)
		if err == nil {
			for i, m := range members {
				if m.IsLearner {
					learner = &members[i]
				}
			}
		}
		if learner == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	pid := kubebootPID(t, "join", "--config", file)
	if pid == 0 {
		t.Fatalf("the learner %s is there but no kubeboot join process runs", learner.ID)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM to kubeboot join (PID %d) on %s with the learner %s in the member list (started: %v)", pid, node, learner.ID, learner.Started)
	select {
	case err := <-exited:
		t.Logf("the interrupted join (%v):\n%s", err, out.String())
		if err == nil {
			t.Fatal("the interrupted join exited 0")
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the join on %s still runs 2 minutes after SIGTERM:\n%s", node, out.String())
	}
	if !strings.Contains(out.String(), "removed the learner "+learner.ID) {
		t.Errorf("the interrupted join does not say it removed its learner %s", learner.ID)
	}
	checkMembers(t, etcdMembers(t, from), want...)
	if _, err := os.Stat(nodeHostPath(node, "/etc/kubernetes/manifests/etcd.yaml")); !os.IsNotExist(err) {
		t.Errorf("the interrupted join left /etc/kubernetes/manifests/etcd.yaml on %s (%v)", node, err)
	}
	checkTurnGivenBack(t)
}
