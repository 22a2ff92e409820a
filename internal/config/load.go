package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Documents is every document of one configuration file, decoded strictly and converted to kubeadm v1beta4.
// A kind that is absent stays nil. Nothing is defaulted yet.
type Documents struct {
	Init    *InitConfiguration
	Cluster *ClusterConfiguration
	Join    *JoinConfiguration
	Reset   *ResetConfiguration
	Upgrade *UpgradeConfiguration
	Kubelet *kubeletv1beta1.KubeletConfiguration
	Proxy   *kubeproxyv1alpha1.KubeProxyConfiguration
	// Kubeboot is kubeboot's own document (kubeboot.dev/v1alpha1): settings kubeadm has no field for.
	Kubeboot *KubebootConfiguration

	// Warnings are problems that do not stop kubeboot, such as a deprecated API version.
	Warnings []string

	// controlPlaneTimeout is v1beta3's ClusterConfiguration.apiServer.timeoutForControlPlane. v1beta4 moved it to
	// InitConfiguration.timeouts.controlPlaneComponentHealthCheck, a different document, so it is carried here.
	controlPlaneTimeout *metav1.Duration
}

// supportedDocuments is printed when a document's apiVersion or kind is not one kubeboot reads.
const supportedDocuments = "supported: apiVersion " + V1beta4 + " or " + V1beta3 + " with kind " +
	KindInit + ", " + KindCluster + " or " + KindJoin + "; " + V1beta4 + " with kind " + KindReset + " or " +
	KindUpgrade + "; " + KubeletGroupVer + " " + KindKubelet + "; " + ProxyGroupVer + " " + KindProxy + "; " + KubebootGroupVer + " " + KindKubeboot

// oldAPIVersions maps kubeadm API versions kubeboot no longer reads to the last kubeadm release that did.
var oldAPIVersions = map[string]string{
	GroupName + "/v1alpha1": "v1.11",
	GroupName + "/v1alpha2": "v1.12",
	GroupName + "/v1alpha3": "v1.14",
	GroupName + "/v1beta1":  "v1.15",
	GroupName + "/v1beta2":  "v1.22",
}

// LoadInit reads the configuration file of `init`: an InitConfiguration and/or a ClusterConfiguration, plus optional
// KubeletConfiguration, KubeProxyConfiguration and KubebootConfiguration. Other kubeadm kinds in the file are
// decoded (so typos are still reported) and otherwise ignored, as kubeadm does. The result is not defaulted.
func LoadInit(data []byte) (*Init, error) {
	docs, err := Load(data)
	if err != nil {
		return nil, err
	}
	return docs.ForInit()
}

// LoadJoin reads the configuration file of `join`, which must hold a JoinConfiguration, and may hold a
// KubebootConfiguration. The result is not defaulted.
func LoadJoin(data []byte) (*Join, error) {
	docs, err := Load(data)
	if err != nil {
		return nil, err
	}
	return docs.ForJoin()
}

// LoadReset reads the configuration file of `reset`, which must hold a ResetConfiguration. Not defaulted.
func LoadReset(data []byte) (*ResetConfiguration, error) {
	docs, err := Load(data)
	if err != nil {
		return nil, err
	}
	return docs.ForReset()
}

// ForInit assembles what `init` needs. Either an InitConfiguration or a ClusterConfiguration must be present.
func (d *Documents) ForInit() (*Init, error) {
	if d.Init == nil && d.Cluster == nil {
		return nil, fmt.Errorf("no %s or %s found in the configuration file", KindInit, KindCluster)
	}
	cfg := &Init{Kubelet: d.Kubelet, Proxy: d.Proxy, Kubeboot: d.Kubeboot.clone()}
	if d.Init != nil {
		cfg.Init = *d.Init
	}
	if d.Cluster != nil {
		cfg.Cluster = *d.Cluster
	}
	if t := d.controlPlaneTimeout; t != nil && t.Duration != 0 {
		// kubeadm lets the v1beta3 field win over the InitConfiguration's value.
		if cfg.Init.Timeouts == nil {
			cfg.Init.Timeouts = &Timeouts{}
		}
		cfg.Init.Timeouts.ControlPlaneComponentHealthCheck = &metav1.Duration{Duration: t.Duration}
	}
	return cfg, nil
}

