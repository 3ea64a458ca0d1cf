//go:build wasip1

package guest

import "unsafe"

//go:wasmexport alloc
func wasmAlloc(size int32) int32 { return abiAlloc(size) }

//go:wasmexport dealloc
func wasmDealloc(ptr, size int32) { abiDealloc(ptr, size) }

//go:wasmexport handler
func wasmHandler(reqPtr, reqLen, outPtr int32) int32 {
	return abiHandler(reqPtr, reqLen, outPtr)
}

// addressOf is the linear-memory address of b's first byte.
func addressOf(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }
