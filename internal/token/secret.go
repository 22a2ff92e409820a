package token

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"kubeboot.dev/kubeboot/internal/config"
)

// Defaults kubeadm gives a token that leaves them out.
const (
	DefaultTTL   = 24 * time.Hour
	DefaultGroup = "system:bootstrappers:kubeadm:default-node-token"
)

// usageAuthentication is the usage a token needs before extra groups mean anything.
const usageAuthentication = "authentication"

// usageSigning is the usage of a token that signs cluster-info.
const usageSigning = "signing"

// DefaultUsages are the usages of a token that names none: signing (of cluster-info) and authentication.
func DefaultUsages() []string { return slices.Clone(bootstrapapi.KnownTokenUsages) }

// Info is a token read back from its Secret.
type Info struct {
	Token       Token
	Description string
	Expires     *time.Time // nil: the token never expires
	Usages      []string   // sorted
	Groups      []string
}

// TTL is the time left before the token expires; ok is false for a token that never expires.
func (i Info) TTL(now time.Time) (left time.Duration, ok bool) {
	if i.Expires == nil {
		return 0, false
	}
	return i.Expires.Sub(now), true
}

// Validate checks a configured token (bootstrapTokens[] in InitConfiguration) without defaulting it.
func Validate(bt config.BootstrapToken) error {
	t, err := Parse(bt.Token)
	if err != nil {
		return fmt.Errorf("bootstrap token: %w", err)
	}
	var errs []error
	if err := bootstraputil.ValidateUsages(bt.Usages); err != nil {
		errs = append(errs, fmt.Errorf("usages: %w", err))
	}
	if len(bt.Groups) > 0 && len(bt.Usages) > 0 && !slices.Contains(bt.Usages, usageAuthentication) {
		errs = append(errs, fmt.Errorf("groups: extra groups need the usage %q", usageAuthentication))
	}
	for _, g := range bt.Groups {
		if err := bootstraputil.ValidateBootstrapGroupName(g); err != nil {
			errs = append(errs, fmt.Errorf("groups: %w", err))
		}
	}
	if bt.TTL != nil && bt.TTL.Duration < 0 {
		errs = append(errs, fmt.Errorf("ttl: %s is negative; use 0 for a token that never expires", bt.TTL.Duration))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bootstrap token %q: %w", t.ID, err)
	}
	return nil
}

// Signing are the tokens of bts the controller-manager's bootstrapsigner signs cluster-info with at now: those whose
// usages include signing (as the default usages do) and that have not expired. Tokens that do not parse are left
// out (Validate reports them).
func Signing(bts []config.BootstrapToken, now time.Time) []Token {
	var out []Token
	for _, bt := range bts {
		t, err := Parse(bt.Token)
		if err != nil {
			continue
		}
		if len(bt.Usages) > 0 && !slices.Contains(bt.Usages, usageSigning) {
			continue
		}
		if bt.Expires != nil && !bt.Expires.After(now) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// Secret renders tok as kubeadm stores it: kube-system/bootstrap-token-<id>. Defaults as in kubeadm: usages
// signing and authentication, group system:bootstrappers:kubeadm:default-node-token (for authenticating
// tokens), TTL 24h; TTL 0 means no expiration. Expires, when set, wins over TTL.
func Secret(tok config.BootstrapToken, now time.Time) (*corev1.Secret, error) {
	if err := Validate(tok); err != nil {
		return nil, err
	}
	t, _ := Parse(tok.Token)
	usages := tok.Usages
	if len(usages) == 0 {
		usages = DefaultUsages()
	}
	groups := tok.Groups
	if len(groups) == 0 && slices.Contains(usages, usageAuthentication) {
		groups = []string{DefaultGroup}
	}

	data := map[string][]byte{
		bootstrapapi.BootstrapTokenIDKey:     []byte(t.ID),
		bootstrapapi.BootstrapTokenSecretKey: []byte(t.Secret),
	}
	if tok.Description != "" {
		data[bootstrapapi.BootstrapTokenDescriptionKey] = []byte(tok.Description)
	}
	switch {
	case tok.Expires != nil:
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(tok.Expires.UTC().Format(time.RFC3339))
	case tok.TTL == nil:
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(now.Add(DefaultTTL).UTC().Format(time.RFC3339))
	case tok.TTL.Duration > 0:
		data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(now.Add(tok.TTL.Duration).UTC().Format(time.RFC3339))
	}
	for _, u := range usages {
		data[bootstrapapi.BootstrapTokenUsagePrefix+u] = []byte("true")
	}
	if len(groups) > 0 {
		data[bootstrapapi.BootstrapTokenExtraGroupsKey] = []byte(strings.Join(groups, ","))
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: bootstraputil.BootstrapTokenSecretName(t.ID)},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data:       data,
	}, nil
}

// FromSecret reads a token back from its Secret. Errors name the Secret, never its secret value.
func FromSecret(s *corev1.Secret) (Info, error) {
	where := s.Namespace + "/" + s.Name
	if s.Type != bootstrapapi.SecretTypeBootstrapToken {
		return Info{}, fmt.Errorf("Secret %s: type is %q, not %q", where, s.Type, bootstrapapi.SecretTypeBootstrapToken)
	}
	id := string(s.Data[bootstrapapi.BootstrapTokenIDKey])
	if id == "" {
		return Info{}, fmt.Errorf("Secret %s: no %s", where, bootstrapapi.BootstrapTokenIDKey)
	}
	if !bootstraputil.IsValidBootstrapTokenID(id) {
		return Info{}, fmt.Errorf("Secret %s: %s is not of the form %s", where, bootstrapapi.BootstrapTokenIDKey, IDFormat)
	}
	if want := bootstraputil.BootstrapTokenSecretName(id); s.Name != want {
		return Info{}, fmt.Errorf("Secret %s: holds token ID %q, so it must be named %s", where, id, want)
	}
	secret := string(s.Data[bootstrapapi.BootstrapTokenSecretKey])
	if secret == "" {
		return Info{}, fmt.Errorf("Secret %s: no %s", where, bootstrapapi.BootstrapTokenSecretKey)
	}
	t, err := Parse(bootstraputil.TokenFromIDAndSecret(id, secret))
	if err != nil {
		return Info{}, fmt.Errorf("Secret %s: %s is not of the form [a-z0-9]{16}", where, bootstrapapi.BootstrapTokenSecretKey)
	}
	info := Info{Token: t, Description: string(s.Data[bootstrapapi.BootstrapTokenDescriptionKey])}
	if exp := string(s.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return Info{}, fmt.Errorf("Secret %s: %s %q is not an RFC 3339 time", where, bootstrapapi.BootstrapTokenExpirationKey, exp)
		}
		info.Expires = &at
	}
	for k, v := range s.Data {
		if u, ok := strings.CutPrefix(k, bootstrapapi.BootstrapTokenUsagePrefix); ok && string(v) == "true" {
			info.Usages = append(info.Usages, u)
		}
	}
	sort.Strings(info.Usages)
	if g := string(s.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]); g != "" {
		info.Groups = strings.Split(g, ",")
	}
	return info, nil
}
