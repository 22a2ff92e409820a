// Package network gives lab nodes a private L2 segment in the root namespace: a bridge, one veth
// per node netns, routes between the nodes' pod subnets, and a firewall rule that keeps every
// packet from a node inside the machine.
package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Bridge is the lab's segment. Addr is the bridge's own address with the segment's prefix length,
// e.g. 10.77.0.1/24. PodCIDR, if set, is kept from ever leaving the machine by another route.
type Bridge struct {
	Name    string
	Addr    netip.Prefix
	PodCIDR netip.Prefix
}

// rules are the root namespace's firewall rules of the lab (LAB-FACTS §5): nothing arriving from
// the bridge is forwarded anywhere else, and nothing the machine itself sends to a Pod address (an
// ICMP error answering a Pod, say) takes any way but the bridge.
func (b Bridge) rules() [][]string {
	rules := [][]string{{"FORWARD", "-i", b.Name, "!", "-o", b.Name, "-j", "DROP"}}
	if b.PodCIDR.IsValid() {
		rules = append(rules, []string{"OUTPUT", "-d", b.PodCIDR.String(), "!", "-o", b.Name, "-j", "DROP"})
	}
	return rules
}

// CheckFree refuses a segment that overlaps an address or route the machine already has.
func CheckFree(ctx context.Context, segment netip.Prefix) error {
	out, err := run(ctx, "ip", "-j", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	var routes []struct {
		Dst string `json:"dst"`
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return fmt.Errorf("parse `ip -j route`: %w", err)
	}
	for _, r := range routes {
		p, err := parsePrefix(r.Dst)
		if err != nil || p.Bits() == 0 {
			continue // default, broadcast and other non-prefix entries
		}
		if p.Overlaps(segment) {
			return fmt.Errorf("lab subnet %s overlaps the machine's route %s dev %s: pick another with --subnet", segment, r.Dst, r.Dev)
		}
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

// Exists reports whether a link of that name exists in the root namespace.
func Exists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

// Create brings up the bridge with its address and inserts the firewall rules.
func (b Bridge) Create(ctx context.Context) error {
	steps := [][]string{
		{"ip", "link", "add", b.Name, "type", "bridge"},
		{"ip", "addr", "add", b.Addr.String(), "dev", b.Name},
		{"ip", "link", "set", b.Name, "up"},
	}
	for _, r := range b.rules() {
		steps = append(steps, append([]string{"iptables", "-w", "-I"}, r...))
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("create lab bridge %s: %w", b.Name, err)
		}
	}
	return nil
}

// Rules lists the root namespace's filter rules that mention the bridge, as `iptables -S` prints
// them: the lab's own, whatever the state file knows.
func (b Bridge) Rules(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "iptables", "-w", "-S")
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A ") && slices.Contains(strings.Fields(line), b.Name) {
			rules = append(rules, line)
		}
	}
	return rules, nil
}

