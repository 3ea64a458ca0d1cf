// protocol.js: what host.js and iframe.js must agree on (SPEC §9, §16): the
// message envelope, the id, token and API path rules. Both import it from
// here, their sibling under /ext-sdk/v1/ (plain ES module, no
// dependencies), so the two sides of the bridge can never disagree on which
// messages they accept or which paths reach the gateway (api.fetch in the
// iframe, apiproxy in the host).

/** Version of the message protocol carried in every envelope. */
export const PROTOCOL_VERSION = "1";

// Manifest name rule (SPEC §4): reverse-domain, lowercase, labels of [a-z0-9]
// with inner "-", at least two labels, at most 128 characters.
export const EXTENSION_ID_RE =
  /^(?=.{1,128}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/;
export const MAX_TOKEN_LENGTH = 16384;
export const MAX_REQUEST_ID_LENGTH = 128;

// CONTROL_RE matches the control characters no path or token may carry.
export const CONTROL_RE = /[\u0000-\u001f\u007f]/;
// MAX_PATH_LENGTH bounds API and UI paths.
export const MAX_PATH_LENGTH = 2048;

// validToken reports whether token can be a session token: a non-empty
// string without control characters, at most MAX_TOKEN_LENGTH long.
export function validToken(token) {
  return typeof token === "string" && token !== "" && token.length <= MAX_TOKEN_LENGTH && !CONTROL_RE.test(token);
}

// parseEnvelope returns the message if data is a valid protocol envelope, else
// null.
export function parseEnvelope(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) return null;
  if (data.alga !== true || data.version !== PROTOCOL_VERSION) return null;
  if (typeof data.type !== "string" || data.type === "") return null;
  if (
    data.request_id !== undefined &&
    (typeof data.request_id !== "string" || data.request_id.length > MAX_REQUEST_ID_LENGTH)
  ) {
    return null;
  }
  const payload = data.payload === undefined ? {} : data.payload;
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) return null;
  return { type: data.type, request_id: data.request_id, payload };
}

// checkApiPath returns "" for an acceptable API path, else the reason: the
// rule of api.fetch and of apiproxy (SPEC §9, §16), so a path the iframe SDK
// refuses is refused by the host too.
export function checkApiPath(path) {
  if (typeof path !== "string") return "must be a string";
  if (path.length > MAX_PATH_LENGTH) return "is too long";
  if (!path.startsWith("/")) return "must start with /";
  if (path.startsWith("//")) return "must not start with //";
  if (path.includes("\\") || CONTROL_RE.test(path)) return "must not contain a backslash or control characters";
  const cut = path.search(/[?#]/);
  const pathPart = cut < 0 ? path : path.slice(0, cut);
  if (pathPart.includes("://")) return "must not contain a scheme";
  let decoded;
  try {
    decoded = decodeURIComponent(pathPart);
  } catch {
    return "has invalid percent-encoding";
  }
  if (decoded.includes("\\") || CONTROL_RE.test(decoded)) return "must not contain an encoded backslash or control character";
  if (decoded.includes("://")) return "must not contain a scheme";
  const segs = decoded.split("/").slice(1);
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    if (seg === "." || seg === "..") return "must not contain . or .. segments";
    // A trailing slash is fine ("/items/"); an empty inner segment is not.
    if (seg === "" && i !== segs.length - 1) return "must not contain //";
  }
  return "";
}

// bytesToBase64 and base64ToBytes convert the protocol's body_b64 fields
// (apiproxy); base64ToBytes returns null for anything but valid base64.
export function bytesToBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function base64ToBytes(b64) {
  if (typeof b64 !== "string") return null;
  let s;
  try {
    s = atob(b64);
  } catch {
    return null;
  }
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
