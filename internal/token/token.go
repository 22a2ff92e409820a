// Package token handles bootstrap tokens the way kubeadm stores them: kube-system/bootstrap-token-<id> Secrets
// that the API server's bootstrap authenticator and the controller-manager's bootstrapsigner read.
//
// The secret half of a token is a credential: nothing here logs it or puts it in an error message, and
// Token's String method redacts it. Only Value and the `token list` output show it, as kubeadm does.
package token

import (
	"errors"
	"fmt"
	"strings"

	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
)

// Format is the shape of a bootstrap token, as users are told it.
const Format = "[a-z0-9]{6}.[a-z0-9]{16}"

// IDFormat is the shape of a bootstrap token ID.
const IDFormat = "[a-z0-9]{6}"

// ErrMalformed is wrapped by every error about a token or token ID that has the wrong shape.
var ErrMalformed = errors.New("malformed bootstrap token")

// Token is a parsed bootstrap token.
type Token struct {
	ID     string // public: it names the Secret and appears in logs
	Secret string // credential: never logged
}

// Value is the full token "<id>.<secret>", for the places a user asked to see it.
func (t Token) Value() string { return bootstraputil.TokenFromIDAndSecret(t.ID, t.Secret) }

// String redacts the secret so that a token printed by mistake leaks nothing.
func (t Token) String() string { return t.ID + ".<redacted>" }

// GoString redacts the secret in %#v output too.
func (t Token) GoString() string { return fmt.Sprintf("token.Token{ID:%q, Secret:<redacted>}", t.ID) }

// Parse checks that s is a bootstrap token ("[a-z0-9]{6}.[a-z0-9]{16}") and splits it. The error says which
// part is wrong without repeating any of s, which may hold a real secret.
func Parse(s string) (Token, error) {
	// IsValidBootstrapToken compares the secret in constant time.
	if bootstraputil.IsValidBootstrapToken(s) {
		id, secret, _ := strings.Cut(s, ".")
		return Token{ID: id, Secret: secret}, nil
	}
	return Token{}, malformed(s)
}

// ParseID accepts a token ID or a whole token and returns the ID, as `token delete` does.
func ParseID(idOrToken string) (string, error) {
	if bootstraputil.IsValidBootstrapTokenID(idOrToken) {
		return idOrToken, nil
	}
	if t, err := Parse(idOrToken); err == nil {
		return t.ID, nil
	}
	return "", fmt.Errorf("%w: want a token ID of the form %s or a token of the form %s (got %d characters)",
		ErrMalformed, IDFormat, Format, len(idOrToken))
}

// Generate returns a new random token (crypto/rand).
func Generate() (Token, error) {
	s, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, fmt.Errorf("generating a bootstrap token: %w", err)
	}
	return Parse(s)
}

func malformed(s string) error {
	var reason string
	id, secret, found := strings.Cut(s, ".")
	switch {
	case s == "":
		reason = "it is empty"
	case !found:
		reason = "there is no dot between the ID and the secret"
	case strings.Contains(secret, "."):
		reason = "there is more than one dot"
	case !bootstraputil.IsValidBootstrapTokenID(id):
		reason = fmt.Sprintf("the ID before the dot must be %d lowercase letters or digits", bootstrapapi.BootstrapTokenIDBytes)
	default:
		reason = fmt.Sprintf("the secret after the dot must be %d lowercase letters or digits", bootstrapapi.BootstrapTokenSecretBytes)
	}
	return fmt.Errorf("%w (%d characters): %s; a token has the form %s, e.g. abcdef.0123456789abcdef",
		ErrMalformed, len(s), reason, Format)
}
