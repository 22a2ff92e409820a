// Package patches applies the directory of InitConfiguration/JoinConfiguration patches.directory to what kubeboot
// renders before it is written: the control plane's static Pods, the kubelet's config.yaml, the CoreDNS
// Deployment and the kube-proxy DaemonSet. File names, order, patch types, warnings and messages are kubeadm v1.37's.
//
// A file is named target[suffix][+patchtype].extension: target is one of Targets(), suffix anything free of '.'
// and '+', patchtype strategic (the default), merge or json, extension json or yaml. Files apply in the order a
// lexical walk of the directory finds them (subdirectories included, as kubeadm's filepath.Walk does); a file may
// hold several YAML or JSON documents, each a patch applied in turn.
package patches

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Targets a patch file may name, as kubeadm spells them: the static Pods' names, the kubelet's config.yaml, the
// CoreDNS Deployment and (kubeadm 1.37) the kube-proxy DaemonSet (package addons applies those two).
const (
	Etcd                  = staticpod.EtcdName
	KubeAPIServer         = staticpod.APIServerName
	KubeControllerManager = staticpod.ControllerManagerName
	KubeScheduler         = staticpod.SchedulerName
	KubeletConfiguration  = "kubeletconfiguration"
	CoreDNSDeployment     = "corednsdeployment"
	KubeProxyDaemonSet    = "kubeproxydaemonset"
)

// Targets returns every target, in kubeadm's order (the order its warnings list them in).
func Targets() []string {
	return []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, KubeletConfiguration, CoreDNSDeployment, KubeProxyDaemonSet}
}

// typeNames maps the names used after '+' in a file name to patch types, in kubeadm's order.
var typeNames = []struct {
	name string
	typ  types.PatchType
}{
	{"json", types.JSONPatchType},
	{"merge", types.MergePatchType},
	{"strategic", types.StrategicMergePatchType},
}

func typeName(t types.PatchType) string {
	for _, n := range typeNames {
		if n.typ == t {
			return n.name
		}
	}
	return string(t)
}

// Ignore reasons, worded as kubeadm prints them.
var (
	reasonExtension = "the file extension must be one of [json yaml]"
	reasonTarget    = fmt.Sprintf("unknown target, must be one of %v", Targets())
	reasonEmpty     = "empty file"
)

// MaxPatchedSize bounds a patched document (as JSON). kubeboot's largest is a static Pod of a few KiB.
const MaxPatchedSize = 8 << 20

// Patch is one document of a patch file.
type Patch struct {
	// File is the node path of the file the patch comes from.
	File string
	// Doc is the document's position in File, from 1, empty documents not counted.
	Doc    int
	Target string
	Type   types.PatchType
	// Data is the document as JSON.
	Data []byte
}

// Line is what kubeadm prints when it has applied p.
func (p Patch) Line() string {
	return fmt.Sprintf("[patches] Applied patch of type %q to target %q", p.Type, p.Target)
}

// Ignored is a file of the directory that is not a patch; kubeadm warns about it and goes on.
type Ignored struct {
	// File is the file's node path.
	File   string
	Reason string
}

// Set is the content of a patches directory, read once.
type Set struct {
	// Dir is the directory's node path.
	Dir string
	// Files are the node paths of the patch files, in the order their patches apply.
	Files   []string
	Ignored []Ignored
	patches []Patch
}

// NewSet returns a Set of in-memory patches, applied in the order given.
func NewSet(patches ...Patch) *Set {
	return &Set{patches: patches}
}

// Load reads the patches directory dir (a node path) from fsys. A name with an unknown target or extension, or an
// empty file, is ignored (see Ignored); an unknown patch type after '+', an unreadable file or a document that is
// neither YAML nor JSON is an error naming the file. As in kubeadm, dir itself must be a directory, not a symbolic
// link to one.
func Load(fsys nodefs.FS, dir string) (*Set, error) {
	root := fsys.Path(dir)
	info, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("read patches directory %s: %w", dir, err)
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("read patches directory %s: it is a symbolic link; set patches.directory to the directory it points to", dir)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("read patches directory %s: not a directory", dir)
	}
	s := &Set{Dir: dir}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read patches directory %s: %w", dir, err)
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		file := path.Join(dir, filepath.ToSlash(rel))
		target, typ, reason, err := parseName(d.Name())
		if err != nil {
			return fmt.Errorf("patch file %s: %w", file, err)
		}
		if reason != "" {
			s.Ignored = append(s.Ignored, Ignored{File: file, Reason: reason})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read patch file %s: %w", file, err)
		}
		if len(data) == 0 {
			s.Ignored = append(s.Ignored, Ignored{File: file, Reason: reasonEmpty})
			return nil
		}
		docs, err := splitDocuments(data)
		if err != nil {
			return fmt.Errorf("patch file %s: %w", file, err)
		}
		s.Files = append(s.Files, file)
		for i, doc := range docs {
			s.patches = append(s.patches, Patch{File: file, Doc: i + 1, Target: target, Type: typ, Data: doc})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// LoadConfigured loads the directory p names; without one (p nil or its directory empty) it returns a nil Set,
// which patches nothing.
func LoadConfigured(fsys nodefs.FS, p *config.Patches) (*Set, error) {
	if p == nil || p.Directory == "" {
		return nil, nil
	}
	return Load(fsys, p.Directory)
}

// parseName splits a file name into its target and patch type. A name kubeadm skips with a warning gets a
// reason; a '+' not followed by a known patch type is an error, as in kubeadm, since the file was meant as a patch.
func parseName(name string) (target string, typ types.PatchType, reason string, err error) {
	// kubeadm's rule is `.+\.(json|yaml)$`: at least one character (not a newline) before the extension.
	base, ok := strings.CutSuffix(name, ".json")
	if !ok {
		base, ok = strings.CutSuffix(name, ".yaml")
	}
	if !ok || base == "" || strings.HasSuffix(base, "\n") {
		return "", "", reasonExtension, nil
	}
	for _, t := range Targets() {
		if strings.HasPrefix(name, t) {
			target = t
			break
		}
	}
	if target == "" {
		return "", "", reasonTarget, nil
	}
	// The suffix runs up to the first '.', '+' or newline; only a '+' right there introduces a patch type, so in
	// "etcd.x+merge.yaml" the "+merge" is part of nothing and the type is strategic, as in kubeadm.
	rest := name[len(target):]
	if i := strings.IndexAny(rest, ".+\n"); i >= 0 {
		rest = rest[i:]
	} else {
		rest = ""
	}
	after, plus := strings.CutPrefix(rest, "+")
	if !plus {
		return target, types.StrategicMergePatchType, "", nil
	}
	for _, n := range typeNames {
		if strings.HasPrefix(after, n.name) {
			return target, n.typ, "", nil
		}
	}
	return "", "", "", errors.New("unknown or missing patch type after '+', must be one of [json merge strategic]")
}

// splitDocuments returns the non-empty documents of a YAML or JSON stream, each as JSON.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split into documents: %w", err)
		}
		doc = bytes.TrimSpace(doc)
		if len(doc) == 0 {
			continue
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d is neither YAML nor JSON: %w", len(docs)+1, err)
		}
		docs = append(docs, j)
	}
}