// ForJoin assembles what `join` needs: the JoinConfiguration and the KubebootConfiguration, if any.
func (d *Documents) ForJoin() (*Join, error) {
	if d.Join == nil {
		return nil, fmt.Errorf("no %s found in the configuration file", KindJoin)
	}
	return &Join{Join: *d.Join, Kubeboot: d.Kubeboot.clone()}, nil
}

// ForReset returns the ResetConfiguration.
func (d *Documents) ForReset() (*ResetConfiguration, error) {
	if d.Reset == nil {
		return nil, fmt.Errorf("no %s found in the configuration file", KindReset)
	}
	r := *d.Reset
	return &r, nil
}

// Load splits a multi-document YAML file and decodes every document strictly: unknown fields, duplicate fields,
// values of the wrong type and unknown apiVersion/kind are errors naming the document kind, the field path, the
// value where there is one and the line. All problems of all documents are reported together.
func Load(data []byte) (*Documents, error) {
	docs := &Documents{}
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	var errs []error
	seen := map[string]int{}
	for n := 1; ; n++ {
		var root yamlv3.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The YAML parser cannot resume after a syntax error.
			errs = append(errs, fmt.Errorf("document %d: invalid YAML: %w", n, err))
			break
		}
		if isEmptyDocument(&root) {
			continue
		}
		if err := docs.add(n, &root, seen); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return docs, nil
}

func isEmptyDocument(root *yamlv3.Node) bool {
	if root.Kind != yamlv3.DocumentNode || len(root.Content) == 0 {
		return true
	}
	c := root.Content[0]
	return c.Kind == yamlv3.ScalarNode && c.Tag == "!!null"
}

