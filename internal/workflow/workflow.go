// Package workflow runs a tree of named phases over typed data. Phase names are public CLI: they become
// `kubeboot init phase <name> [<sub>]` commands and `--skip-phases` values, so they must stay stable.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Phase is one step of a workflow over data D. A phase with sub-phases runs its own Run (if any) first, then its
// children in order.
type Phase[D any] struct {
	Name   string
	Short  string
	Run    func(ctx context.Context, d D) error
	RunIf  func(d D) bool // optional: the phase is skipped (and says so) when it returns false
	Phases []Phase[D]
	// RunAll, when set, replaces running the sub-phases one by one whenever all of them are selected: it lets a
	// parent do its children's work concurrently (e.g. generate every certificate at once).
	RunAll func(ctx context.Context, d D) error
	// Hidden phases run as part of the workflow but are not offered as `phase` subcommands.
	Hidden bool
}

// Options select which phases run.
type Options struct {
	// Skip holds phase paths ("certs", "certs/apiserver") to leave out with everything below them.
	Skip []string
	// Only, when set, runs just that phase path with everything below it.
	Only string
}

// Runner executes phases and reports one progress line per phase with its duration.
type Runner[D any] struct {
	Phases []Phase[D]
	Out    io.Writer
	Now    func() time.Time
}

// ErrUnknownPhase is returned when --skip-phases or a phase command names a phase that does not exist.
var ErrUnknownPhase = errors.New("unknown phase")

// PhaseError says which phase failed; errors.Is/As see through it to the cause.
type PhaseError struct {
	Phase string
	Err   error
}

func (e *PhaseError) Error() string { return fmt.Sprintf("phase %s: %v", e.Phase, e.Err) }
func (e *PhaseError) Unwrap() error { return e.Err }

// Paths lists every phase path in execution order.
func Paths[D any](phases []Phase[D]) []string {
	var out []string
	var walk func(prefix string, ps []Phase[D])
	walk = func(prefix string, ps []Phase[D]) {
		for _, p := range ps {
			path := join(prefix, p.Name)
			out = append(out, path)
			walk(path, p.Phases)
		}
	}
	walk("", phases)
	return out
}

// Validate checks that every path names a phase; the error lists the known ones.
func Validate[D any](phases []Phase[D], paths []string) error {
	known := map[string]bool{}
	for _, p := range Paths(phases) {
		known[p] = true
	}
	var bad []string
	for _, p := range paths {
		if !known[normalize(p)] {
			bad = append(bad, p)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	all := Paths(phases)
	sort.Strings(all)
	return fmt.Errorf("%w %s: known phases are %s", ErrUnknownPhase, strings.Join(quote(bad), ", "), strings.Join(all, ", "))
}

// Run executes the phases selected by opts over d. It stops at the first error.
func (r *Runner[D]) Run(ctx context.Context, d D, opts Options) error {
	if err := Validate(r.Phases, opts.Skip); err != nil {
		return fmt.Errorf("--skip-phases: %w", err)
	}
	if opts.Only != "" {
		if err := Validate(r.Phases, []string{opts.Only}); err != nil {
			return err
		}
	}
	skip := map[string]bool{}
	for _, s := range opts.Skip {
		skip[normalize(s)] = true
	}
	only := normalize(opts.Only)
	return r.run(ctx, d, "", r.Phases, skip, only)
}

func (r *Runner[D]) run(ctx context.Context, d D, prefix string, phases []Phase[D], skip map[string]bool, only string) error {
	for _, p := range phases {
		path := join(prefix, p.Name)
		if skip[path] {
			r.printf("[%s] skipped (--skip-phases)\n", path)
			continue
		}
		// With Only, run a phase when it is the selected one, lies below it, or lies on the way to it.
		selected := only == "" || path == only || strings.HasPrefix(path, only+"/")
		onTheWay := only != "" && strings.HasPrefix(only, path+"/")
		if !selected && !onTheWay {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if selected && p.RunIf != nil && !p.RunIf(d) {
			r.printf("[%s] not needed, skipped\n", path)
			continue
		}
		if selected && p.Run != nil {
			start := r.now()
			if err := p.Run(ctx, d); err != nil {
				return &PhaseError{Phase: path, Err: err}
			}
			r.printf("[%s] done in %s\n", path, round(r.now().Sub(start)))
		}
		if p.RunAll != nil && selected && !anySkipped(path, skip) {
			start := r.now()
			if err := p.RunAll(ctx, d); err != nil {
				return &PhaseError{Phase: path, Err: err}
			}
			r.printf("[%s] all done in %s\n", path, round(r.now().Sub(start)))
			continue
		}
		if len(p.Phases) > 0 {
			if err := r.run(ctx, d, path, p.Phases, skip, only); err != nil {
				return err
			}
		}
	}
	return nil
}

func anySkipped(path string, skip map[string]bool) bool {
	for s := range skip {
		if strings.HasPrefix(s, path+"/") {
			return true
		}
	}
	return false
}

func (r *Runner[D]) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner[D]) printf(format string, args ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format, args...)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// normalize accepts kubeadm's spellings: "certs/all" means "certs".
func normalize(p string) string {
	p = strings.Trim(strings.TrimSpace(p), "/")
	return strings.TrimSuffix(p, "/all")
}

func quote(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
