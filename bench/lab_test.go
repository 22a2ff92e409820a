package main

import "testing"

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
