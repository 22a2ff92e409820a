package cli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
)

// fakeEtcd answers the etcd commands with fixed data.
type fakeEtcd struct {
	members []etcd.Member
	status  []etcd.MemberStatus
	err     error
	closed  bool
}

func (f *fakeEtcd) MemberList(context.Context) ([]etcd.Member, error)   { return f.members, f.err }
func (f *fakeEtcd) Status(context.Context) ([]etcd.MemberStatus, error) { return f.status, f.err }
func (f *fakeEtcd) Close() error                                        { f.closed = true; return nil }

var (
	etcdM1 = etcd.Member{ID: 0x8e9e05c52164694d, Name: "cp-1", PeerURLs: []string{"https://10.0.0.1:2380"}, ClientURLs: []string{"https://10.0.0.1:2379"}}
	etcdM2 = etcd.Member{ID: 0x91bc3c398fb3c146, Name: "cp-2", PeerURLs: []string{"https://10.0.0.2:2380"}, ClientURLs: []string{"https://10.0.0.2:2379"}}
	etcdM3 = etcd.Member{ID: 0xfd422379fda50e48, PeerURLs: []string{"https://10.0.0.3:2380"}, IsLearner: true}
)

func runEtcd(t *testing.T, api *fakeEtcd, args ...string) (flags etcdFlags, out string, err error) {
	t.Helper()
	var buf bytes.Buffer
	cmd := newEtcdCmdWith(&buf, func(f etcdFlags) (etcdAPI, error) { flags = f; return api, nil })
	cmd.SetArgs(args)
	cmd.SetOut(&buf)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as under the root command
	err = cmd.ExecuteContext(t.Context())
	if !api.closed && err == nil {
		t.Error("the client was not closed")
	}
	return flags, buf.String(), err
}

func TestEtcdMemberList(t *testing.T) {
	api := &fakeEtcd{members: []etcd.Member{etcdM1, etcdM2, etcdM3}}
	flags, out, err := runEtcd(t, api, "member", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(flags.endpoints, []string{"https://127.0.0.1:2379"}) || flags.certDir != "/etc/kubernetes/pki" || flags.timeout != 15*time.Second {
		t.Errorf("default flags = %+v", flags)
	}
	want := `ID                NAME  STATUS     LEARNER  PEER URLS              CLIENT URLS
8e9e05c52164694d  cp-1  started    false    https://10.0.0.1:2380  https://10.0.0.1:2379
91bc3c398fb3c146  cp-2  started    false    https://10.0.0.2:2380  https://10.0.0.2:2379
fd422379fda50e48  -     unstarted  true     https://10.0.0.3:2380  -
`
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}

	flags, out, err = runEtcd(t, &fakeEtcd{members: []etcd.Member{etcdM1, etcdM3}}, "member", "list", "-o", "json",
		"--endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379", "--cert-dir", "/pki")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(flags.endpoints, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}) || flags.certDir != "/pki" {
		t.Errorf("flags = %+v", flags)
	}
	want = `[
  {
    "id": "8e9e05c52164694d",
    "name": "cp-1",
    "started": true,
    "isLearner": false,
    "peerURLs": [
      "https://10.0.0.1:2380"
    ],
    "clientURLs": [
      "https://10.0.0.1:2379"
    ]
  },
  {
    "id": "fd422379fda50e48",
    "name": "",
    "started": false,
    "isLearner": true,
    "peerURLs": [
      "https://10.0.0.3:2380"
    ],
    "clientURLs": []
  }
]
`
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}

	_, _, err = runEtcd(t, &fakeEtcd{}, "member", "list", "-o", "yaml")
	if err == nil || err.Error() != `--output "yaml": must be table or json` {
		t.Fatalf("error = %v", err)
	}
	_, _, err = runEtcd(t, &fakeEtcd{err: errors.New("list the etcd members at https://127.0.0.1:2379: context deadline exceeded")}, "member", "list")
	if err == nil || hint.Of(err) == "" {
		t.Fatalf("error = %v, want a hinted error", err)
	}
}

func TestEtcdStatus(t *testing.T) {
	healthy := []etcd.MemberStatus{
		{Member: etcdM1, Endpoint: "https://10.0.0.1:2379", Healthy: true, IsLeader: true, Leader: etcdM1.ID, RaftTerm: 3, RaftIndex: 1042, DBSize: 20 << 20, Version: "3.6.5"},
		{Member: etcdM2, Endpoint: "https://10.0.0.2:2379", Healthy: true, Leader: etcdM1.ID, RaftTerm: 3, RaftIndex: 1042, DBSize: 3 << 10, Version: "3.6.5"},
	}
	_, out, err := runEtcd(t, &fakeEtcd{status: healthy}, "status")
	if err != nil {
		t.Fatal(err)
	}
	want := `NAME  ID                ENDPOINT               HEALTH   ROLE      RAFT TERM  RAFT INDEX  VERSION  DB SIZE   PROBLEM
cp-1  8e9e05c52164694d  https://10.0.0.1:2379  healthy  leader    3          1042        3.6.5    20.0 MiB  -
cp-2  91bc3c398fb3c146  https://10.0.0.2:2379  healthy  follower  3          1042        3.6.5    3.0 KiB   -

leader: cp-1 (8e9e05c52164694d); learners: none; healthy: 2 of 2 members
`
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}

	sick := append(slices.Clone(healthy[:1]),
		etcd.MemberStatus{Member: etcdM2, Endpoint: "https://10.0.0.2:2379", Problem: "unreachable: dial tcp 10.0.0.2:2379: connect: connection refused"},
		etcd.MemberStatus{Member: etcdM3, Problem: "not started: it has no client URL yet"},
	)
	_, out, err = runEtcd(t, &fakeEtcd{status: sick}, "status")
	want = `NAME  ID                ENDPOINT               HEALTH     ROLE     RAFT TERM  RAFT INDEX  VERSION  DB SIZE   PROBLEM
cp-1  8e9e05c52164694d  https://10.0.0.1:2379  healthy    leader   3          1042        3.6.5    20.0 MiB  -
cp-2  91bc3c398fb3c146  https://10.0.0.2:2379  unhealthy  -        -          -           -        -         unreachable: dial tcp 10.0.0.2:2379: connect: connection refused
-     fd422379fda50e48  -                      unhealthy  learner  -          -           -        -         not started: it has no client URL yet

leader: cp-1 (8e9e05c52164694d); learners: - (fd422379fda50e48); healthy: 1 of 3 members
`
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}
	if want := "2 of 3 etcd members are not healthy: cp-2 (91bc3c398fb3c146), - (fd422379fda50e48)"; err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}

	_, out, err = runEtcd(t, &fakeEtcd{status: healthy[1:]}, "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	want = `[
  {
    "id": "91bc3c398fb3c146",
    "name": "cp-2",
    "started": true,
    "isLearner": false,
    "peerURLs": [
      "https://10.0.0.2:2380"
    ],
    "clientURLs": [
      "https://10.0.0.2:2379"
    ],
    "endpoint": "https://10.0.0.2:2379",
    "healthy": true,
    "isLeader": false,
    "leader": "8e9e05c52164694d",
    "raftTerm": 3,
    "raftIndex": 1042,
    "raftAppliedIndex": 0,
    "dbSize": 3072,
    "version": "3.6.5"
  }
]
`
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestEtcdStatusWithoutCertificates(t *testing.T) {
	code, _, errs := run(t, "etcd", "status", "--rootfs", t.TempDir())
	want := "error: read the etcd CA: open "
	if code != 1 || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "hint: run this on a control-plane node with stacked etcd, or pass --cert-dir") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
}