// add decodes one document into the field of d its apiVersion and kind select.
func (d *Documents) add(n int, root *yamlv3.Node, seen map[string]int) error {
	body := root.Content[0]
	where := fmt.Sprintf("document %d (line %d)", n, body.Line)
	if body.Kind != yamlv3.MappingNode {
		return fmt.Errorf("%s: expected a mapping with apiVersion and kind", where)
	}
	apiVersion := scalarValue(body, "apiVersion")
	kind := scalarValue(body, "kind")
	if apiVersion == "" || kind == "" {
		return fmt.Errorf("%s: apiVersion and kind are required (%s)", where, supportedDocuments)
	}
	if last, ok := oldAPIVersions[apiVersion]; ok {
		return fmt.Errorf("%s: %s %s uses an API version kubeboot no longer reads; convert it with kubeadm %s "+
			"(`kubeadm config migrate`) to %s", where, apiVersion, kind, last, V1beta4)
	}
	if prev, ok := seen[kind]; ok {
		return fmt.Errorf("%s: %s appears a second time (first in document %d); each kind may appear once",
			where, kind, prev)
	}

	dups := duplicateFields(kind, body)
	if len(dups) > 0 {
		return errors.Join(dups...)
	}
	raw, err := yamlv3.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", where, kind, err)
	}
	dc := decoder{kind: kind, body: body, json: j}

	switch {
	case apiVersion == V1beta4 && kind == KindInit:
		var v InitConfiguration
		err = dc.decode(&v)
		d.Init = &v
	case apiVersion == V1beta4 && kind == KindCluster:
		var v ClusterConfiguration
		err = dc.decode(&v)
		d.Cluster = &v
	case apiVersion == V1beta4 && kind == KindJoin:
		var v JoinConfiguration
		err = dc.decode(&v)
		d.Join = &v
	case apiVersion == V1beta4 && kind == KindReset:
		var v ResetConfiguration
		err = dc.decode(&v)
		d.Reset = &v
	case apiVersion == V1beta4 && kind == KindUpgrade:
		var v UpgradeConfiguration
		err = dc.decode(&v)
		d.Upgrade = &v
	case apiVersion == V1beta3 && kind == KindInit:
		var v v1beta3InitConfiguration
		if err = dc.decode(&v); err == nil {
			d.Init = v.convert()
		}
	case apiVersion == V1beta3 && kind == KindCluster:
		var v v1beta3ClusterConfiguration
		if err = dc.decode(&v); err == nil {
			d.Cluster = v.convert()
			d.controlPlaneTimeout = v.APIServer.TimeoutForControlPlane
		}
	case apiVersion == V1beta3 && kind == KindJoin:
		var v v1beta3JoinConfiguration
		if err = dc.decode(&v); err == nil {
			d.Join = v.convert()
		}
	case apiVersion == KubeletGroupVer && kind == KindKubelet:
		var v kubeletv1beta1.KubeletConfiguration
		err = dc.decode(&v)
		d.Kubelet = &v
	case apiVersion == ProxyGroupVer && kind == KindProxy:
		var v kubeproxyv1alpha1.KubeProxyConfiguration
		err = dc.decode(&v)
		d.Proxy = &v
	case apiVersion == KubebootGroupVer && kind == KindKubeboot:
		var v KubebootConfiguration
		err = dc.decode(&v)
		d.Kubeboot = &v
	default:
		return fmt.Errorf("%s: unsupported apiVersion %q with kind %q (%s)", where, apiVersion, kind, supportedDocuments)
	}
	if err != nil {
		return err
	}
	seen[kind] = n
	if apiVersion == V1beta3 {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: %s is deprecated and kubeadm v1.37 no longer reads it; "+
			"convert the file to %s with 'kubeboot config migrate --old-config FILE --new-config NEW'", kind, V1beta3, V1beta4))
	}
	return nil
}

