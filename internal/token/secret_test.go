package token

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/config"
)

var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func stringData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func TestSecret(t *testing.T) {
	expires := metav1.NewTime(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	tests := []struct {
		name string
		tok  config.BootstrapToken
		want map[string]string
	}{
		{
			name: "defaults",
			tok:  config.BootstrapToken{Token: "abcdef.0123456789abcdef"},
			want: map[string]string{
				"token-id":                       "abcdef",
				"token-secret":                   "0123456789abcdef",
				"expiration":                     "2025-03-05T04:06:07Z",
				"usage-bootstrap-signing":        "true",
				"usage-bootstrap-authentication": "true",
				"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token",
			},
		},
		{
			name: "ttl, description and groups",
			tok: config.BootstrapToken{
				Token: "abcdef.0123456789abcdef", TTL: dur(2 * time.Hour), Description: "for the workers",
				Groups: []string{"system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:workers"},
			},
			want: map[string]string{
				"token-id":                       "abcdef",
				"token-secret":                   "0123456789abcdef",
				"expiration":                     "2025-03-04T06:06:07Z",
				"description":                    "for the workers",
				"usage-bootstrap-signing":        "true",
				"usage-bootstrap-authentication": "true",
				"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:workers",
			},
		},
		{
			name: "ttl 0 never expires",
			tok:  config.BootstrapToken{Token: "abcdef.0123456789abcdef", TTL: dur(0), Usages: []string{"authentication"}},
			want: map[string]string{
				"token-id":                       "abcdef",
				"token-secret":                   "0123456789abcdef",
				"usage-bootstrap-authentication": "true",
				"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token",
			},
		},
		{
			name: "expires wins over ttl; signing only gets no group",
			tok:  config.BootstrapToken{Token: "abcdef.0123456789abcdef", TTL: dur(time.Hour), Expires: &expires, Usages: []string{"signing"}},
			want: map[string]string{
				"token-id":                "abcdef",
				"token-secret":            "0123456789abcdef",
				"expiration":              "2030-01-02T03:04:05Z",
				"usage-bootstrap-signing": "true",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Secret(tt.tok, now)
			if err != nil {
				t.Fatal(err)
			}
			if s.Namespace != "kube-system" || s.Name != "bootstrap-token-abcdef" || s.Type != "bootstrap.kubernetes.io/token" {
				t.Errorf("Secret is %s/%s of type %q", s.Namespace, s.Name, s.Type)
			}
			if got := stringData(s); !equality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("data =\n%v\nwant\n%v", got, tt.want)
			}
			back, err := FromSecret(s)
			if err != nil {
				t.Fatalf("FromSecret of our own Secret: %v", err)
			}
			if back.Token.Value() != tt.tok.Token || back.Description != tt.tok.Description {
				t.Errorf("round trip lost the token or description: %#v", back)
			}
		})
	}
}

