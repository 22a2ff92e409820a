package preflight

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// staticCheck returns fixed results.
type staticCheck struct {
	name           string
	warnings, errs []error
	ran            *int
}

func (c staticCheck) Name() string { return c.name }

func (c staticCheck) Check(context.Context) ([]error, []error) {
	if c.ran != nil {
		*c.ran++
	}
	return c.warnings, c.errs
}

func TestRun(t *testing.T) {
	checks := func() []Check {
		return []Check{
			staticCheck{name: "NumCPU", errs: []error{errors.New("the number of available CPUs 1 is less than the required 2, give the machine at least 2 CPUs")}},
			staticCheck{name: "Swap", warnings: []error{errors.New("swap is enabled")}},
			staticCheck{name: "Hostname"},
			staticCheck{name: "Port-6443", errs: []error{errors.New("port 6443 is in use on 0.0.0.0, stop it")}},
			staticCheck{name: "Port-2379", errs: []error{
				errors.New("port 2379 is in use on 127.0.0.1, stop it"),
				errors.New("port 2379 is in use on 10.0.0.10, stop it"),
			}},
		}
	}
	tests := []struct {
		name         string
		ignore       []string
		wantErr      string
		wantWarnings string
	}{
		{
			name: "nothing ignored",
			wantErr: "preflight checks failed:\n" +
				"\t[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2, give the machine at least 2 CPUs\n" +
				"\t[ERROR Port-6443]: port 6443 is in use on 0.0.0.0, stop it\n" +
				"\t[ERROR Port-2379]: port 2379 is in use on 127.0.0.1, stop it\n" +
				"\t[ERROR Port-2379]: port 2379 is in use on 10.0.0.10, stop it\n" +
				"To ignore these, use --ignore-preflight-errors=NumCPU,Port-6443,Port-2379",
			wantWarnings: "\t[WARNING Swap]: swap is enabled\n",
		},
		{
			name:   "names are case-insensitive; ignored errors become warnings",
			ignore: []string{"numcpu", "PORT-2379"},
			wantErr: "preflight checks failed:\n" +
				"\t[ERROR Port-6443]: port 6443 is in use on 0.0.0.0, stop it\n" +
				"To ignore these, use --ignore-preflight-errors=Port-6443",
			wantWarnings: "\t[WARNING NumCPU]: the number of available CPUs 1 is less than the required 2, give the machine at least 2 CPUs\n" +
				"\t[WARNING Swap]: swap is enabled\n" +
				"\t[WARNING Port-2379]: port 2379 is in use on 127.0.0.1, stop it\n" +
				"\t[WARNING Port-2379]: port 2379 is in use on 10.0.0.10, stop it\n",
		},
		{
			name:   "all ignores everything",
			ignore: []string{"All"},
			wantWarnings: "\t[WARNING NumCPU]: the number of available CPUs 1 is less than the required 2, give the machine at least 2 CPUs\n" +
				"\t[WARNING Swap]: swap is enabled\n" +
				"\t[WARNING Port-6443]: port 6443 is in use on 0.0.0.0, stop it\n" +
				"\t[WARNING Port-2379]: port 2379 is in use on 127.0.0.1, stop it\n" +
				"\t[WARNING Port-2379]: port 2379 is in use on 10.0.0.10, stop it\n",
		},
		{
			name:   "a name that matches no check changes nothing",
			ignore: []string{"Port-6444", "NumCPUs"},
			wantErr: "preflight checks failed:\n" +
				"\t[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2, give the machine at least 2 CPUs\n" +
				"\t[ERROR Port-6443]: port 6443 is in use on 0.0.0.0, stop it\n" +
				"\t[ERROR Port-2379]: port 2379 is in use on 127.0.0.1, stop it\n" +
				"\t[ERROR Port-2379]: port 2379 is in use on 10.0.0.10, stop it\n" +
				"To ignore these, use --ignore-preflight-errors=NumCPU,Port-6443,Port-2379",
			wantWarnings: "\t[WARNING Swap]: swap is enabled\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			err := Run(t.Context(), checks(), tt.ignore, &w)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run error = %v, want nil", err)
				}
			} else {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Run error:\n%v\nwant:\n%s", err, tt.wantErr)
				}
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("Run error is %T, want *Error", err)
				}
			}
			if w.String() != tt.wantWarnings {
				t.Errorf("warnings:\n%q\nwant\n%q", w.String(), tt.wantWarnings)
			}
		})
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ran := 0
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Run(ctx, []Check{staticCheck{name: "NumCPU", ran: &ran}}, nil, &bytes.Buffer{})
	if want := "preflight checks interrupted before they ran: context canceled"; err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want %q", err, want)
	}
	if ran != 0 {
		t.Fatalf("ran %d checks after cancellation, want 0", ran)
	}
}

// The port check against the real network stack: a port something listens on must fail, under the check's name,
// whether the component binds that same address or every address.
func TestPortCheckRealListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	env := HostEnv(newFakeMachine(t).fs())

	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		t.Run("busy on "+host, func(t *testing.T) {
			err := Run(t.Context(), []Check{port{env: env, port: busy, hosts: []string{host}}}, nil, &bytes.Buffer{})
			p := strconv.Itoa(busy)
			want := "preflight checks failed:\n" +
				"\t[ERROR Port-" + p + "]: port " + p + " is in use on " + host + ", stop what listens there (ss -ltnp 'sport = :" + p + "') or run 'kubeboot reset' if it is a previous cluster\n" +
				"To ignore these, use --ignore-preflight-errors=Port-" + p
			if err == nil || err.Error() != want {
				t.Fatalf("Run error:\n%v\nwant:\n%s", err, want)
			}
		})
	}

	t.Run("free after close", func(t *testing.T) {
		free, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := free.Addr().(*net.TCPAddr).Port
		free.Close()
		warnings, errs := port{env: env, port: p, hosts: []string{"127.0.0.1"}}.Check(t.Context())
		if len(warnings) != 0 || len(errs) != 0 {
			t.Fatalf("Port-%d on a free port: warnings %v, errors %v; want none", p, warnings, errs)
		}
	})
}

// barrierCheck finishes only once every check sharing its WaitGroup has started: Run deadlocks (and the test
// times out) unless it runs the checks at once.
type barrierCheck struct {
	name    string
	started *sync.WaitGroup
	warn    error
}

func (c barrierCheck) Name() string { return c.name }

func (c barrierCheck) Check(ctx context.Context) ([]error, []error) {
	c.started.Done()
	done := make(chan struct{})
	go func() { c.started.Wait(); close(done) }()
	select {
	case <-done:
		return []error{c.warn}, nil
	case <-ctx.Done():
		return nil, []error{ctx.Err()}
	}
}

func TestRunRunsChecksAtOnceAndReportsInOrder(t *testing.T) {
	var started sync.WaitGroup
	started.Add(3)
	checks := []Check{
		barrierCheck{name: "First", started: &started, warn: errors.New("one")},
		barrierCheck{name: "Second", started: &started, warn: errors.New("two")},
		barrierCheck{name: "Third", started: &started, warn: errors.New("three")},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var w bytes.Buffer
	if err := Run(ctx, checks, nil, &w); err != nil {
		t.Fatalf("Run: %v (a check waited for the others: were they run one after another?)", err)
	}
	want := "\t[WARNING First]: one\n\t[WARNING Second]: two\n\t[WARNING Third]: three\n"
	if w.String() != want {
		t.Errorf("warnings:\n%q\nwant, in the checks' order:\n%q", w.String(), want)
	}
}
