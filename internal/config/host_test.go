package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNodeHostname(t *testing.T) {
	tests := []struct {
		name     string
		hostname func() (string, error)
		want     string
		wantErr  string
	}{
		{name: "mixed case", hostname: func() (string, error) { return "CP-1", nil }, want: "cp-1"},
		{name: "white space", hostname: func() (string, error) { return " Node-7.Lab.EXAMPLE\n", nil }, want: "node-7.lab.example"},
		{name: "empty", hostname: func() (string, error) { return " ", nil }, wantErr: "it is empty"},
		{name: "unreadable", hostname: func() (string, error) { return "", errors.New("uname failed") }, wantErr: "uname failed"},
		{name: "unknown", wantErr: "the hostname is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Environment{Hostname: tt.hostname}.NodeHostname()
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("this machine", func(t *testing.T) {
		h, err := HostEnvironment().NodeHostname()
		if err != nil {
			t.Fatal(err)
		}
		osName, _ := os.Hostname()
		if h != strings.ToLower(strings.TrimSpace(osName)) || h == "" {
			t.Errorf("NodeHostname() = %q for os.Hostname %q", h, osName)
		}
	})
}
