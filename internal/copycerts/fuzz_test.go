package copycerts

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/testutil/keyleak"
)

func readTestdata(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

const seedKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// FuzzParseKey checks that ParseKey takes exactly 64 hexadecimal digits and that its errors never repeat the key.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{seedKey, strings.ToUpper(seedKey), "", seedKey[:63], seedKey + "0", strings.Replace(seedKey, "0", "g", 1), " " + seedKey[1:]} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	f.Fuzz(func(t *testing.T, key string) {
		b, err := ParseKey(key)
		if (err == nil) != valid.MatchString(key) {
			t.Fatalf("ParseKey(%q): error %v", key, err)
		}
		if err != nil {
			if b != nil || !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("ParseKey(%q) = %x, %v; want nil and ErrMalformedKey", key, b, err)
			}
			if keyleak.Echoes(err.Error(), key) {
				t.Fatalf("the error repeats the key: %v", err)
			}
			return
		}
		if len(b) != KeySize || hex.EncodeToString(b) != strings.ToLower(key) {
			t.Fatalf("ParseKey(%q) = %x", key, b)
		}
	})
}

// FuzzDecrypt opens kubeadm-certs values: altered or foreign data fails with an error and no plaintext, and what
// Encrypt sealed under a key opens with that key only.
func FuzzDecrypt(f *testing.F) {
	key, _ := hex.DecodeString(seedKey)
	for _, plain := range [][]byte{readTestdata(f, "ca.crt"), readTestdata(f, "ca.key"), {}} {
		sealed, err := Encrypt(plain, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed, key, plain)
		f.Add(sealed[:len(sealed)-1], key, plain)
		f.Add(sealed, key[:16], plain)
	}
	f.Fuzz(func(t *testing.T, sealed, key, plain []byte) {
		got, err := Decrypt(sealed, key)
		if err != nil {
			if got != nil {
				t.Fatalf("Decrypt returned %d bytes and the error %v", len(got), err)
			}
			if keyleak.Echoes(err.Error(), string(key)) || keyleak.Echoes(err.Error(), hex.EncodeToString(key)) {
				t.Fatalf("the error repeats the key: %v", err)
			}
		}
		again, err := Encrypt(plain, key)
		switch n := len(key); {
		case n != 16 && n != 24 && n != 32:
			if err == nil {
				t.Fatalf("Encrypt took a %d-byte key", n)
			}
			return
		case err != nil:
			t.Fatalf("Encrypt with a %d-byte key: %v", n, err)
		}
		opened, err := Decrypt(again, key)
		if err != nil || !bytes.Equal(opened, plain) {
			t.Fatalf("Decrypt(Encrypt(plain)) = %q, %v; want %q", opened, err, plain)
		}
		other := bytes.Clone(key)
		other[0] ^= 1
		if _, err := Decrypt(again, other); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("opened with another key: %v", err)
		}
	})
}

// FuzzSecretFiles feeds decrypted kubeadm-certs values to the checks Download makes before writing anything: a
// certificate and a key of a CA (checkPEM), and whether they belong together (checkPairs). What passes must be a CA
// with its own key; no error may carry key material.
func FuzzSecretFiles(f *testing.F) {
	ca, caKey := readTestdata(f, "ca.crt"), readTestdata(f, "ca.key")
	fp, fpKey := readTestdata(f, "front-proxy-ca.crt"), readTestdata(f, "front-proxy-ca.key")
	leaf, leafKey := readTestdata(f, "leaf.crt"), readTestdata(f, "leaf.key")
	f.Add(ca, caKey)
	f.Add(fp, fpKey)
	f.Add(ca, fpKey)
	f.Add(leaf, leafKey)
	f.Add(append(bytes.Clone(ca), fp...), caKey)
	f.Add(caKey, ca)
	f.Add([]byte{}, []byte{})
	files := Files("/etc/kubernetes/pki", nil)
	crtFile, keyFile := files[0], files[1]
	f.Fuzz(func(t *testing.T, crt, key []byte) {
		errCrt, errKey := checkPEM(crtFile, crt), checkPEM(keyFile, key)
		for _, err := range []error{errCrt, errKey} {
			if err != nil && (keyleak.In([]byte(err.Error())) || keyleak.Echoes(err.Error(), string(key))) {
				t.Fatalf("the error carries key material: %v", err)
			}
		}
		if errCrt != nil || errKey != nil {
			return
		}
		err := checkPairs(map[string][]byte{"ca.crt": crt, "ca.key": key})
		parsed, perr := pki.ParseCA(crt, key)
		if (err == nil) != (perr == nil) {
			t.Fatalf("checkPairs: %v, but ParseCA: %v", err, perr)
		}
		if err != nil {
			if keyleak.In([]byte(err.Error())) || keyleak.Echoes(err.Error(), string(key)) {
				t.Fatalf("the error carries key material: %v", err)
			}
			return
		}
		if !parsed.Cert.IsCA || !pki.KeyMatches(parsed.Cert, parsed.Key) {
			t.Fatalf("checkPairs accepted a pair that is not a CA with its key")
		}
	})
}
