package main

import (
	"strings"
	"testing"
	"time"
)

// TestKubeDNSEndpointRule checks the rule bench lab waits for against iptables-save lines of kube-proxy's
// iptables mode: the DNAT of kube-dns's UDP port, and nothing else.
func TestKubeDNSEndpointRule(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      bool
	}{
		{"the endpoint's DNAT", "-A KUBE-SEP-IT2ZTR26TO4XFPTO -p udp -m comment --comment \"kube-system/kube-dns:dns\" -m udp -j DNAT --to-destination 10.244.0.2:53\n", true},
		{"unquoted comment", "-A KUBE-SEP-IT2ZTR26TO4XFPTO -p udp -m comment --comment kube-system/kube-dns:dns -m udp -j DNAT --to-destination 10.244.0.2:53\n", true},
		{"only its masquerade rule", "-A KUBE-SEP-IT2ZTR26TO4XFPTO -s 10.244.0.2/32 -m comment --comment \"kube-system/kube-dns:dns\" -j KUBE-MARK-MASQ\n", false},
		{"the TCP port", "-A KUBE-SEP-ZP3FB6NMPNCO4VBJ -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp\" -m tcp -j DNAT --to-destination 10.244.0.2:53\n", false},
		{"the Service without endpoints", "-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns has no endpoints\" -m udp --dport 53 -j REJECT\n", false},
	} {
		if got := kubeDNSEndpointRule.MatchString(tc.out); got != tc.want {
			t.Errorf("%s: matched %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestProbeLog reads the DNS probe's log: the uptimes it prints, and errors that name what is missing or wrong.
func TestProbeLog(t *testing.T) {
	started, resolved, err := probeLog("started 29155.89\nresolved 29158.34\n")
	if err != nil || started != 29155890*time.Millisecond || resolved != 29158340*time.Millisecond {
		t.Fatalf("probeLog = %s, %s, %v; want 29155.89s, 29158.34s", started, resolved, err)
	}
	for _, tc := range []struct{ log, want string }{
		{"started 12.5\n", `no "started" and "resolved" lines`},
		{"", `no "started" and "resolved" lines`},
		{"started 12.5\nresolved x\n", `log line "resolved x"`},
		{"started 12.5\nresolved 11.0\n", "resolved (11s) before it started (12.5s)"},
	} {
		if _, _, err := probeLog(tc.log); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("probeLog(%q) = %v, want an error with %q", tc.log, err, tc.want)
		}
	}
}

// TestUptime checks the host side of the probe's clock: it moves forward with the wall clock.
func TestUptime(t *testing.T) {
	a, err := uptime()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	b, err := uptime()
	if err != nil {
		t.Fatal(err)
	}
	if d := b - a; d < 30*time.Millisecond || d > 2*time.Second {
		t.Errorf("uptime moved %s over 50 ms", d)
	}
}