// For returns the patches of target, in the order they apply. A nil Set has none.
func (s *Set) For(target string) []Patch {
	if s == nil {
		return nil
	}
	var out []Patch
	for _, p := range s.patches {
		if p.Target == target {
			out = append(out, p)
		}
	}
	return out
}

// Apply applies the patches of target to doc (YAML or JSON) and returns the result as YAML, and whether any
// patch applied. Without patches for target it returns doc itself. schema is the Go type strategic merge
// patches are resolved against (corev1.Pod, kubeletv1beta1.KubeletConfiguration, appsv1.Deployment); an error
// names the patch file and document that failed.
func (s *Set) Apply(target string, doc []byte, schema any) ([]byte, bool, error) {
	if !slices.Contains(Targets(), target) {
		return nil, false, fmt.Errorf("unknown patch target %q, must be one of %v", target, Targets())
	}
	ps := s.For(target)
	if len(ps) == 0 {
		return doc, false, nil
	}
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, false, fmt.Errorf("patch %s: read the document to patch: %w", target, err)
	}
	for _, p := range ps {
		j, err = p.apply(j, schema)
		if err != nil {
			return nil, false, fmt.Errorf("apply patch file %s (document %d, type %s) to %s: %w; fix or remove the patch",
				p.File, p.Doc, typeName(p.Type), target, err)
		}
	}
	out, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, false, fmt.Errorf("patch %s: serialize the result: %w", target, err)
	}
	return out, true, nil
}

// Summary returns the lines kubeadm prints when it reads the directory.
func (s *Set) Summary() []string {
	if s == nil {
		return nil
	}
	lines := []string{fmt.Sprintf("[patches] Reading patches from path %q", s.Dir)}
	var found, ignored []string
	for _, ig := range s.Ignored {
		name := path.Base(ig.File)
		ignored = append(ignored, name)
		if ig.Reason == reasonEmpty {
			lines = append(lines, fmt.Sprintf("[patches] Ignoring empty file: %q", name))
		} else {
			lines = append(lines, fmt.Sprintf("[patches] Ignoring file %q: %s", name, ig.Reason))
		}
	}
	for _, f := range s.Files {
		found = append(found, path.Base(f))
	}
	if len(found) > 0 {
		lines = append(lines, fmt.Sprintf("[patches] Found the following patch files: %v", found))
	}
	if len(ignored) > 0 {
		lines = append(lines, fmt.Sprintf("[patches] Ignored the following files: %v", ignored))
	}
	return lines
}

// apply applies p to the JSON document doc.
func (p Patch) apply(doc []byte, schema any) ([]byte, error) {
	switch p.Type {
	case types.JSONPatchType:
		ops, err := jsonpatch.DecodePatch(p.Data)
		if err != nil {
			return nil, err
		}
		// One operation at a time, so that the document's size is checked after each: every copy may double it,
		// and a few dozen copies in a small file would exhaust memory (json-patch sets no limit by default).
		for i, op := range ops {
			if doc, err = (jsonpatch.Patch{op}).Apply(doc); err != nil {
				return nil, err
			}
			if len(doc) > MaxPatchedSize {
				return nil, fmt.Errorf("operation %d makes the document larger than %d MiB", i+1, MaxPatchedSize>>20)
			}
		}
		return doc, nil
	case types.MergePatchType:
		return jsonpatch.MergePatch(doc, p.Data)
	case types.StrategicMergePatchType:
		return strategicpatch.StrategicMergePatch(doc, p.Data, schema)
	}
	return nil, fmt.Errorf("unknown patch type %q", p.Type)
}
