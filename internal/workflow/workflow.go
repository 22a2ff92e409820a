// Package workflow runs a tree of named phases over typed data. Phase names are public CLI: they become
// `kubeboot init phase <name> [<sub>]` commands and `--skip-phases` values, so they must stay stable.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Phase is one step of a workflow over data D. A phase with sub-phases runs its own Run (if any) first, then its
// children. Phases run in order unless they say, with Needs, which phases they must wait for.
type Phase[D any] struct {
	Name   string
	Short  string
	Run    func(ctx context.Context, d D) error
	RunIf  func(d D) bool // optional: the phase and its children are skipped (it says so) when it returns false
	Phases []Phase[D]
	// Needs, when set, lists the paths of the phases this phase must wait for: it starts as soon as they have
	// finished, concurrently with any other phase that may run, instead of after all of its earlier siblings. A
	// path covers the phase and everything below it; a needed phase that is skipped or not selected counts as
	// finished. Without Needs a phase waits for its earlier siblings, so a tree without Needs runs strictly in
	// order. A phase always waits for its parent. Needs may name a later phase (to let it go first), but not
	// form a cycle, nor name a phase that does not exist (see Check).
	Needs []string
	// Hidden phases run as part of the workflow but are not offered as `phase` subcommands.
	Hidden bool
}

