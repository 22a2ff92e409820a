package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type record struct{ ran []string }

func phase(name string, children ...Phase[*record]) Phase[*record] {
	return Phase[*record]{Name: name, Phases: children}
}

func leaf(name string) Phase[*record] {
	return Phase[*record]{Name: name, Run: func(_ context.Context, r *record) error {
		r.ran = append(r.ran, name)
		return nil
	}}
}

func tree() []Phase[*record] {
	return []Phase[*record]{
		leaf("preflight"),
		phase("certs", leaf("ca"), leaf("apiserver"), leaf("sa")),
		phase("kubeconfig", leaf("admin"), leaf("kubelet")),
		leaf("show-join-command"),
	}
}

func TestRunSelection(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"all", Options{}, []string{"preflight", "ca", "apiserver", "sa", "admin", "kubelet", "show-join-command"}},
		{"skip parent", Options{Skip: []string{"certs"}}, []string{"preflight", "admin", "kubelet", "show-join-command"}},
		{"skip child", Options{Skip: []string{"certs/apiserver", "kubeconfig/admin"}}, []string{"preflight", "ca", "sa", "kubelet", "show-join-command"}},
		{"skip all spelling", Options{Skip: []string{"kubeconfig/all"}}, []string{"preflight", "ca", "apiserver", "sa", "show-join-command"}},
		{"only parent", Options{Only: "certs"}, []string{"ca", "apiserver", "sa"}},
		{"only child", Options{Only: "certs/sa"}, []string{"sa"}},
		{"only with skip", Options{Only: "certs", Skip: []string{"certs/ca"}}, []string{"apiserver", "sa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &record{}
			run := Runner[*record]{Phases: tree()}
			if err := run.Run(t.Context(), r, tt.opts); err != nil {
				t.Fatal(err)
			}
			if strings.Join(r.ran, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("ran %v, want %v", r.ran, tt.want)
			}
			// Selected answers, before a run, what the run then did: every leaf's name is unique in tree().
			for _, path := range Paths(tree()) {
				name := path[strings.LastIndex(path, "/")+1:]
				if !slices.Contains([]string{"certs", "kubeconfig"}, name) {
					if got, want := Selected(tree(), tt.opts, path), slices.Contains(r.ran, name); got != want {
						t.Errorf("Selected(%q) = %v, but the run ran it: %v", path, got, want)
					}
				}
			}
		})
	}
	if Selected(tree(), Options{}, "certs/nope") {
		t.Error("Selected says yes to a phase that does not exist")
	}
	if Selected(tree(), Options{Only: "certs/sa"}, "certs") {
		t.Error("Selected says yes to a parent that is only on the way to the phase Only selects")
	}
}

func TestUnknownPhase(t *testing.T) {
	run := Runner[*record]{Phases: tree()}
	err := run.Run(t.Context(), &record{}, Options{Skip: []string{"certz"}})
	if !errors.Is(err, ErrUnknownPhase) {
		t.Fatalf("got %v, want ErrUnknownPhase", err)
	}
	want := `--skip-phases: unknown phase "certz": known phases are certs, certs/apiserver, certs/ca, certs/sa, kubeconfig, kubeconfig/admin, kubeconfig/kubelet, preflight, show-join-command`
	if err.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", err, want)
	}
	if err := run.Run(t.Context(), &record{}, Options{Only: "nope"}); !errors.Is(err, ErrUnknownPhase) {
		t.Fatalf("Only: got %v", err)
	}
}

func TestHold(t *testing.T) {
	held := errors.New("held")
	var calls []string
	hold := func(err error) func() (func(), error) {
		return func() (func(), error) {
			calls = append(calls, "hold")
			if err != nil {
				return nil, err
			}
			return func() { calls = append(calls, "release") }, nil
		}
	}
	run := Runner[*record]{Phases: tree()}
	if err := run.Run(t.Context(), &record{}, Options{Skip: []string{"certz"}, Hold: hold(nil)}); !errors.Is(err, ErrUnknownPhase) || len(calls) != 0 {
		t.Fatalf("bad Skip: got %v and calls %q, want ErrUnknownPhase before Hold", err, calls)
	}
	r := &record{}
	if err := run.Run(t.Context(), r, Options{Hold: hold(held)}); err != held || len(r.ran) != 0 {
		t.Fatalf("refused Hold: got %v, ran %q; want the Hold's error and no phase run", err, r.ran)
	}
	calls = nil
	if err := run.Run(t.Context(), &record{}, Options{Hold: hold(nil)}); err != nil || !slices.Equal(calls, []string{"hold", "release"}) {
		t.Fatalf("got %v and calls %q, want hold then release", err, calls)
	}
}

