package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/orchproject/orch/dnsdisc"
)

// The benchmark's data: numServices services, service i having i%3+1
// replicas, all served under domain.
const (
	numServices = 100
	domain      = "orch"
)

// services returns the services both servers answer for. Addresses are
// 10.1.<i>.<slot+1>.
func services() []dnsdisc.Service {
	out := make([]dnsdisc.Service, 0, numServices)
	for i := range numServices {
		svc := dnsdisc.Service{Name: fmt.Sprintf("svc-%03d", i)}
		for slot := range i%3 + 1 {
			svc.Replicas = append(svc.Replicas, dnsdisc.Replica{
				Slot: slot,
				Addr: netip.AddrFrom4([4]byte{10, 1, byte(i), byte(slot + 1)}),
				Node: "n1",
			})
		}
		out = append(out, svc)
	}
	return out
}

// fqdn returns the name a service is asked as.
func fqdn(svc dnsdisc.Service) string { return svc.Name + ".svc." + domain }

// queryFile is dnsperf's input: one "name A" line per service.
func queryFile(svcs []dnsdisc.Service) string {
	var b strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&b, "%s A\n", fqdn(s))
	}
	return b.String()
}

// hostsFile is dnsmasq's --addn-hosts: one line per replica address, so
// that dnsmasq answers each name with all of its replicas, as orch does.
func hostsFile(svcs []dnsdisc.Service) string {
	var b strings.Builder
	for _, s := range svcs {
		for _, r := range s.Replicas {
			fmt.Fprintf(&b, "%s %s\n", r.Addr, fqdn(s))
		}
	}
	return b.String()
}
