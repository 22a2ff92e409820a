package token

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const tail = "; a token has the form [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef"
	tests := []struct {
		in      string
		want    Token
		wantErr string
	}{
		{in: "abcdef.s3cr3tv4lu3x9y8z", want: Token{ID: "abcdef", Secret: "s3cr3tv4lu3x9y8z"}},
		{in: "", wantErr: "malformed bootstrap token (0 characters): it is empty" + tail},
		{in: "abcdefs3cr3tv4lu3x9y8z", wantErr: "malformed bootstrap token (22 characters): there is no dot between the ID and the secret" + tail},
		{in: "abcdef.s3cr3tv4lu.3x9y8z", wantErr: "malformed bootstrap token (24 characters): there is more than one dot" + tail},
		{in: "ABCDEF.s3cr3tv4lu3x9y8z", wantErr: "malformed bootstrap token (23 characters): the ID before the dot must be 6 lowercase letters or digits" + tail},
		{in: "abcde.s3cr3tv4lu3x9y8zg", wantErr: "malformed bootstrap token (23 characters): the ID before the dot must be 6 lowercase letters or digits" + tail},
		{in: "abcdef.s3cr3tv4lu3x9y8", wantErr: "malformed bootstrap token (22 characters): the secret after the dot must be 16 lowercase letters or digits" + tail},
		{in: "abcdef.S3CR3TV4LU3X9Y8Z", wantErr: "malformed bootstrap token (23 characters): the secret after the dot must be 16 lowercase letters or digits" + tail},
		{in: " abcdef.s3cr3tv4lu3x9y8z", wantErr: "malformed bootstrap token (24 characters): the ID before the dot must be 6 lowercase letters or digits" + tail},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error does not wrap ErrMalformed")
				}
				if _, secret, ok := strings.Cut(tt.in, "."); ok && strings.Contains(err.Error(), secret) {
					t.Errorf("error repeats the secret part of the input")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse = %#v, %v; want %#v", got, err, tt.want)
			}
			if got.Value() != tt.in {
				t.Errorf("Value() = %q, want %q", got.Value(), tt.in)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "abcdef", want: "abcdef"},
		{in: "abcdef.s3cr3tv4lu3x9y8z", want: "abcdef"},
		{in: "abcdefg", wantErr: "malformed bootstrap token: want a token ID of the form [a-z0-9]{6} or a token of the form [a-z0-9]{6}.[a-z0-9]{16} (got 7 characters)"},
		{in: "abcdef.short", wantErr: "malformed bootstrap token: want a token ID of the form [a-z0-9]{6} or a token of the form [a-z0-9]{6}.[a-z0-9]{16} (got 12 characters)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrMalformed) {
					t.Fatalf("error = %v\nwant    %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(tok.Value()); err != nil {
			t.Fatalf("generated token does not parse: %v", err)
		}
		if seen[tok.Value()] {
			t.Fatalf("the same token was generated twice")
		}
		seen[tok.Value()] = true
	}
}

func TestTokenPrintingRedactsSecret(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "s3cr3tv4lu3x9y8z"}
	for _, format := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		out := fmt.Sprintf(format, tok)
		if strings.Contains(out, tok.Secret) {
			t.Errorf("%s printed the secret: %s", format, out)
		}
		if !strings.Contains(out, "abcdef") {
			t.Errorf("%s hid the ID too: %s", format, out)
		}
	}
	if got := tok.String(); got != "abcdef.<redacted>" {
		t.Errorf("String() = %q", got)
	}
}
