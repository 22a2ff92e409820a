package cri

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

func TestLastLogMessages(t *testing.T) {
	const apiserverLog = `2025-01-02T03:04:05.000000001Z stderr F I0102 03:04:05.000001 1 server.go:150] Version: v1.34.4
2025-01-02T03:04:05.100000000Z stderr F W0102 03:04:05.100000 1 logging.go:55] grpc: addrConn.createTransport failed
2025-01-02T03:04:06.000000000Z stderr F E0102 03:04:06.000000 1 run.go:72] "command failed" err="failed to create listener: failed to listen on 0.0.0.0:6443: listen tcp 0.0.0.0:6443: bind: address already in use"
`
	tests := []struct {
		name string
		log  string
		n    int
		want []string
	}{
		{
			name: "last two of three",
			log:  apiserverLog,
			n:    2,
			want: []string{
				"W0102 03:04:05.100000 1 logging.go:55] grpc: addrConn.createTransport failed",
				`E0102 03:04:06.000000 1 run.go:72] "command failed" err="failed to create listener: failed to listen on 0.0.0.0:6443: listen tcp 0.0.0.0:6443: bind: address already in use"`,
			},
		},
		{
			name: "fewer lines than asked",
			log:  "2025-01-02T03:04:05Z stdout F hello\n",
			n:    10,
			want: []string{"hello"},
		},
		{
			name: "partial lines joined",
			log:  "2025-01-02T03:04:05Z stdout P aaa\n2025-01-02T03:04:05Z stdout P bbb\n2025-01-02T03:04:05Z stdout F ccc\n2025-01-02T03:04:06Z stdout F next\n",
			n:    5,
			want: []string{"aaabbbccc", "next"},
		},
		{
			name: "empty message and no final newline",
			log:  "2025-01-02T03:04:05Z stdout F \n2025-01-02T03:04:06Z stderr F last",
			n:    5,
			want: []string{"", "last"},
		},
		{
			name: "tag with extra attributes",
			log:  "2025-01-02T03:04:05Z stdout F:x=y msg with  two spaces\n",
			n:    1,
			want: []string{"msg with  two spaces"},
		},
		{
			name: "not CRI format kept whole",
			log:  "panic: runtime error\n",
			n:    1,
			want: []string{"panic: runtime error"},
		},
		{
			name: "trailing partial entry shown",
			log:  "2025-01-02T03:04:05Z stdout F done\n2025-01-02T03:04:06Z stdout P half-writ",
			n:    5,
			want: []string{"done", "half-writ"},
		},
		{
			name: "zero lines",
			log:  apiserverLog,
			n:    0,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LastLogMessages(strings.NewReader(tt.log), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("LastLogMessages = %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestTailLog(t *testing.T) {
	root := t.TempDir()
	fsys := nodefs.FS{Root: root}
	const path = "/var/log/pods/kube-system_etcd-n1_u2/etcd/0.log"
	var b strings.Builder
	// Longer than bufio's default 4 KiB buffer and with lines > 64 KiB: nothing may be truncated.
	long := strings.Repeat("x", 100_000)
	for i := range 1000 {
		b.WriteString("2025-01-02T03:04:05Z stderr F line ")
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString("\n")
	}
	b.WriteString("2025-01-02T03:04:06Z stderr F " + long + "\n")
	b.WriteString("2025-01-02T03:04:07Z stderr F the end\n")
	if err := fsys.WriteFile(path, []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := TailLog(fsys, path, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"line " + string(rune('a'+999%26)), long, "the end"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TailLog = %.80q, want %.80q", got, want)
	}

	_, err = TailLog(fsys, "/var/log/pods/none/0.log", 3)
	wantErr := "read container log: open " + filepath.Join(root, "/var/log/pods/none/0.log") + ": no such file or directory"
	if err == nil || err.Error() != wantErr || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("TailLog(missing) error = %v, want %q", err, wantErr)
	}
}

// A program that refuses a flag prints why once, then its usage: the error lines are found wherever they are.
func TestErrorLogMessages(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	const path = "/var/log/pods/kube-system_etcd-n1_u2/etcd/0.log"
	log := "2025-01-02T03:04:05Z stderr F {\"level\":\"info\",\"msg\":\"starting\"}\n" +
		"2025-01-02T03:04:05Z stderr P flag provided but not defined: -e2e-no-such-fl\n" +
		"2025-01-02T03:04:05Z stderr F ag\n" +
		"2025-01-02T03:04:05Z stderr F Usage:\n" +
		"2025-01-02T03:04:05Z stderr F   etcd [flags]\n" +
		"2025-01-02T03:04:05Z stderr F Error: unknown flag: --x\n" +
		"2025-01-02T03:04:05Z stderr F panic: boom\n" +
		"2025-01-02T03:04:05Z stderr F fatal: more than asked\n"
	if err := fsys.WriteFile(path, []byte(log), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := ErrorLogMessages(fsys, path, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"flag provided but not defined: -e2e-no-such-flag", "Error: unknown flag: --x", "panic: boom"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ErrorLogMessages = %q, want %q", got, want)
	}
	if _, err := ErrorLogMessages(fsys, "/var/log/pods/none/0.log", 3); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing log: %v", err)
	}
}
