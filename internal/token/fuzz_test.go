package token

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

// kubeadmToken is kubeadm's own definition of a bootstrap token (k8s.io/cluster-bootstrap's BootstrapTokenRegexp):
// Parse must accept exactly what it matches.
var kubeadmToken = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// vocabulary is text an error about a token may hold whatever the input (the format, the example token): what
// the errors about unrelated inputs say.
var vocabulary = func() []string {
	var out []string
	for _, s := range []string{"", "x", "x.y.z", "X.y", "abcdef.y"} {
		_, err := Parse(s)
		out = append(out, err.Error())
	}
	_, err := ParseID("")
	return append(out, err.Error())
}()

var tokenSeeds = []string{
	"abcdef.0123456789abcdef",
	"abcdef.s3cr3tv4lu3x9y8z",
	"",
	"abcdef",
	"abcdefs3cr3tv4lu3x9y8z",
	"abcdef.s3cr3tv4lu.3x9y8z",
	"ABCDEF.s3cr3tv4lu3x9y8z",
	"abcdef.S3CR3TV4LU3X9Y8Z",
	" abcdef.s3cr3tv4lu3x9y8z",
	"abcdef.s3cr3tv4lu3x9y8z\n",
	"abcdef.s3cr3tv4lu3x9y8zz",
	"abcdéf.s3cr3tv4lu3x9y8z",
	" abcdef.",
}

// FuzzParse checks Parse against kubeadm's regular expression, that a parsed token gives back its input, and that
// no error repeats the part of the input that would be the secret.
func FuzzParse(f *testing.F) {
	for _, s := range tokenSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		m := kubeadmToken.FindStringSubmatch(s)
		if (err == nil) != (m != nil) {
			t.Fatalf("Parse(%q): error %v, but kubeadm's regexp matches: %v", s, err, m != nil)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q): error %v does not wrap ErrMalformed", s, err)
			}
			_, secret, _ := strings.Cut(s, ".")
			for _, part := range []string{s, secret} {
				if keyleak.Echoes(err.Error(), part, vocabulary...) {
					t.Errorf("Parse(%q): error repeats the input: %v", s, err)
				}
			}
			return
		}
		if tok.ID != m[1] || tok.Secret != m[2] || tok.Value() != s {
			t.Errorf("Parse(%q) = %#v (value %q); want ID %q and secret %q", s, tok, tok.Value(), m[1], m[2])
		}
		if strings.Contains(tok.String(), tok.Secret) {
			t.Errorf("String() of %q shows the secret: %s", s, tok)
		}
	})
}

// FuzzParseID checks that ParseID takes a token ID or a whole token, and nothing else.
func FuzzParseID(f *testing.F) {
	for _, s := range append(tokenSeeds, "abcdef", "abc123", "abcdefg", "abcdef.", ".abcdef") {
		f.Add(s)
	}
	idOnly := regexp.MustCompile(`^[a-z0-9]{6}$`)
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		full := kubeadmToken.FindStringSubmatch(s)
		switch {
		case idOnly.MatchString(s):
			if err != nil || id != s {
				t.Fatalf("ParseID(%q) = %q, %v; want the ID itself", s, id, err)
			}
		case full != nil:
			if err != nil || id != full[1] {
				t.Fatalf("ParseID(%q) = %q, %v; want %q", s, id, err, full[1])
			}
		default:
			if err == nil || id != "" {
				t.Fatalf("ParseID(%q) = %q, %v; want an error", s, id, err)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseID(%q): error %v does not wrap ErrMalformed", s, err)
			}
			if keyleak.Echoes(err.Error(), s, vocabulary...) {
				t.Errorf("ParseID(%q): error repeats the input: %v", s, err)
			}
		}
	})
}