func TestSecretRejectsInvalidTokens(t *testing.T) {
	tests := []struct {
		name    string
		tok     config.BootstrapToken
		wantErr string
	}{
		{
			name:    "malformed",
			tok:     config.BootstrapToken{Token: "abcdef-s3cr3tv4lu3x9y8z"},
			wantErr: "bootstrap token: malformed bootstrap token (23 characters): there is no dot between the ID and the secret; a token has the form [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef",
		},
		{
			name:    "unknown usage",
			tok:     config.BootstrapToken{Token: "abcdef.s3cr3tv4lu3x9y8z", Usages: []string{"signing", "ssh"}},
			wantErr: `bootstrap token "abcdef": usages: invalid bootstrap token usage string: ssh, valid usage options: signing,authentication`,
		},
		{
			name:    "group outside system:bootstrappers",
			tok:     config.BootstrapToken{Token: "abcdef.s3cr3tv4lu3x9y8z", Groups: []string{"system:masters"}},
			wantErr: `bootstrap token "abcdef": groups: bootstrap group "system:masters" is invalid (must match \Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z)`,
		},
		{
			name:    "groups without authentication",
			tok:     config.BootstrapToken{Token: "abcdef.s3cr3tv4lu3x9y8z", Usages: []string{"signing"}, Groups: []string{"system:bootstrappers:x"}},
			wantErr: `bootstrap token "abcdef": groups: extra groups need the usage "authentication"`,
		},
		{
			name:    "negative ttl",
			tok:     config.BootstrapToken{Token: "abcdef.s3cr3tv4lu3x9y8z", TTL: dur(-time.Minute)},
			wantErr: `bootstrap token "abcdef": ttl: -1m0s is negative; use 0 for a token that never expires`,
		},
		{
			name: "every problem at once",
			tok:  config.BootstrapToken{Token: "abcdef.s3cr3tv4lu3x9y8z", Usages: []string{"x"}, Groups: []string{"y"}},
			wantErr: `bootstrap token "abcdef": usages: invalid bootstrap token usage string: x, valid usage options: signing,authentication` + "\n" +
				`groups: extra groups need the usage "authentication"` + "\n" +
				`groups: bootstrap group "y" is invalid (must match \Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Secret(tt.tok, now)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
			}
			if s != nil {
				t.Errorf("a Secret was returned with the error")
			}
			if strings.Contains(err.Error(), "s3cr3tv4lu3x9y8z") {
				t.Errorf("error shows the token secret")
			}
		})
	}
}

func tokenSecret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name},
		Type:       "bootstrap.kubernetes.io/token",
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestFromSecret(t *testing.T) {
	at := time.Date(2025, 3, 5, 4, 6, 7, 0, time.UTC)
	got, err := FromSecret(tokenSecret("bootstrap-token-abcdef", map[string]string{
		"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2025-03-05T04:06:07Z",
		"description": "d", "usage-bootstrap-signing": "true", "usage-bootstrap-authentication": "true",
		"usage-bootstrap-other": "false", "auth-extra-groups": "system:bootstrappers:a,system:bootstrappers:b",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if left, ok := got.TTL(at.Add(-90 * time.Minute)); !ok || left != 90*time.Minute {
		t.Errorf("TTL = %v, %v", left, ok)
	}
	if got.Expires == nil || !got.Expires.Equal(at) {
		t.Errorf("Expires = %v, want %v", got.Expires, at)
	}
	got.Expires = nil
	want := Info{
		Token: Token{ID: "abcdef", Secret: "0123456789abcdef"}, Description: "d",
		Usages: []string{"authentication", "signing"}, Groups: []string{"system:bootstrappers:a", "system:bootstrappers:b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromSecret =\n%#v\nwant\n%#v", got, want)
	}
}

func TestFromSecretRejectsMalformed(t *testing.T) {
	ok := map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		secret  *corev1.Secret
		wantErr string
	}{
		{"no id", tokenSecret("bootstrap-token-abcdef", with("token-id", "")), "Secret kube-system/bootstrap-token-abcdef: no token-id"},
		{"bad id", tokenSecret("bootstrap-token-ABCDEF", with("token-id", "ABCDEF")), "Secret kube-system/bootstrap-token-ABCDEF: token-id is not of the form [a-z0-9]{6}"},
		{"name mismatch", tokenSecret("bootstrap-token-zzzzzz", ok), `Secret kube-system/bootstrap-token-zzzzzz: holds token ID "abcdef", so it must be named bootstrap-token-abcdef`},
		{"no secret", tokenSecret("bootstrap-token-abcdef", with("token-secret", "")), "Secret kube-system/bootstrap-token-abcdef: no token-secret"},
		{"bad secret", tokenSecret("bootstrap-token-abcdef", with("token-secret", "tooshortsecret")), "Secret kube-system/bootstrap-token-abcdef: token-secret is not of the form [a-z0-9]{16}"},
		{"bad expiration", tokenSecret("bootstrap-token-abcdef", with("expiration", "tomorrow")), `Secret kube-system/bootstrap-token-abcdef: expiration "tomorrow" is not an RFC 3339 time`},
		{"wrong type", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "x"}, Type: corev1.SecretTypeOpaque}, `Secret kube-system/x: type is "Opaque", not "bootstrap.kubernetes.io/token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromSecret(tt.secret)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "tooshortsecret") {
				t.Errorf("error shows the stored secret")
			}
		})
	}
}

func TestSigningTokens(t *testing.T) {
	past := &metav1.Time{Time: now.Add(-time.Minute)}
	future := &metav1.Time{Time: now.Add(time.Hour)}
	bts := []config.BootstrapToken{
		{Token: "aaaaaa.0123456789abcdef"},                                           // default usages: signing and authentication
		{Token: "bbbbbb.0123456789abcdef", Usages: []string{"authentication"}},       // does not sign
		{Token: "cccccc.0123456789abcdef", Usages: []string{"signing"}, TTL: dur(0)}, // never expires
		{Token: "dddddd.0123456789abcdef", Expires: past},                            // expired: the bootstrapsigner drops it
		{Token: "eeeeee.0123456789abcdef", Expires: future},
		{Token: "not-a-token"},
	}
	var ids []string
	for _, tok := range Signing(bts, now) {
		ids = append(ids, tok.ID)
		if tok.Secret != "0123456789abcdef" {
			t.Errorf("token %s: secret not carried", tok.ID)
		}
	}
	if want := []string{"aaaaaa", "cccccc", "eeeeee"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("signing tokens = %v, want %v", ids, want)
	}
}
