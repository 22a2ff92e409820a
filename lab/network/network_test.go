package network

import (
	"net/netip"
	"slices"
	"testing"
)

func TestSubnet(t *testing.T) {
	tests := []struct {
		cidr    string
		n       int
		want    string
		wantErr string
	}{
		{"10.244.0.0/16", 1, "10.244.1.0/24", ""},
		{"10.244.0.0/16", 255, "10.244.255.0/24", ""},
		{"10.240.0.0/12", 300, "10.241.44.0/24", ""},
		{"10.244.0.0/16", 256, "", "pod CIDR 10.244.0.0/16 has no /24 number 256"},
		{"10.244.0.0/25", 0, "", "pod CIDR 10.244.0.0/25: want an IPv4 prefix of /24 or larger"},
		{"fd00::/64", 0, "", "pod CIDR fd00::/64: want an IPv4 prefix of /24 or larger"},
	}
	for _, tt := range tests {
		t.Run(tt.want+tt.wantErr, func(t *testing.T) {
			got, err := Subnet(netip.MustParsePrefix(tt.cidr), tt.n)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestHost(t *testing.T) {
	tests := []struct {
		segment string
		n       int
		want    string
		wantErr string
	}{
		{"10.77.0.0/24", 1, "10.77.0.1", ""},
		{"10.77.0.0/24", 254, "10.77.0.254", ""},
		{"10.77.0.0/24", 255, "", "address number 255 is outside 10.77.0.0/24"},
		{"10.77.0.0/30", 3, "", "address number 3 is outside 10.77.0.0/30"},
		{"fd00::/64", 1, "", "lab subnet fd00::/64: want IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.want+tt.wantErr, func(t *testing.T) {
			got, err := Host(netip.MustParsePrefix(tt.segment), tt.n)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestRules(t *testing.T) {
	b := Bridge{Name: "kblab0", PodCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	want := [][]string{
		{"FORWARD", "-i", "kblab0", "!", "-o", "kblab0", "-j", "DROP"},
		{"OUTPUT", "-d", "10.244.0.0/16", "!", "-o", "kblab0", "-j", "DROP"},
	}
	got := b.rules()
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rules %q, want %q", got, want)
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1": "10.0.0.1/32", "10.77.0.0/24": "10.77.0.0/24", "fd00::1": "fd00::1/128"} {
		got, err := parsePrefix(in)
		if err != nil || got.String() != want {
			t.Errorf("parsePrefix(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parsePrefix("broadcast"); err == nil {
		t.Error("parsePrefix(broadcast): no error")
	}
}