// FuzzFromSecret reads bootstrap-token Secrets as the API server may hand them back. A Secret read back must hold a
// well-formed token; written again with Secret and read again, it must stay the same; no error may repeat the
// token secret.
func FuzzFromSecret(f *testing.F) {
	f.Add("bootstrap-token-abcdef", "abcdef", "0123456789abcdef", "2026-12-03T20:00:00Z", "authentication", "system:bootstrappers:kubeadm:default-node-token", "desc")
	f.Add("bootstrap-token-abcdef", "abcdef", "0123456789abcdef", "", "signing", "", "")
	f.Add("bootstrap-token-abcdef", "abcdef", "s3cr3tv4lu3x9y8z", "2026-12-03T20:00:00.5+02:00", "authentication", "system:bootstrappers:a,system:bootstrappers:b", "")
	f.Add("bootstrap-token-abcdef", "abcdef", "S3CR3TV4LU3X9Y8Z", "", "", "", "")
	f.Add("bootstrap-token-abcdeg", "abcdef", "s3cr3tv4lu3x9y8z", "", "", "", "")
	f.Add("bootstrap-token-abcdef", "abcdef", "s3cr3tv4lu3x9y8z", "tomorrow", "", "", "")
	f.Fuzz(func(t *testing.T, name, id, secret, expires, usage, groups, description string) {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: name},
			Type:       bootstrapapi.SecretTypeBootstrapToken,
			Data: map[string][]byte{
				bootstrapapi.BootstrapTokenIDKey:     []byte(id),
				bootstrapapi.BootstrapTokenSecretKey: []byte(secret),
			},
		}
		for k, v := range map[string]string{
			bootstrapapi.BootstrapTokenExpirationKey:  expires,
			bootstrapapi.BootstrapTokenExtraGroupsKey: groups,
			bootstrapapi.BootstrapTokenDescriptionKey: description,
		} {
			if v != "" {
				s.Data[k] = []byte(v)
			}
		}
		if usage != "" {
			s.Data[bootstrapapi.BootstrapTokenUsagePrefix+usage] = []byte("true")
		}
		info, err := FromSecret(s)
		if err != nil {
			if keyleak.Echoes(err.Error(), secret, append(vocabulary, name, expires)...) {
				t.Errorf("FromSecret: error repeats the token secret: %v", err)
			}
			return
		}
		if v := info.Token.Value(); !kubeadmToken.MatchString(v) || info.Token.ID != id || info.Token.Secret != secret {
			t.Fatalf("FromSecret accepted ID %q and secret %q as %#v", id, secret, info.Token)
		}
		again := roundTrip(t, info)
		if again == nil {
			return
		}
		if twice := roundTrip(t, *again); twice == nil || !cmp.Equal(*again, *twice) {
			t.Errorf("a token written and read back changes when written and read again:\n%s", cmp.Diff(again, twice))
		}
		if again.Token != info.Token || again.Description != info.Description {
			t.Errorf("written and read back: %#v, want %#v", again, info)
		}
	})
}

// roundTrip writes info with Secret and reads it back; nil when Secret refuses it (e.g. a usage it does not know).
func roundTrip(t *testing.T, info Info) *Info {
	t.Helper()
	bt := config.BootstrapToken{Token: info.Token.Value(), Description: info.Description, Usages: info.Usages, Groups: info.Groups}
	if info.Expires != nil {
		bt.Expires = &metav1.Time{Time: *info.Expires}
	} else {
		bt.TTL = &metav1.Duration{}
	}
	s, err := Secret(bt, time.Unix(0, 0))
	if err != nil {
		return nil
	}
	got, err := FromSecret(s)
	if err != nil {
		t.Fatalf("FromSecret cannot read what Secret wrote: %v", err)
	}
	if got.Expires != nil {
		// RFC 3339 in the Secret keeps whole seconds, in UTC.
		if want := info.Expires.Truncate(time.Second); !got.Expires.Equal(want) {
			t.Errorf("expiration written and read back: %s, want %s", got.Expires, want)
		}
	}
	return &got
}
