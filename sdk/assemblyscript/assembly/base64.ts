// Standard base64 (RFC 4648, with padding) for the ABI's *_b64 fields.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Encodes bytes as padded standard base64. */
export function encodeBase64(b: Uint8Array): string {
  const n = b.length;
  const out = new Array<string>();
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (<u32>b[i] << 16) | (<u32>b[i + 1] << 8) | <u32>b[i + 2];
    out.push(ALPHABET.charAt(v >> 18) + ALPHABET.charAt((v >> 12) & 63) + ALPHABET.charAt((v >> 6) & 63) + ALPHABET.charAt(v & 63));
  }
  if (i + 1 == n) {
    const v = <u32>b[i] << 16;
    out.push(ALPHABET.charAt(v >> 18) + ALPHABET.charAt((v >> 12) & 63) + "==");
  } else if (i + 2 == n) {
    const v = (<u32>b[i] << 16) | (<u32>b[i + 1] << 8);
    out.push(ALPHABET.charAt(v >> 18) + ALPHABET.charAt((v >> 12) & 63) + ALPHABET.charAt((v >> 6) & 63) + "=");
  }
  return out.join("");
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
