package config

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// HostEnvironment answers Environment's questions from the running machine (in the caller's network namespace).
func HostEnvironment() Environment {
	return Environment{
		Hostname: os.Hostname,
		AdvertiseAddress: func() (net.IP, error) {
			f, err := os.Open("/proc/net/route")
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return DefaultRouteIPv4(f, interfaceAddrs)
		},
		SystemdResolvedActive: func() bool {
			// systemd-resolved writes this file on /run (a tmpfs) while it runs; kubeadm asks systemd instead,
			// which kubeboot cannot assume is PID 1.
			_, err := os.Stat(KubeletSystemdResolverConfig)
			return err == nil
		},
		Random: rand.Reader,
	}
}

func interfaceAddrs(name string) ([]net.Addr, error) {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	return iface.Addrs()
}

// DefaultRouteIPv4 returns the first global unicast IPv4 address of an interface that carries an IPv4 default
// route. routes is /proc/net/route; addrs lists an interface's addresses. Routes are tried lowest metric first.
func DefaultRouteIPv4(routes io.Reader, addrs func(iface string) ([]net.Addr, error)) (net.IP, error) {
	type route struct {
		iface  string
		metric int
	}
	var defaults []route
	sc := bufio.NewScanner(routes)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&0x1 == 0 { // RTF_UP
			continue
		}
		if f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		metric, _ := strconv.Atoi(f[6])
		r := route{f[0], metric}
		i := len(defaults)
		for i > 0 && defaults[i-1].metric > metric {
			i--
		}
		defaults = append(defaults[:i], append([]route{r}, defaults[i:]...)...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the routing table: %w", err)
	}
	if len(defaults) == 0 {
		return nil, errors.New("there is no IPv4 default route")
	}
	var tried []string
	for _, r := range defaults {
		as, err := addrs(r.iface)
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", r.iface, err)
		}
		for _, a := range as {
			var ip net.IP
			switch v := a.(type) {
			case *net.IPNet:
				ip = v.IP
			case *net.IPAddr:
				ip = v.IP
			}
			if ip4 := ip.To4(); ip4 != nil && ip4.IsGlobalUnicast() {
				return ip4, nil
			}
		}
		tried = append(tried, r.iface)
	}
	return nil, fmt.Errorf("no global unicast IPv4 address on the default-route interface(s) %s", strings.Join(tried, ", "))
}
