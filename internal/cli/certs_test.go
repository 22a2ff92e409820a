package cli

import (
	"strings"
	"testing"
)

func TestCertsCertificateKey(t *testing.T) {
	var keys []string
	for range 2 {
		code, out, errs := run(t, "certs", "certificate-key")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		key, ok := strings.CutSuffix(out, "\n")
		if !ok || len(key) != 64 || strings.Trim(key, "0123456789abcdef") != "" {
			t.Fatalf("printed %q, want 64 hex digits and a newline", out)
		}
		keys = append(keys, key)
	}
	if keys[0] == keys[1] {
		t.Fatal("two runs printed the same key")
	}
}
