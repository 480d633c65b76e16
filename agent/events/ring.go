package events

// ring is a FIFO of at most limit values in a circular buffer that grows on
// demand, so a bus or subscription that sees few events holds little
// memory. It is not safe for concurrent use; its owner locks around it.
type ring[T any] struct {
	buf   []T
	head  int // index in buf of the oldest value
	n     int // number of values held
	limit int // most values held; also the largest allocation
}

// ringMinAlloc is the first allocation of a ring's buffer: small enough for
// an idle subscription, large enough to skip the tiniest doublings.
const ringMinAlloc = 16

func newRing[T any](limit int) ring[T] {
	return ring[T]{limit: limit}
}

// len returns the number of values held.
func (r *ring[T]) len() int { return r.n }

// full reports whether the ring holds limit values.
func (r *ring[T]) full() bool { return r.n == r.limit }

// at returns a pointer to the i-th oldest value, 0 <= i < len. The pointer
// is valid until the next push or pop.
func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)%len(r.buf)] }

// push appends v. If the ring is full, it evicts and returns the oldest
// value.
func (r *ring[T]) push(v T) (old T, evicted bool) {
	if r.n == len(r.buf) {
		if len(r.buf) < r.limit {
			r.grow()
		} else {
			old = r.buf[r.head]
			r.buf[r.head] = v
			r.head = (r.head + 1) % len(r.buf)
			return old, true
		}
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
	return old, false
}

// pop removes the oldest value. The ring must not be empty.
func (r *ring[T]) pop() {
	var zero T
	r.buf[r.head] = zero // let the garbage collector have it
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

func (r *ring[T]) grow() {
	nb := make([]T, min(max(2*len(r.buf), ringMinAlloc), r.limit))
	for i := range r.n {
		nb[i] = *r.at(i)
	}
	r.buf = nb
	r.head = 0
}