func TestErrorNamesPhaseAndStops(t *testing.T) {
	boom := errors.New("boom")
	r := &record{}
	phases := tree()
	phases[1].Phases[1].Run = func(context.Context, *record) error { return boom }
	run := Runner[*record]{Phases: phases}
	err := run.Run(t.Context(), r, Options{})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "certs/apiserver" {
		t.Fatalf("got %#v, want PhaseError for certs/apiserver", err)
	}
	if err.Error() != "phase certs/apiserver: boom" {
		t.Fatalf("message %q", err)
	}
	if strings.Join(r.ran, ",") != "preflight,ca" {
		t.Fatalf("ran %v after the failure", r.ran)
	}
}

func TestProgressLinesAndRunIf(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	clock := func() time.Time { now = now.Add(1500 * time.Millisecond); return now }
	phases := []Phase[*record]{
		leaf("a"),
		{Name: "b", Run: func(context.Context, *record) error { t.Fatal("b must not run"); return nil }, RunIf: func(*record) bool { return false }},
		leaf("c"),
	}
	run := Runner[*record]{Phases: phases, Out: &out, Now: clock}
	if err := run.Run(t.Context(), &record{}, Options{Skip: []string{"c"}}); err != nil {
		t.Fatal(err)
	}
	want := "[a] done in 1.5s\n[b] not needed, skipped\n[c] skipped (--skip-phases)\n"
	if out.String() != want {
		t.Fatalf("got %q want %q", out.String(), want)
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	run := Runner[*record]{Phases: tree()}
	r := &record{}
	if err := run.Run(ctx, r, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if len(r.ran) != 0 {
		t.Fatalf("ran %v", r.ran)
	}
}

// A phase with Needs runs as soon as what it needs is done, while an earlier phase it does not need still runs.
func TestNeedsRunsConcurrently(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	r := &record{}
	add := func(s string) { mu.Lock(); r.ran = append(r.ran, s); mu.Unlock() }
	released := make(chan struct{})
	phases := []Phase[*record]{
		{Name: "pre", Run: func(context.Context, *record) error { add("pre"); return nil }},
		{Name: "slow", Run: func(ctx context.Context, _ *record) error {
			select {
			case <-released:
				add("slow")
				return nil
			case <-ctx.Done():
				return errors.New("slow waited in vain: fast did not run while slow ran")
			}
		}},
		{Name: "fast", Needs: []string{"pre"}, Run: func(context.Context, *record) error { add("fast"); close(released); return nil }},
		{Name: "last", Run: func(context.Context, *record) error { add("last"); return nil }},
	}
	var out bytes.Buffer
	run := Runner[*record]{Phases: phases, Out: Locked(&out)}
	if err := run.Run(ctx, r, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.ran, ","); got != "pre,fast,slow,last" {
		t.Fatalf("ran %s, want pre,fast,slow,last (last waits for every earlier sibling)", got)
	}
}

// Needs naming a parent waits for all of its children; a skipped need counts as done; a failure stops what has not
// started and is reported with its path.
func TestNeedsWaitsSkipsAndFails(t *testing.T) {
	var mu sync.Mutex
	mk := func(r *record, name string, err error) Phase[*record] {
		return Phase[*record]{Name: name, Run: func(context.Context, *record) error {
			mu.Lock()
			r.ran = append(r.ran, name)
			mu.Unlock()
			return err
		}}
	}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		failing string
		opts    Options
		want    string
		wantErr string
	}{
		{"needs a parent", "", Options{}, "a1,a2,b", ""},
		{"a need skipped", "", Options{Skip: []string{"a"}}, "b", ""},
		{"a need fails", "a2", Options{}, "a1,a2", "phase a/a2: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &record{}
			var errA2 error
			if tt.failing == "a2" {
				errA2 = boom
			}
			b := mk(r, "b", nil)
			b.Needs = []string{"a"}
			phases := []Phase[*record]{{Name: "a", Phases: []Phase[*record]{mk(r, "a1", nil), mk(r, "a2", errA2)}}, b}
			run := Runner[*record]{Phases: phases}
			err := run.Run(t.Context(), r, tt.opts)
			if got := fmt.Sprint(err); tt.wantErr != "" && got != tt.wantErr || tt.wantErr == "" && err != nil {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if got := strings.Join(r.ran, ","); got != tt.want {
				t.Fatalf("ran %s, want %s", got, tt.want)
			}
		})
	}
}

// Needs may let a later phase go first; a cycle is refused before anything runs.
func TestNeedsOrderAndCycles(t *testing.T) {
	r := &record{}
	a, b := leaf("a"), leaf("b")
	a.Needs, b.Needs = []string{"b"}, []string{} // without Needs, b would wait for a
	if err := (&Runner[*record]{Phases: []Phase[*record]{a, b}}).Run(t.Context(), r, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.ran, ","); got != "b,a" {
		t.Fatalf("ran %s, want b,a", got)
	}
	r = &record{}
	b.Needs = []string{"a"}
	err := (&Runner[*record]{Phases: []Phase[*record]{a, b}}).Run(t.Context(), r, Options{})
	if err == nil || err.Error() != "the phases form a cycle through a: check their Needs" || len(r.ran) != 0 {
		t.Fatalf("got %v, ran %v", err, r.ran)
	}
}

func TestParentRunIfSkipsChildren(t *testing.T) {
	var out bytes.Buffer
	r := &record{}
	phases := []Phase[*record]{
		{Name: "p", RunIf: func(*record) bool { return false }, Phases: []Phase[*record]{leaf("c")}},
		leaf("after"),
	}
	run := Runner[*record]{Phases: phases, Out: &out}
	if err := run.Run(t.Context(), r, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.ran, ","); got != "after" {
		t.Fatalf("ran %s, want after", got)
	}
	if !strings.HasPrefix(out.String(), "[p] not needed, skipped\n[after] done in ") {
		t.Fatalf("output %q", out.String())
	}
}

// A Needs path that names no phase is a mistake in the tree: it is refused before anything runs, whatever the
// options select, instead of being dropped (the phase would then run before what it meant to wait for).
func TestNeedsNamingNoPhase(t *testing.T) {
	typo := leaf("kubelet-start")
	typo.Needs = []string{"certs/ca", "certs/cs"}
	nested := leaf("admin")
	nested.Needs = []string{"kubelet-strat", "kubeconfig/all"}
	phases := []Phase[*record]{
		leaf("preflight"),
		phase("certs", leaf("ca"), leaf("apiserver")),
		typo,
		phase("kubeconfig", nested, leaf("kubelet")),
	}
	want := "phase kubelet-start: Needs \"certs/cs\" names no phase\n" +
		"phase kubeconfig/admin: Needs \"kubelet-strat\" names no phase"
	if err := Check(phases); err == nil || err.Error() != want {
		t.Fatalf("Check: %v\nwant %s", err, want)
	}
	for _, opts := range []Options{{}, {Skip: []string{"kubeconfig", "kubelet-start"}}, {Only: "preflight"}} {
		r := &record{}
		err := (&Runner[*record]{Phases: phases}).Run(t.Context(), r, opts)
		if err == nil || err.Error() != want || len(r.ran) != 0 {
			t.Errorf("Run(%+v): %v, ran %v\nwant %s", opts, err, r.ran, want)
		}
	}
	if err := Check(tree()); err != nil {
		t.Errorf("a tree without Needs: %v", err)
	}
}

// Stopped between phases (the signal arrived while a finished): the error names the phase that would have run
// next, and the cause.
func TestStoppedBetweenPhasesNamesTheNext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	ran := []string{}
	run := Runner[*record]{Phases: []Phase[*record]{
		{Name: "a", Run: func(context.Context, *record) error {
			ran = append(ran, "a")
			cancel(errors.New("interrupt signal received"))
			return nil
		}},
		{Name: "b", Run: func(context.Context, *record) error { ran = append(ran, "b"); return nil }},
	}}
	err := run.Run(ctx, &record{}, Options{})
	if err == nil || err.Error() != "stopped before phase b: interrupt signal received" {
		t.Fatalf("error %v, want stopped before phase b: interrupt signal received", err)
	}
	if !slices.Equal(ran, []string{"a"}) {
		t.Errorf("ran %v, want a only", ran)
	}
}
