package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// goTool runs the go command with the environment every lab build shares.
type goTool struct {
	bin string
	// env describes the toolchain (GOVERSION, GOOS, GOARCH, CGO_ENABLED, CC): it goes into
	// every stamp, since a new Go or a newly installed C compiler changes the binaries.
	env string
}

func newGoTool(ctx context.Context) (*goTool, error) {
	bin, err := exec.LookPath("go")
	if err != nil {
		// CI shells do not always carry /usr/local/go/bin on PATH.
		if _, statErr := os.Stat("/usr/local/go/bin/go"); statErr != nil {
			return nil, fmt.Errorf("find the go command: %w (put Go on PATH)", err)
		}
		bin = "/usr/local/go/bin/go"
	}
	g := &goTool{bin: bin}
	out, err := g.run(ctx, "", nil, "env", "GOVERSION", "GOOS", "GOARCH", "CGO_ENABLED", "CC")
	if err != nil {
		return nil, err
	}
	g.env = strings.Join(strings.Fields(string(out)), " ")
	return g, nil
}

// run runs go in dir and returns its stdout. The go command and the compilers it starts form
// one process group, so cancelling ctx stops the whole build rather than orphaning compilers.
func (g *goTool) run(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, g.bin, args...)
	cmd.Dir = dir
	// GOWORK=off: a go.work somewhere above must not pull the component modules together. The caller's
	// CGO_ENABLED is left out: the Makefile turns cgo off for kubeboot's own builds, and the components are built
	// the same whoever runs the lab (static where goBuild.static says so), their stamps unchanged.
	inherited := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CGO_ENABLED=") })
	cmd.Env = append(append(inherited, "GOWORK=off"), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		detail := stderr.String()
		if strings.TrimSpace(detail) == "" {
			detail = stdout.String() // go mod download -json reports failures on stdout
		}
		return nil, fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, lastLines(detail, 30))
	}
	return stdout.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// componentGCFlags compiles the components without DWARF. Every component links with -s -w, so no binary ever
// carried it: only the compiler's time did (a cold etcd build: 90 s with it, 77 s without, on two cores).
const componentGCFlags = "all=-dwarf=false"

// goBuild is one build group: a component module and the binaries it produces in one go build.
type goBuild struct {
	name    string   // stamp and log name
	dir     string   // module directory
	pkgs    []string // package patterns: ".", "./cmd/..." or upstream main packages the module lists as tools
	outputs []string // binary names written into the bin dir
	ldflags string
	static  bool   // CGO_ENABLED=0
	tags    string // -tags, comma-separated
}

func (b goBuild) stamp(g *goTool) (string, error) {
	s := newStamper("go-build")
	s.addString("name", b.name)
	s.addString("pkg", strings.Join(b.pkgs, " "))
	s.addString("tags", b.tags)
	s.addString("outputs", strings.Join(b.outputs, ","))
	s.addString("ldflags", b.ldflags)
	s.addString("gcflags", componentGCFlags)
	s.addString("static", fmt.Sprint(b.static))
	s.addString("go", g.env)
	for _, f := range []string{"go.mod", "go.sum"} {
		p := filepath.Join(b.dir, f)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			// pause has no dependencies and therefore no go.sum.
			s.addString(f, "absent")
			continue
		}
		if err := s.addFile(f, p); err != nil {
			return "", err
		}
	}
	if err := s.addTree(b.dir, ".go"); err != nil {
		return "", fmt.Errorf("stamp %s: %w", b.name, err)
	}
	return s.sum(), nil
}

// ensure builds b into binDir unless its stamp shows the outputs are current.
func (b goBuild) ensure(ctx context.Context, g *goTool, binDir, stampDir string, log *progress) error {
	start := time.Now()
	sum, err := b.stamp(g)
	if err != nil {
		return err
	}
	stampFile := filepath.Join(stampDir, "build-"+b.name)
	var outputs []string
	for _, o := range b.outputs {
		outputs = append(outputs, filepath.Join(binDir, o))
	}
	ok, err := upToDate(stampFile, sum, outputs)
	if err != nil {
		return fmt.Errorf("build %s: %w", b.name, err)
	}
	if ok {
		log.step("build "+b.name, start, "up to date")
		return nil
	}
	if err := clearStamp(stampFile); err != nil {
		return err
	}
	log.note("build %s: building %s in %s", b.name, strings.Join(b.outputs, ", "), b.dir)
	out := filepath.Join(binDir, b.outputs[0])
	if len(b.outputs) > 1 {
		out = binDir + string(filepath.Separator) // go build names each binary after its package
	}
	var env []string
	if b.static {
		env = append(env, "CGO_ENABLED=0")
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-gcflags", componentGCFlags, "-ldflags", b.ldflags}
	if b.tags != "" {
		args = append(args, "-tags", b.tags)
	}
	args = append(append(args, "-o", out), b.pkgs...)
	if _, err := g.run(ctx, b.dir, env, args...); err != nil {
		return fmt.Errorf("build %s: %w", b.name, err)
	}
	for _, o := range outputs {
		if _, err := os.Stat(o); err != nil {
			return fmt.Errorf("build %s: go build did not produce %s: %w", b.name, o, err)
		}
	}
	if err := writeStamp(stampFile, sum); err != nil {
		return fmt.Errorf("build %s: %w", b.name, err)
	}
	log.step("build "+b.name, start, "built")
	return nil
}

// goFiles reports whether dir holds any .go file, i.e. whether there is a package to build.
func goFiles(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(m) > 0
}

// mainDirs lists the cmd/<name> directories of a component module: one binary each.
func mainDirs(moduleDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(moduleDir, "cmd"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filepath.Join(moduleDir, "cmd"), err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && goFiles(filepath.Join(moduleDir, "cmd", e.Name())) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no main packages under %s", filepath.Join(moduleDir, "cmd"))
	}
	return names, nil
}
