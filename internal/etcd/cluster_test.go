package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/testutil/labbin"
)

const testCertDir = "/etc/kubernetes/pki"

// testCluster runs real etcd members on 127.0.0.1 with a kubeadm certificate tree made by internal/pki.
type testCluster struct {
	t    *testing.T
	dir  string
	fsys nodefs.FS
	tls  *tls.Config
}

type testMember struct {
	name, clientURL, peerURL, dataDir, logFile string
	cmd                                        *exec.Cmd
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	labbin.Require(t, "", "etcd")
	dir := t.TempDir()
	fsys := nodefs.FS{Root: filepath.Join(dir, "root")}
	cfg := &config.Init{}
	cfg.Init.NodeRegistration.Name = "node"
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "127.0.0.1"
	cfg.Cluster.Networking.ServiceSubnet = "10.96.0.0/12"
	cfg.Cluster.CertificatesDir = testCertDir
	cfg.Cluster.Etcd.Local = &config.LocalEtcd{DataDir: "/var/lib/etcd"}
	cfg.Cluster.EncryptionAlgorithm = config.EncryptionAlgorithmECDSAP256
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ClientTLS(fsys, testCertDir)
	if err != nil {
		t.Fatal(err)
	}
	return &testCluster{t: t, dir: dir, fsys: fsys, tls: tlsCfg}
}

// freePort asks the kernel for an unused high port on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newMember picks the URLs of a member that has not started.
func (tc *testCluster) newMember(name string) *testMember {
	return &testMember{
		name:      name,
		clientURL: fmt.Sprintf("https://127.0.0.1:%d", freePort(tc.t)),
		peerURL:   fmt.Sprintf("https://127.0.0.1:%d", freePort(tc.t)),
		dataDir:   filepath.Join(tc.dir, name),
		logFile:   filepath.Join(tc.dir, name+".log"),
	}
}

// start runs etcd for m with kubeadm's TLS flags; it is killed by PID when the test ends.
func (tc *testCluster) start(m *testMember, initialCluster, state string) {
	t := tc.t
	t.Helper()
	pkiDir := tc.fsys.Path(testCertDir)
	log, err := os.Create(m.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	m.cmd = exec.Command(labbin.Path("", "etcd"),
		"--name="+m.name,
		"--data-dir="+m.dataDir,
		"--listen-client-urls="+m.clientURL,
		"--advertise-client-urls="+m.clientURL,
		"--listen-peer-urls="+m.peerURL,
		"--initial-advertise-peer-urls="+m.peerURL,
		"--initial-cluster="+initialCluster,
		"--initial-cluster-state="+state,
		"--cert-file="+pkiDir+"/etcd/server.crt",
		"--key-file="+pkiDir+"/etcd/server.key",
		"--trusted-ca-file="+pkiDir+"/etcd/ca.crt",
		"--client-cert-auth=true",
		"--peer-cert-file="+pkiDir+"/etcd/peer.crt",
		"--peer-key-file="+pkiDir+"/etcd/peer.key",
		"--peer-trusted-ca-file="+pkiDir+"/etcd/ca.crt",
		"--peer-client-cert-auth=true",
		// Faster elections than the defaults (100/1000 ms) keep the test short; the protocol is the same.
		"--heartbeat-interval=50",
		"--election-timeout=500",
	)
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
}

// stop kills the member's process (by its PID) and reaps it.
func (m *testMember) stop() {
	if m.cmd == nil || m.cmd.Process == nil || m.cmd.ProcessState != nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

func (tc *testCluster) dumpLog(m *testMember) {
	data, _ := os.ReadFile(m.logFile)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	tc.t.Logf("last lines of %s's log:\n%s", m.name, strings.Join(lines, "\n"))
}

// addHealthWaitInTests: how long the test clients' AddLearner waits for a voting member that is down.
const addHealthWaitInTests = 2 * time.Second

func (tc *testCluster) client(endpoints ...string) *Client {
	tc.t.Helper()
	c, err := New(Options{Endpoints: endpoints, TLS: tc.tls, CallTimeout: 30 * time.Second, AddHealthWait: addHealthWaitInTests})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { c.Close() })
	return c
}

// rejected counts the "rejected connection" warnings in m's log: connections closed before their TLS handshake.
func (tc *testCluster) rejected(m *testMember) int {
	tc.t.Helper()
	b, err := os.ReadFile(m.logFile)
	if err != nil {
		tc.t.Fatal(err)
	}
	return strings.Count(string(b), "rejected connection")
}

// waitFor polls cond every 100 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not after 20s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func statusByName(st []MemberStatus) map[string]MemberStatus {
	out := map[string]MemberStatus{}
	for _, s := range st {
		out[s.Name] = s
	}
	return out
}

