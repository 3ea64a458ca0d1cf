//go:build !wasip1

package guest

import "sync/atomic"

// Outside wasm there is no 32-bit linear memory, so buffers get synthetic
// addresses: increasing, 8-aligned, with a gap between buffers so an
// off-by-one read never lands in a neighbour.
var nextAddress atomic.Uint32

func init() { nextAddress.Store(0x10000) }

func addressOf(b []byte) uint32 {
	size := (uint32(len(b)) + 15) &^ 7
	return nextAddress.Add(size) - size
}
