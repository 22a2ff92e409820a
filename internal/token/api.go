package token

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
)

// ErrExists is returned by Create when a token with the same ID is already stored.
var ErrExists = errors.New("already exists")

// ErrNotFound is returned by Delete when no token with the ID is stored.
var ErrNotFound = errors.New("not found")

// Create stores a new token and fails with ErrExists if its ID is taken (`token create`).
// The expiration is computed from the TTL at the time of the call.
func Create(ctx context.Context, c kubernetes.Interface, tok config.BootstrapToken) error {
	s, err := Secret(tok, time.Now())
	if err != nil {
		return err
	}
	id := string(s.Data[bootstrapapi.BootstrapTokenIDKey])
	secrets := c.CoreV1().Secrets(metav1.NamespaceSystem)
	err = apply.Retry(ctx, func(ctx context.Context) error {
		_, err := secrets.Create(ctx, s, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		// A create that timed out on our side may have been stored: the token is then ours, not a clash.
		stored, gerr := secrets.Get(ctx, s.Name, metav1.GetOptions{})
		if gerr == nil && bytes.Equal(stored.Data[bootstrapapi.BootstrapTokenSecretKey], s.Data[bootstrapapi.BootstrapTokenSecretKey]) {
			return nil
		}
		return fmt.Errorf("creating bootstrap token %q: a token with this ID %w; delete it first or pick another token", id, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("creating bootstrap token %q: %w", id, err)
	}
	return nil
}

// Update stores a token, replacing a stored one with the same ID (what `init` does with bootstrapTokens).
func Update(ctx context.Context, c kubernetes.Interface, tok config.BootstrapToken) error {
	s, err := Secret(tok, time.Now())
	if err != nil {
		return err
	}
	if err := apply.Object(ctx, c, s); err != nil {
		return fmt.Errorf("storing bootstrap token %q: %w", s.Data[bootstrapapi.BootstrapTokenIDKey], err)
	}
	return nil
}

// List reads every bootstrap token Secret, sorted by ID. Secrets that cannot be read back as tokens are
// skipped; each is reported in skipped.
func List(ctx context.Context, c kubernetes.Interface) (tokens []Info, skipped []error, err error) {
	var list *corev1.SecretList
	opts := metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("type", string(bootstrapapi.SecretTypeBootstrapToken)).String(),
	}
	err = apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		list, err = c.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, opts)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("listing bootstrap tokens in namespace %s: %w", metav1.NamespaceSystem, err)
	}
	for i := range list.Items {
		s := &list.Items[i]
		if s.Type != bootstrapapi.SecretTypeBootstrapToken {
			continue // a server that ignored the field selector
		}
		info, err := FromSecret(s)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		tokens = append(tokens, info)
	}
	sort.Slice(tokens, func(a, b int) bool { return tokens[a].Token.ID < tokens[b].Token.ID })
	return tokens, skipped, nil
}

// Delete removes the token named by its ID or by the whole token (`token delete`).
func Delete(ctx context.Context, c kubernetes.Interface, idOrToken string) error {
	id, err := ParseID(idOrToken)
	if err != nil {
		return err
	}
	attempts := 0
	err = apply.Retry(ctx, func(ctx context.Context) error {
		attempts++
		return c.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.DeleteOptions{})
	})
	if apierrors.IsNotFound(err) && attempts > 1 {
		return nil // an earlier attempt that looked failed did delete it
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting bootstrap token %q: %w (no Secret %s/%s); `kubeboot token list` shows the tokens that exist",
			id, ErrNotFound, metav1.NamespaceSystem, bootstraputil.BootstrapTokenSecretName(id))
	}
	if err != nil {
		return fmt.Errorf("deleting bootstrap token %q: %w", id, err)
	}
	return nil
}