func TestRealCluster(t *testing.T) {
	tc := newTestCluster(t)
	ctx := t.Context()
	m1 := tc.newMember("m1")
	tc.start(m1, "m1="+m1.peerURL, "new")
	c := tc.client(m1.clientURL)
	waitFor(t, "m1 answers", func() error { _, err := c.MemberList(ctx); return err })
	defer func() {
		if t.Failed() {
			for _, m := range []*testMember{m1} {
				tc.dumpLog(m)
			}
		}
	}()

	var m2, m3 *testMember
	var id2, id3 uint64
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"list one member", func(t *testing.T) {
			members, err := c.MemberList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != 1 || members[0].Name != "m1" || members[0].PeerURL() != m1.peerURL ||
				members[0].IsLearner || !members[0].Started() || members[0].ClientURLs[0] != m1.clientURL {
				t.Fatalf("members = %+v", members)
			}
		}},
		{"status probes leave no rejected connection in the member's log", func(t *testing.T) {
			for range 5 {
				st, err := c.Status(ctx)
				if err != nil || len(st) != 1 || !st[0].Healthy {
					t.Fatalf("status = %+v, %v", st, err)
				}
			}
			// MemberList and Status dial each endpoint first; a bare TCP connect and close makes etcd warn
			// "rejected connection on client endpoint ... EOF" each time.
			if n := tc.rejected(m1); n > 0 {
				t.Errorf("m1 logged %d rejected connections", n)
			}
		}},
		{"add a learner, start it, promote it", func(t *testing.T) {
			m2 = tc.newMember("m2")
			var ic string
			var err error
			id2, ic, err = c.AddLearner(ctx, "m2", m2.peerURL)
			if err != nil {
				t.Fatal(err)
			}
			if want := "m1=" + m1.peerURL + ",m2=" + m2.peerURL; !sameSet(ic, want) {
				t.Fatalf("initial cluster %q, want %q", ic, want)
			}
			members, _ := c.MemberList(ctx)
			st := map[uint64]Member{}
			for _, m := range members {
				st[m.ID] = m
			}
			if m := st[id2]; !m.IsLearner || m.Started() || m.PeerURL() != m2.peerURL {
				t.Fatalf("new member before start = %+v", m)
			}
			again, ic2, err := c.AddLearner(ctx, "m2", m2.peerURL)
			if err != nil || again != id2 || !sameSet(ic2, ic) {
				t.Fatalf("adding the same peer URL again = %x %q %v, want %x %q", again, ic2, err, id2, ic)
			}

			tc.start(m2, ic, "existing")
			waitFor(t, "m2 reports its status as a learner", func() error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				s := statusByName(st)["m2"]
				if !s.Healthy || !s.IsLearner {
					return fmt.Errorf("m2 = %+v", s)
				}
				return nil
			})
			start := time.Now()
			if err := c.Promote(ctx, id2); err != nil {
				tc.dumpLog(m2)
				t.Fatal(err)
			}
			t.Logf("promoted m2 in %v", time.Since(start).Round(time.Millisecond))
			if err := c.Promote(ctx, id2); err != nil {
				t.Fatalf("promoting a voting member again: %v", err)
			}
		}},
		{"third member, status shows leader and no learners", func(t *testing.T) {
			m3 = tc.newMember("m3")
			var ic string
			var err error
			id3, ic, err = c.AddLearner(ctx, "m3", m3.peerURL)
			if err != nil {
				t.Fatal(err)
			}
			if want := "m1=" + m1.peerURL + ",m2=" + m2.peerURL + ",m3=" + m3.peerURL; !sameSet(ic, want) {
				t.Fatalf("initial cluster %q, want %q", ic, want)
			}
			tc.start(m3, ic, "existing")
			// Promote at once: etcd refuses until m3 has started and caught up, and Promote retries.
			start := time.Now()
			if err := c.Promote(ctx, id3); err != nil {
				tc.dumpLog(m3)
				t.Fatal(err)
			}
			t.Logf("promoted m3 %v after starting it", time.Since(start).Round(time.Millisecond))
			start = time.Now()
			var st []MemberStatus
			waitFor(t, "three healthy voting members", func() error {
				st, err = c.Status(ctx)
				if err != nil {
					return err
				}
				for _, s := range st {
					if !s.Healthy || s.IsLearner {
						return fmt.Errorf("%s = %+v", s.Name, s)
					}
				}
				return nil
			})
			t.Logf("three healthy voting members %v later", time.Since(start).Round(time.Millisecond))
			leaders := 0
			for _, s := range st {
				if s.IsLeader {
					leaders++
				}
				if s.Leader == 0 || s.RaftIndex == 0 || s.RaftTerm == 0 || s.Endpoint != s.ClientURLs[0] || s.Version != strings.TrimPrefix(release.Default().EtcdServerVersion(), "v") {
					t.Errorf("%s status = %+v", s.Name, s)
				}
			}
			if len(st) != 3 || leaders != 1 {
				t.Fatalf("%d members, %d leaders: %+v", len(st), leaders, st)
			}
			if err := c.CheckQuorumSafeToAdd(ctx); err != nil {
				t.Fatal(err)
			}
			// MemberList probes every endpoint it was given and goes on as soon as one answers: the other probes
			// must still end in a completed handshake, not a warning in those members' logs. (The etcd client's
			// own connections are not counted here.)
			before := map[string]int{}
			for _, m := range []*testMember{m1, m2, m3} {
				before[m.name] = tc.rejected(m)
			}
			for range 5 {
				if err := probeAny(ctx, []string{m1.clientURL, m2.clientURL, m3.clientURL}, tc.tls); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(200 * time.Millisecond) // the probes that lost finish their handshakes in the background
			for _, m := range []*testMember{m1, m2, m3} {
				if n := tc.rejected(m) - before[m.name]; n > 0 {
					t.Errorf("%s logged %d rejected connections during 5 probes of all members", m.name, n)
				}
			}
		}},
		{"the leader hands its leadership to another member; a follower hands nothing", func(t *testing.T) {
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var leader, follower *testMember
			for _, s := range st {
				m := map[string]*testMember{"m1": m1, "m2": m2, "m3": m3}[s.Name]
				if s.IsLeader {
					leader = m
				} else {
					follower = m
				}
			}
			if leader == nil || follower == nil {
				t.Fatalf("no leader or no follower in %+v", st)
			}
			lc := tc.client(leader.clientURL)
			to, err := lc.HandOffLeadership(ctx, leader.clientURL)
			if err != nil || to == "" || to == leader.name {
				t.Fatalf("HandOffLeadership from the leader %s = %q, %v", leader.name, to, err)
			}
			after, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s := statusByName(after); !s[to].IsLeader || s[leader.name].IsLeader {
				t.Errorf("after handing to %s: %+v", to, after)
			}
			fc := tc.client(follower.clientURL)
			if follower.name == to {
				fc = tc.client(leader.clientURL) // the old leader is a follower now
				follower = leader
			}
			if got, err := fc.HandOffLeadership(ctx, follower.clientURL); err != nil || got != "" {
				t.Errorf("HandOffLeadership from the follower %s = %q, %v; want nothing moved", follower.name, got, err)
			}
		}},
		{"a voting member is down: add refused, removal checked", func(t *testing.T) {
			m3.stop()
			err := c.CheckQuorumSafeToAdd(ctx)
			want := fmt.Sprintf("etcd cluster is not healthy enough to add a member: voting member m3 (ID %x, peer %s) is not healthy: unreachable: ", id3, m3.peerURL)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrUnhealthy) ||
				!strings.HasSuffix(err.Error(), "connect: connection refused; bring it back, or remove it from the cluster, before adding another") {
				t.Fatalf("error = %v\nwant    %s...", err, want)
			}
			m4 := tc.newMember("m4")
			start := time.Now()
			if _, _, err := c.AddLearner(ctx, "m4", m4.peerURL); !errors.Is(err, ErrUnhealthy) || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("AddLearner error = %v", err)
			}
			if took := time.Since(start); took < addHealthWaitInTests-retryInterval || took > addHealthWaitInTests+10*time.Second {
				t.Errorf("AddLearner refused after %v, want after waiting about %v for m3", took, addHealthWaitInTests)
			}
			members, _ := c.MemberList(ctx)
			if len(members) != 3 {
				t.Fatalf("a refused add changed the members: %+v", members)
			}

			err = c.CheckQuorumSafeToRemove(ctx, id2)
			want = fmt.Sprintf("etcd cluster is not healthy enough to remove m2 (ID %x, peer %s): 1 of the 2 voting members left would be healthy, and quorum needs 2 (down: m3 (ID %x, peer %s): unreachable: ",
				id2, m2.peerURL, id3, m3.peerURL)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; bring them back first") {
				t.Fatalf("error = %v\nwant    %s...", err, want)
			}
			if err := c.CheckQuorumSafeToRemove(ctx, id3); err != nil {
				t.Fatalf("removing the member that is down keeps quorum: %v", err)
			}
		}},
		{"remove the dead member", func(t *testing.T) {
			if err := c.Remove(ctx, id3); err != nil {
				t.Fatal(err)
			}
			if err := c.Remove(ctx, id3); err != nil {
				t.Fatalf("removing a removed member: %v", err)
			}
			if _, err := c.MemberByPeerURL(ctx, m3.peerURL); !errors.Is(err, ErrMemberNotFound) {
				t.Fatalf("MemberByPeerURL of a removed member: %v, want ErrMemberNotFound", err)
			}
			members, err := c.MemberList(ctx)
			if err != nil || len(members) != 2 {
				t.Fatalf("members = %+v, %v", members, err)
			}
			if err := c.CheckQuorumSafeToAdd(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		// Through the other member, as reset does: m2 stops as soon as it learns it was removed, sometimes before
		// it answers its own remove request ("etcdserver: server stopped").
		{"remove m2, found by its peer URL, through m1", func(t *testing.T) {
			if err := c.CheckQuorumSafeToRemove(ctx, id2); err != nil {
				t.Fatal(err)
			}
			m, err := c.MemberByPeerURL(ctx, m2.peerURL)
			if err != nil || m.ID != id2 {
				t.Fatalf("MemberByPeerURL = %+v, %v; want ID %x", m, err, id2)
			}
			if err := c.Remove(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
			members, err := c.MemberList(ctx)
			if err != nil || len(members) != 1 || members[0].Name != "m1" {
				t.Fatalf("members = %+v, %v", members, err)
			}
			err = c.CheckQuorumSafeToRemove(ctx, members[0].ID)
			want := fmt.Sprintf("etcd cluster is not healthy enough to remove m1 (ID %x, peer %s): it is the only voting member, and removing it ends the cluster", members[0].ID, m1.peerURL)
			if err == nil || err.Error() != want {
				t.Fatalf("error = %v\nwant    %s", err, want)
			}
		}},
		{"promote a learner that never starts: bounded", func(t *testing.T) {
			m5 := tc.newMember("m5")
			id5, _, err := c.AddLearner(ctx, "m5", m5.peerURL)
			if err != nil {
				t.Fatal(err)
			}
			short, err := New(Options{Endpoints: []string{m1.clientURL}, TLS: tc.tls, CallTimeout: 1500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer short.Close()
			start := time.Now()
			err = short.Promote(ctx, id5)
			took := time.Since(start)
			want := fmt.Sprintf("promote etcd member %x: it did not catch up with the leader within 1.5s (etcdserver: can only promote a learner member which is in sync with leader): check that its etcd started and reaches the other members' peer URLs", id5)
			if err == nil || err.Error() != want {
				t.Fatalf("error = %v\nwant    %s", err, want)
			}
			if took > 3*time.Second {
				t.Errorf("Promote took %v with a 1.5s call timeout", took)
			}
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s := statusByName(st)[""]
			if s.ID != id5 || !s.IsLearner || s.Healthy || s.Problem != "not started: it has no client URL yet" {
				t.Errorf("status of the unstarted learner = %+v", s)
			}
			if err := c.CheckQuorumSafeToAdd(ctx); err != nil {
				t.Errorf("a learner that is down does not count against adding: %v", err)
			}
			if err := c.CheckQuorumSafeToRemove(ctx, id5); err != nil {
				t.Errorf("removing a learner is always safe: %v", err)
			}
			if err := c.Remove(ctx, id5); err != nil {
				t.Fatal(err)
			}
		}},
		{"promote an unknown member", func(t *testing.T) {
			err := c.Promote(ctx, 0xabc)
			if want := "promote etcd member abc: no such etcd member: ID abc"; err == nil || err.Error() != want || !errors.Is(err, ErrMemberNotFound) {
				t.Fatalf("error = %v, want %s", err, want)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

// sameSet compares two --initial-cluster values as sets: etcd returns members in no promised order.
func sameSet(a, b string) bool {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	if len(as) != len(bs) {
		return false
	}
	seen := map[string]int{}
	for _, x := range as {
		seen[x]++
	}
	for _, x := range bs {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestAllMembersDown(t *testing.T) {
	tc := newTestCluster(t)
	a, b := freePort(t), freePort(t)
	c := tc.client(fmt.Sprintf("https://127.0.0.1:%d", a), fmt.Sprintf("https://127.0.0.1:%d", b))
	start := time.Now()
	_, err := c.MemberList(t.Context())
	want := fmt.Sprintf("list the etcd members: no member reachable at https://127.0.0.1:%d,https://127.0.0.1:%d: ", a, b)
	if err == nil || !strings.HasPrefix(err.Error(), want) ||
		!strings.Contains(err.Error(), fmt.Sprintf("unreachable: dial tcp 127.0.0.1:%d: connect: connection refused", a)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("unreachable: dial tcp 127.0.0.1:%d: connect: connection refused", b)) {
		t.Fatalf("error = %v\nwant    %s...", err, want)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v to find nothing listening", took)
	}
}