// scalarValue returns the value of key in a mapping node when it is a scalar.
func scalarValue(m *yamlv3.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yamlv3.ScalarNode {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// duplicateFields reports keys repeated in the same mapping. YAML-to-JSON conversion keeps only the last value, so
// this has to be found on the YAML tree.
func duplicateFields(kind string, n *yamlv3.Node) []error {
	var errs []error
	var walk func(n *yamlv3.Node, path string)
	walk = func(n *yamlv3.Node, path string) {
		switch n.Kind {
		case yamlv3.MappingNode:
			keys := map[string]bool{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := joinPath(path, k.Value)
				if keys[k.Value] {
					errs = append(errs, fmt.Errorf("%s: duplicate field %q (line %d)", kind, p, k.Line))
				}
				keys[k.Value] = true
				walk(n.Content[i+1], p)
			}
		case yamlv3.SequenceNode:
			for i, c := range n.Content {
				walk(c, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	walk(n, "")
	return errs
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decoder decodes one document's JSON form into a Go value and explains failures with the YAML tree.
type decoder struct {
	kind string
	body *yamlv3.Node
	json []byte
}

func (dc decoder) decode(into any) error {
	strict, err := sigsjson.UnmarshalStrict(dc.json, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return dc.typeError(err)
	}
	errs := make([]error, 0, len(strict))
	for _, e := range strict {
		msg := e.Error()
		if p, ok := quotedField(msg); ok {
			if node := lookupKey(dc.body, p); node != nil {
				msg += fmt.Sprintf(" (line %d)", node.Line)
			}
		}
		errs = append(errs, fmt.Errorf("%s: %s", dc.kind, msg))
	}
	return errors.Join(errs...)
}

// quotedField extracts the path from sigs.k8s.io/json's `unknown field "a.b[0].c"` messages.
func quotedField(msg string) (string, bool) {
	i := strings.IndexByte(msg, '"')
	if i < 0 {
		return "", false
	}
	p, err := strconv.Unquote(msg[i:])
	return p, err == nil
}

// typeError rewrites a JSON type mismatch ("cannot unmarshal string into Go struct field X.a.b of type int32")
// into the document's terms: kind, field path, offending value and line.
func (dc decoder) typeError(err error) error {
	// sigs.k8s.io/json returns its own copy of encoding/json's *UnmarshalTypeError, an internal type: read its
	// exported fields by name rather than parse the message.
	v := reflect.ValueOf(err)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("%s: %w", dc.kind, err)
	}
	s := v.Elem()
	field, jsonKind, goType := s.FieldByName("Field"), s.FieldByName("Value"), s.FieldByName("Type")
	if !field.IsValid() || !jsonKind.IsValid() || !goType.IsValid() || field.Kind() != reflect.String {
		return fmt.Errorf("%s: %w", dc.kind, err)
	}
	path := field.String()
	want := fmt.Sprint(goType.Interface())
	got := strings.Fields(jsonKind.String())
	if path == "" {
		return fmt.Errorf("%s: the document must be a mapping, not %s", dc.kind, strings.Join(got, " "))
	}
	// No key matched when the value came in through a YAML merge key ("<<"): the YAML tree does not have it.
	if node, keys := findValue(dc.body, strings.Split(path, ".")); node != nil && len(keys) > 0 {
		value := describeNode(node)
		if secretFields[keys[len(keys)-1]] && node.Kind == yamlv3.ScalarNode {
			value = "this value"
		}
		return fmt.Errorf("%s: field %q: cannot use %s as %s (line %d)", dc.kind, strings.Join(keys, "."),
			value, want, node.Line)
	}
	return fmt.Errorf("%s: field %q: cannot use %s as %s", dc.kind, path, strings.Join(got, " "), want)
}

// secretFields hold tokens and keys: errors never repeat their values.
var secretFields = map[string]bool{"token": true, "tlsBootstrapToken": true, "certificateKey": true}

func describeNode(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.ScalarNode:
		return strconv.Quote(n.Value)
	case yamlv3.SequenceNode:
		return "a list"
	case yamlv3.MappingNode:
		return "a mapping"
	}
	return "this value"
}

// findValue walks mapping keys and returns the value node and the keys it matched. At a list it tries every
// element, because encoding/json's type errors carry no index; a path element that matches no key is the Go name
// of an embedded struct (encoding/json puts it in the path) and is skipped.
func findValue(n *yamlv3.Node, keys []string) (*yamlv3.Node, []string) {
	if n.Kind == yamlv3.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if len(keys) == 0 {
		return n, nil
	}
	switch n.Kind {
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == keys[0] {
				if v, rest := findValue(n.Content[i+1], keys[1:]); v != nil {
					return v, append([]string{keys[0]}, rest...)
				}
				return nil, nil
			}
		}
		return findValue(n, keys[1:])
	case yamlv3.SequenceNode:
		for _, c := range n.Content {
			if v, rest := findValue(c, keys); v != nil {
				return v, rest
			}
		}
	}
	return nil, nil
}

// lookupKey finds the key node of a path like "a.b[2].c".
func lookupKey(n *yamlv3.Node, path string) *yamlv3.Node {
	var key *yamlv3.Node
	for _, part := range strings.Split(path, ".") {
		name, idx, _ := strings.Cut(part, "[")
		if n.Kind != yamlv3.MappingNode {
			return nil
		}
		var next *yamlv3.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				key, next = n.Content[i], n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
		for idx != "" {
			num, rest, _ := strings.Cut(idx, "]")
			i, err := strconv.Atoi(num)
			if err != nil || n.Kind != yamlv3.SequenceNode || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
			key = n
			idx = strings.TrimPrefix(rest, "[")
		}
	}
	return key
}
