//go:build !linux || !(amd64 || arm64)

package dnsdisc

// serveUDPBatch is unavailable here: the reader takes one datagram at a
// time.
func (s *Server) serveUDPBatch(*listener) bool { return false }
