// Buffers handed to the host. Every buffer from alloc stays in `live`
// (a GC root) until dealloc or until the SDK takes a host reply back, so no
// collection frees memory the host still reads or writes.

const live = new Map<usize, ArrayBuffer>();

/** Allocates a zeroed buffer of size bytes for the host; 0 for a negative size. */
export function allocBuffer(size: i32): usize {
  if (size < 0) return 0;
  const buf = new ArrayBuffer(size);
  const ptr = changetype<usize>(buf);
  live.set(ptr, buf);
  return ptr;
}

/** Forgets the buffer at ptr; unknown pointers are ignored (double dealloc must not trap). */
export function freeBuffer(ptr: usize): void {
  if (live.has(ptr)) live.delete(ptr);
}

/** The live buffer starting at ptr with at least len bytes, or null. */
export function liveBuffer(ptr: usize, len: usize): ArrayBuffer | null {
  if (!live.has(ptr)) return null;
  const buf = live.get(ptr);
  return <usize>buf.byteLength >= len ? buf : null;
}

/**
 * Takes back a buffer the host filled through alloc: the len bytes at ptr,
 * which must start a live buffer. The buffer is released to the collector.
 */
export function takeBuffer(ptr: usize, len: usize): ArrayBuffer | null {
  const buf = liveBuffer(ptr, len);
  if (buf == null) return null;
  live.delete(ptr);
  return <usize>buf.byteLength == len ? buf : buf.slice(0, <i32>len);
}

/** How many buffers are held for the host (for leak tests). */
export function liveBuffers(): i32 { return live.size; }

/** Keeps an encoded response alive until the host's dealloc; returns its address. */
export function keepBuffer(buf: ArrayBuffer): usize {
  const ptr = changetype<usize>(buf);
  live.set(ptr, buf);
  return ptr;
}
