package staticpod

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// ErrNoContainer is wrapped when a static Pod has no container to read a command line from.
var ErrNoContainer = errors.New("the Pod has no container")

// Manifest is a static Pod manifest read from the node.
type Manifest struct {
	// File is its node path.
	File string
	Pod  *corev1.Pod
}

// Read reads the manifest of component name (Path(name)) from fsys, YAML or JSON. The error wraps fs.ErrNotExist
// when there is no such file. Like the kubelet, it ignores fields a Pod does not have.
func Read(fsys nodefs.FS, name string) (*Manifest, error) {
	return readFile(fsys, Path(name), "read the static Pod of "+name)
}

// ReadFile reads the static Pod manifest at the node path file, wherever it is (a manifest moved out of Dir to
// stop its Pod, for one).
func ReadFile(fsys nodefs.FS, file string) (*Manifest, error) {
	return readFile(fsys, file, "read the static Pod manifest "+file)
}

func readFile(fsys nodefs.FS, file, what string) (*Manifest, error) {
	b, err := fsys.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &Manifest{File: file, Pod: &pod}, nil
}

// Command is the command line of the manifest's component (see the function Command); the error names the file.
func (m *Manifest) Command() ([]string, error) {
	cmd, err := Command(m.Pod)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.File, err)
	}
	return cmd, nil
}

// Flags are the flags of the manifest's component (see ParseFlags); the error names the file.
func (m *Manifest) Flags() (Flags, error) {
	cmd, err := m.Command()
	if err != nil {
		return nil, err
	}
	return ParseFlags(cmd), nil
}

// Command returns the command line the component of pod runs: its first container's command, then its args.
// kubeadm's static Pods have one container, the component's, and kubeadm reads the first one too.
func Command(pod *corev1.Pod) ([]string, error) {
	if len(pod.Spec.Containers) == 0 {
		return nil, ErrNoContainer
	}
	c := pod.Spec.Containers[0]
	return slices.Concat(c.Command, c.Args), nil
}

// Flag is one --name=value argument.
type Flag struct {
	Name, Value string
}

// Flags are the --name=value arguments of a command line, in order; repeated flags stay repeated.
type Flags []Flag

// ParseFlags reads a component's command line as kubeadm does: only an argument --name=value is a flag (the
// value, possibly empty, is everything after the first '='). The binary, positional arguments, single-dash
// arguments and a --name without '=' (a bool's true, or a flag whose value is the next argument: which one
// depends on the flag's type) are skipped. kubeadm and kubeboot write every flag as --name=value.
func ParseFlags(command []string) Flags {
	var out Flags
	for _, arg := range command {
		kv, ok := strings.CutPrefix(arg, "--")
		if !ok {
			continue
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		out = append(out, Flag{Name: name, Value: value})
	}
	return out
}

// Lookup returns the value of the last flag called name, the one the component uses, and whether there is one.
func (f Flags) Lookup(name string) (string, bool) {
	for _, fl := range slices.Backward(f) {
		if fl.Name == name {
			return fl.Value, true
		}
	}
	return "", false
}

// Get returns the value of the last flag called name, "" when there is none.
func (f Flags) Get(name string) string {
	v, _ := f.Lookup(name)
	return v
}
