package netplane

import "strings"

// Report says what a call changed in the kernel, as human-readable items
// ("bridge orch0", "n2: set route 10.213.6.0/24 via 10.213.6.0 onlink
// (missing)"). A Report with no items means the kernel already matched. It
// lists only changes that were made: when a call returns an error, the
// Report still holds what succeeded before or besides it.
type Report struct {
	// Created lists devices, addresses and attachments that did not exist.
	Created []string
	// Recreated lists devices that existed with settings that cannot be
	// changed in place (VXLAN VNI, port, local address, learning; a
	// device of the wrong type) and were deleted and created again.
	// Their routes, neighbours and FDB entries went with them.
	Recreated []string
	// Repaired lists attributes and entries that differed and were set
	// in place: MTU, MAC, up, addresses, sysctls, a peer's missing or
	// wrong route, neighbour or FDB entry, and stray entries removed.
	Repaired []string
	// PeersAdded lists peers none of whose entries existed.
	PeersAdded []string
	// PeersRemoved lists subnets (with the peer's name when this Plane
	// programmed it) whose entries were removed because no peer in the
	// list has them any more.
	PeersRemoved []string
}

// Empty reports whether r records no change.
func (r Report) Empty() bool {
	return len(r.Created)+len(r.Recreated)+len(r.Repaired)+len(r.PeersAdded)+len(r.PeersRemoved) == 0
}

// String lists the changes on one line, for logs; "no change" if none.
func (r Report) String() string {
	if r.Empty() {
		return "no change"
	}
	var parts []string
	for _, s := range []struct {
		name  string
		items []string
	}{
		{"created", r.Created},
		{"recreated", r.Recreated},
		{"repaired", r.Repaired},
		{"peers added", r.PeersAdded},
		{"peers removed", r.PeersRemoved},
	} {
		if len(s.items) > 0 {
			parts = append(parts, s.name+": "+strings.Join(s.items, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// repaired records one item in Repaired.
func (r *Report) repaired(item string) { r.Repaired = append(r.Repaired, item) }