// Options select which phases run.
type Options struct {
	// Skip holds phase paths ("certs", "certs/apiserver") to leave out with everything below them.
	Skip []string
	// Only, when set, runs just that phase path with everything below it.
	Only string
	// Hold, when set, is called once Skip and Only are found valid and before any phase runs: the run stops with
	// its error, and calls release when it returns. The CLI takes the node lock with it, so that a command refused
	// for a bad option has written nothing, not even the lock file.
	Hold func() (release func(), err error)
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

// Check reports the mistakes of a phase tree that no selection of phases can hide: a Needs path that names no
// phase. Without it such a need would be dropped and the phase would run before what it needs. Run checks first.
func Check[D any](phases []Phase[D]) error {
	known := map[string]bool{}
	for _, p := range Paths(phases) {
		known[p] = true
	}
	var errs []error
	var walk func(prefix string, ps []Phase[D])
	walk = func(prefix string, ps []Phase[D]) {
		for _, p := range ps {
			path := join(prefix, p.Name)
			for _, n := range p.Needs {
				if !known[normalize(n)] {
					errs = append(errs, fmt.Errorf("phase %s: Needs %q names no phase", path, n))
				}
			}
			walk(path, p.Phases)
		}
	}
	walk("", phases)
	return errors.Join(errs...)
}

// Run executes the phases selected by opts over d. It stops at the first error: phases that have not started by
// then do not start, and the error is returned once the running ones have returned. Phases that run concurrently
// (see Phase.Needs) share d and its writers, so both must be safe for that (see Locked).
func (r *Runner[D]) Run(ctx context.Context, d D, opts Options) error {
	if err := Check(r.Phases); err != nil {
		return err
	}
	if err := Validate(r.Phases, opts.Skip); err != nil {
		return fmt.Errorf("--skip-phases: %w", err)
	}
	if opts.Only != "" {
		if err := Validate(r.Phases, []string{opts.Only}); err != nil {
			return err
		}
	}
	tasks := planned(r.Phases, opts)
	if err := link(tasks); err != nil {
		return err
	}
	if opts.Hold != nil {
		release, err := opts.Hold()
		if err != nil {
			return err
		}
		defer release()
	}
	return r.execute(ctx, d, tasks)
}

// Selected reports whether a run with opts runs the phase at path, unless its RunIf says no when it comes to it:
// Only selects it, and neither it nor a parent is in Skip. A flow uses it to hand a step from one phase to a later
// one only when both run.
func Selected[D any](phases []Phase[D], opts Options, path string) bool {
	path = normalize(path)
	for _, t := range planned(phases, opts) {
		if t.path == path {
			return t.selected && !t.skipped
		}
	}
	return false
}

// planned is the tasks of a run with opts, unlinked.
func planned[D any](phases []Phase[D], opts Options) []*task[D] {
	skip := map[string]bool{}
	for _, s := range opts.Skip {
		skip[normalize(s)] = true
	}
	var tasks []*task[D]
	plan(&tasks, nil, "", phases, skip, normalize(opts.Only))
	return tasks
}

// task is one selected phase of a run, with the tasks it waits for.
type task[D any] struct {
	path     string
	phase    Phase[D]
	parent   *task[D]
	siblings []*task[D] // the tasks of the earlier siblings and their descendants
	skipped  bool       // by --skip-phases
	selected bool       // false for a parent that is only on the way to the phase Only selects
	deps     []*task[D]
	done     chan struct{}
	ok       bool // finished: ran, or was skipped; read after done is closed
	open     bool // ok, and its children may run (its RunIf did not say no)
}

// plan appends the tasks of phases below prefix to tasks, in order.
func plan[D any](tasks *[]*task[D], parent *task[D], prefix string, phases []Phase[D], skip map[string]bool, only string) {
	first := len(*tasks)
	for _, p := range phases {
		path := join(prefix, p.Name)
		selected := only == "" || path == only || strings.HasPrefix(path, only+"/")
		onTheWay := only != "" && strings.HasPrefix(only, path+"/")
		if !selected && !onTheWay {
			continue
		}
		t := &task[D]{path: path, phase: p, parent: parent, skipped: skip[path], selected: selected, done: make(chan struct{}),
			siblings: slices.Clone((*tasks)[first:])}
		*tasks = append(*tasks, t)
		if !t.skipped {
			plan(tasks, t, path, p.Phases, skip, only)
		}
	}
}

// link sets every task's dependencies: its parent, and what its Needs name or else its earlier siblings. A cycle
// is a mistake in the phase tree; it is reported rather than left to hang the run.
func link[D any](tasks []*task[D]) error {
	for _, t := range tasks {
		if t.parent != nil {
			t.deps = append(t.deps, t.parent)
		}
		if t.phase.Needs == nil {
			t.deps = append(t.deps, t.siblings...)
			continue
		}
		for _, e := range tasks {
			if e == t || strings.HasPrefix(t.path, e.path+"/") {
				continue // itself, or an ancestor (already a dependency)
			}
			for _, n := range t.phase.Needs {
				if n = normalize(n); e.path == n || strings.HasPrefix(e.path, n+"/") {
					t.deps = append(t.deps, e)
					break
				}
			}
		}
	}
	state := map[*task[D]]int{} // 1 visiting, 2 done
	var visit func(t *task[D]) error
	visit = func(t *task[D]) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("the phases form a cycle through %s: check their Needs", t.path)
		case 2:
			return nil
		}
		state[t] = 1
		for _, d := range t.deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[t] = 2
		return nil
	}
	for _, t := range tasks {
		if err := visit(t); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner[D]) execute(ctx context.Context, d D, tasks []*task[D]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Go(func() {
			defer close(t.done)
			for _, dep := range t.deps {
				select {
				case <-dep.done:
				case <-ctx.Done():
					return
				}
				if !dep.ok {
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			if t.parent != nil && !t.parent.open {
				t.ok = true // its parent said it is not needed, and said so
				return
			}
			err := r.runTask(ctx, d, t)
			if err != nil {
				fail(&PhaseError{Phase: t.path, Err: err})
				return
			}
			t.ok = true
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	// Stopped between phases (a signal, the caller's deadline): say which phase would have run next.
	if err := context.Cause(ctx); err != nil {
		for _, t := range tasks {
			if !t.ok {
				return fmt.Errorf("stopped before phase %s: %w", t.path, err)
			}
		}
		return err
	}
	return nil
}

// runTask runs one task whose dependencies have finished and sets t.open.
func (r *Runner[D]) runTask(ctx context.Context, d D, t *task[D]) error {
	p := t.phase
	switch {
	case t.skipped:
		r.printf("[%s] skipped (--skip-phases)\n", t.path)
		return nil
	case !t.selected:
		t.open = true
		return nil
	case p.RunIf != nil && !p.RunIf(d):
		r.printf("[%s] not needed, skipped\n", t.path)
		return nil
	}
	t.open = true
	if p.Run == nil {
		return nil
	}
	start := r.now()
	if err := p.Run(ctx, d); err != nil {
		t.open = false
		return err
	}
	r.printf("[%s] done in %s\n", t.path, round(r.now().Sub(start)))
	return nil
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

// Locked returns a writer that lets concurrent phases write whole lines to w without interleaving them: give the
// same one to the Runner and to the phases' data.
func Locked(w io.Writer) io.Writer {
	if l, ok := w.(*lockedWriter); ok {
		return l
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