// Delete removes every filter rule mentioning the bridge, and the bridge with the routes through
// it; missing parts are no error.
func (b Bridge) Delete(ctx context.Context) error {
	var errs []error
	rules, err := b.Rules(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range rules {
		args := append([]string{"-w", "-D"}, strings.Fields(r)[1:]...)
		if _, err := run(ctx, "iptables", args...); err != nil {
			errs = append(errs, err)
		}
	}
	if Exists(b.Name) {
		if _, err := run(ctx, "ip", "link", "del", b.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RoutePods routes a node's pod subnet through the node's address in the root namespace, so that
// the machine's answers to Pods go back to the lab instead of out of the default route.
func (b Bridge) RoutePods(ctx context.Context, pods netip.Prefix, via netip.Addr) error {
	if _, err := run(ctx, "ip", "route", "add", pods.String(), "via", via.String(), "dev", b.Name); err != nil {
		return fmt.Errorf("route %s via %s on %s: %w", pods, via, b.Name, err)
	}
	return nil
}

// Attachment is one node's place on the bridge.
type Attachment struct {
	NetNS    string       // name under /run/netns
	HostVeth string       // veth end in the root namespace, enslaved to the bridge
	Addr     netip.Prefix // the node's address with the segment's prefix length
}

// AddNetNS creates the named network namespace.
func AddNetNS(ctx context.Context, name string) error {
	if _, err := run(ctx, "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	return nil
}

// DeleteNetNS removes the named network namespace; a missing one is no error.
func DeleteNetNS(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// Attach plugs the node's netns into the bridge: a veth pair (eth0 inside), the node's address and
// a default route via the bridge, where the machine drops whatever would leave the lab.
func (b Bridge) Attach(ctx context.Context, a Attachment) error {
	ns := a.NetNS
	steps := [][]string{
		{"ip", "link", "add", a.HostVeth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", a.HostVeth, "master", b.Name, "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "addr", "add", a.Addr.String(), "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", b.Addr.Addr().String()},
	}
	for _, s := range steps {
		if _, err := run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("attach netns %s to %s: %w", ns, b.Name, err)
		}
	}
	return nil
}

// DeleteLink removes a link of the root namespace (for a veth, both ends); a missing one is no error.
func DeleteLink(ctx context.Context, name string) error {
	if name == "" || !Exists(name) {
		return nil
	}
	_, err := run(ctx, "ip", "link", "del", name)
	return err
}

// AddRoute routes dst through via inside the netns ns: the bridge CNI plugin does not route
// between nodes, so every node learns the other nodes' pod subnets this way.
func AddRoute(ctx context.Context, ns string, dst netip.Prefix, via netip.Addr) error {
	if _, err := run(ctx, "ip", "-n", ns, "route", "add", dst.String(), "via", via.String()); err != nil {
		return fmt.Errorf("route %s via %s in netns %s: %w", dst, via, ns, err)
	}
	return nil
}

// RejectUnmapped makes the netns ns refuse, at once, forwarding to dst: a Pod that reaches for a
// Service before kube-proxy has mapped it (CoreDNS at start, typically) gets an error right away
// instead of its packets vanishing at the lab's edge and a 30 s connect timeout. Mapped Service
// traffic is DNATed to an endpoint before this rule sees it.
func RejectUnmapped(ctx context.Context, ns string, dst netip.Prefix) error {
	_, err := run(ctx, "nsenter", "--net=/run/netns/"+ns, "iptables", "-w", "-A", "FORWARD", "-d", dst.String(), "-j", "REJECT")
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	return nil
}

// Links lists the root namespace's links whose names start with prefix.
func Links(prefix string) []string {
	entries, _ := os.ReadDir("/sys/class/net")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// NetNSs lists the named network namespaces whose names start with prefix.
func NetNSs(prefix string) []string {
	entries, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Host returns the n-th address of a segment (n=1 is the first after the network address).
func Host(segment netip.Prefix, n int) (netip.Addr, error) {
	if !segment.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("lab subnet %s: want IPv4", segment)
	}
	a := segment.Masked().Addr()
	for range n {
		a = a.Next()
	}
	if !segment.Contains(a) || a == lastAddr(segment) {
		return netip.Addr{}, fmt.Errorf("address number %d is outside %s", n, segment)
	}
	return a, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Subnet returns the n-th /24 of a larger IPv4 prefix, e.g. 10.244.3.0/24 for n=3 in 10.244.0.0/16.
func Subnet(cidr netip.Prefix, n int) (netip.Prefix, error) {
	if !cidr.Addr().Is4() || cidr.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("pod CIDR %s: want an IPv4 prefix of /24 or larger", cidr)
	}
	if n < 0 || n >= 1<<(24-cidr.Bits()) {
		return netip.Prefix{}, fmt.Errorf("pod CIDR %s has no /24 number %d", cidr, n)
	}
	b := cidr.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8
	v += uint32(n) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24), nil
}
