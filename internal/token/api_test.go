package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kubeboot.dev/kubeboot/internal/config"
)

func getSecret(t *testing.T, c *fake.Clientset, name string) *corev1.Secret {
	t.Helper()
	s, err := c.CoreV1().Secrets("kube-system").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return s
}

// failOnce makes the first request of verb on secrets fail with err.
func failOnce(c *fake.Clientset, verb string, err error) {
	done := false
	c.PrependReactor(verb, "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if done {
			return false, nil, nil
		}
		done = true
		return true, nil, err
	})
}

func TestCreate(t *testing.T) {
	t.Run("new token, after a transient error", func(t *testing.T) {
		c := fake.NewClientset()
		failOnce(c, "create", apierrors.NewInternalError(errors.New("etcd leader changed")))
		before := time.Now().UTC().Truncate(time.Second)
		if err := Create(t.Context(), c, config.BootstrapToken{Token: "abcdef.0123456789abcdef", TTL: dur(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		after := time.Now().UTC()
		s := getSecret(t, c, "bootstrap-token-abcdef")
		exp, err := time.Parse(time.RFC3339, string(s.Data["expiration"]))
		if err != nil {
			t.Fatal(err)
		}
		if exp.Before(before.Add(time.Hour)) || exp.After(after.Add(time.Hour)) {
			t.Errorf("expiration %v is not one hour after the call (%v..%v)", exp, before, after)
		}
	})
	t.Run("id taken by another token", func(t *testing.T) {
		c := fake.NewClientset(tokenSecret("bootstrap-token-abcdef", map[string]string{"token-id": "abcdef", "token-secret": "ffffffffffffffff"}))
		err := Create(t.Context(), c, config.BootstrapToken{Token: "abcdef.0123456789abcdef"})
		want := `creating bootstrap token "abcdef": a token with this ID already exists; delete it first or pick another token`
		if err == nil || err.Error() != want || !errors.Is(err, ErrExists) {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
		if got := string(getSecret(t, c, "bootstrap-token-abcdef").Data["token-secret"]); got != "ffffffffffffffff" {
			t.Errorf("the existing token was overwritten")
		}
	})
	t.Run("our own earlier write", func(t *testing.T) {
		c := fake.NewClientset(tokenSecret("bootstrap-token-abcdef", map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef"}))
		if err := Create(t.Context(), c, config.BootstrapToken{Token: "abcdef.0123456789abcdef"}); err != nil {
			t.Fatalf("a token identical to the stored one is not a clash: %v", err)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		c := fake.NewClientset()
		failOnce(c, "create", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "bootstrap-token-abcdef", errors.New("no")))
		err := Create(t.Context(), c, config.BootstrapToken{Token: "abcdef.0123456789abcdef"})
		want := `creating bootstrap token "abcdef": secrets "bootstrap-token-abcdef" is forbidden: no`
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
	})
	t.Run("invalid token makes no request", func(t *testing.T) {
		c := fake.NewClientset()
		if err := Create(t.Context(), c, config.BootstrapToken{Token: "nope"}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("error = %v, want ErrMalformed", err)
		}
		if len(c.Actions()) != 0 {
			t.Errorf("requests were sent: %v", c.Actions())
		}
	})
}

func TestUpdateReplacesExistingToken(t *testing.T) {
	c := fake.NewClientset(tokenSecret("bootstrap-token-abcdef", map[string]string{
		"token-id": "abcdef", "token-secret": "ffffffffffffffff", "description": "old",
	}))
	tok := config.BootstrapToken{Token: "abcdef.0123456789abcdef", TTL: dur(0), Description: "new"}
	if err := Update(t.Context(), c, tok); err != nil {
		t.Fatal(err)
	}
	got := stringData(getSecret(t, c, "bootstrap-token-abcdef"))
	want := map[string]string{
		"token-id": "abcdef", "token-secret": "0123456789abcdef", "description": "new",
		"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
		"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
	}
	if len(got) != len(want) {
		t.Fatalf("data = %v\nwant %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestList(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := fake.NewClientset(
		tokenSecret("bootstrap-token-zzzzzz", map[string]string{"token-id": "zzzzzz", "token-secret": "0123456789abcdef"}),
		tokenSecret("bootstrap-token-abcdef", map[string]string{
			"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2030-01-01T00:00:00Z",
			"usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
		}),
		tokenSecret("bootstrap-token-broken", map[string]string{"token-id": "broken", "token-secret": "short"}),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "not-a-token"}, Type: corev1.SecretTypeOpaque},
	)
	failOnce(c, "list", apierrors.NewServiceUnavailable("starting"))
	tokens, skipped, err := List(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 || tokens[0].Token.ID != "abcdef" || tokens[1].Token.ID != "zzzzzz" {
		t.Fatalf("tokens = %#v, want abcdef then zzzzzz", tokens)
	}
	if tokens[0].Expires == nil || !tokens[0].Expires.Equal(exp) || tokens[1].Expires != nil {
		t.Errorf("expirations = %v, %v", tokens[0].Expires, tokens[1].Expires)
	}
	if strings.Join(tokens[0].Usages, ",") != "authentication,signing" {
		t.Errorf("usages = %v", tokens[0].Usages)
	}
	if len(skipped) != 1 || skipped[0].Error() != "Secret kube-system/bootstrap-token-broken: token-secret is not of the form [a-z0-9]{16}" {
		t.Errorf("skipped = %v", skipped)
	}
	var listAction k8stesting.ListAction
	for _, a := range c.Actions() {
		if la, ok := a.(k8stesting.ListAction); ok {
			listAction = la
		}
	}
	if fs := listAction.GetListRestrictions().Fields.String(); fs != "type=bootstrap.kubernetes.io/token" {
		t.Errorf("field selector = %q", fs)
	}
}

func TestListForbidden(t *testing.T) {
	c := fake.NewClientset()
	failOnce(c, "list", apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "", errors.New("no")))
	_, _, err := List(t.Context(), c)
	want := `listing bootstrap tokens in namespace kube-system: secrets is forbidden: no`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestDelete(t *testing.T) {
	seed := func() *fake.Clientset {
		return fake.NewClientset(tokenSecret("bootstrap-token-abcdef", map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef"}))
	}
	tests := []struct {
		name    string
		arg     string
		setup   func(*fake.Clientset)
		wantErr string
	}{
		{name: "by id", arg: "abcdef"},
		{name: "by token", arg: "abcdef.0123456789abcdef"},
		{name: "after a reset connection", arg: "abcdef", setup: func(c *fake.Clientset) {
			failOnce(c, "delete", apierrors.NewServiceUnavailable("restarting"))
		}},
		{name: "unknown id", arg: "zzzzzz",
			wantErr: `deleting bootstrap token "zzzzzz": not found (no Secret kube-system/bootstrap-token-zzzzzz); ` + "`kubeboot token list` shows the tokens that exist"},
		{name: "malformed", arg: "abc",
			wantErr: "malformed bootstrap token: want a token ID of the form [a-z0-9]{6} or a token of the form [a-z0-9]{6}.[a-z0-9]{16} (got 3 characters)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := seed()
			if tt.setup != nil {
				tt.setup(c)
			}
			err := Delete(t.Context(), c, tt.arg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CoreV1().Secrets("kube-system").Get(t.Context(), "bootstrap-token-abcdef", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("token still stored: %v", err)
			}
		})
	}
}

func TestDeleteStopsAtDeadline(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("delete", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("down")
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := Delete(ctx, c, "abcdef")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), `deleting bootstrap token "abcdef": gave up after `) {
		t.Fatalf("error = %v", err)
	}
}
