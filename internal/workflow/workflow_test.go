package workflow

import (
	"bytes"
	"context"
	"errors"
	"strings"
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
		})
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

func TestRunAllReplacesChildrenOnlyWhenAllSelected(t *testing.T) {
	phases := func() []Phase[*record] {
		ps := tree()
		ps[1].RunAll = func(_ context.Context, r *record) error {
			r.ran = append(r.ran, "certs-all")
			return nil
		}
		return ps
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"whole workflow", Options{Skip: []string{"kubeconfig", "preflight", "show-join-command"}}, "certs-all"},
		{"only parent", Options{Only: "certs"}, "certs-all"},
		{"only child", Options{Only: "certs/ca"}, "ca"},
		{"a child skipped", Options{Only: "certs", Skip: []string{"certs/sa"}}, "ca,apiserver"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &record{}
			run := Runner[*record]{Phases: phases()}
			if err := run.Run(t.Context(), r, tt.opts); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(r.ran, ","); got != tt.want {
				t.Fatalf("ran %s, want %s", got, tt.want)
			}
		})
	}
}
