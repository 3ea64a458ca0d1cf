// Standard base64 (RFC 4648, with padding) for the ABI's *_b64 fields.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** The length of the padded base64 encoding of n bytes. */
export function base64Len(n: i32): i32 { return ((n + 2) / 3) * 4; }

/**
 * Writes the padded base64 encoding of the n bytes at src to dst (which
 * must have room for base64Len(n) bytes), without allocating.
 */
export function encodeBase64Into(src: usize, n: i32, dst: usize): void {
  const alphabet = changetype<usize>(ALPHABET); // UTF-16: 2 bytes per letter
  let i = 0;
  let o = dst;
  for (; i + 2 < n; i += 3) {
    const v = (<u32>load<u8>(src + i) << 16) | (<u32>load<u8>(src + i + 1) << 8) | <u32>load<u8>(src + i + 2);
    store<u8>(o, load<u16>(alphabet + ((v >> 18) << 1)));
    store<u8>(o + 1, load<u16>(alphabet + (((v >> 12) & 63) << 1)));
    store<u8>(o + 2, load<u16>(alphabet + (((v >> 6) & 63) << 1)));
    store<u8>(o + 3, load<u16>(alphabet + ((v & 63) << 1)));
    o += 4;
  }
  if (i < n) {
    const two = i + 1 < n;
    const v = (<u32>load<u8>(src + i) << 16) | (two ? <u32>load<u8>(src + i + 1) << 8 : 0);
    store<u8>(o, load<u16>(alphabet + ((v >> 18) << 1)));
    store<u8>(o + 1, load<u16>(alphabet + (((v >> 12) & 63) << 1)));
    store<u8>(o + 2, two ? <u8>load<u16>(alphabet + (((v >> 6) & 63) << 1)) : 0x3d);
    store<u8>(o + 3, 0x3d);
  }
}

/** Encodes bytes as padded standard base64. */
export function encodeBase64(b: Uint8Array): string {
  const n = base64Len(b.length);
  const buf = new ArrayBuffer(n);
  encodeBase64Into(b.dataStart, b.length, changetype<usize>(buf));
  return String.UTF8.decode(buf);
}

function sextet(c: i32): i32 {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26;
  if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52;
  if (c == 0x2b || c == 0x2d) return 62; // also accepts URL-safe
  if (c == 0x2f || c == 0x5f) return 63;
  return -1;
}

/** Decodes standard (or URL-safe) base64, padded or not; null when invalid. */
export function decodeBase64(s: string): Uint8Array | null {
  let n = s.length;
  while (n > 0 && s.charCodeAt(n - 1) == 0x3d) n--;
  if (n % 4 == 1) return null;
  const out = new Uint8Array((n * 3) >> 2);
  let acc: u32 = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const v = sextet(s.charCodeAt(i));
    if (v < 0) return null;
    acc = (acc << 6) | <u32>v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = <u8>((acc >> bits) & 0xff);
    }
  }
  return out;
}
