// extedge host bridge, SDK v1 (SPEC §9).
//
// The PSA page imports this module to embed an extension's iframe UI:
//
//   import { mountExtension } from "/ext-sdk/v1/host.js";
//   const handle = mountExtension({
//     container: document.getElementById("ext"),
//     extensionId: "com.acme.agreements",
//     contentHash: "sha256:…",
//     gatewayBase: "https://psa.example.com",     // API origin (/api/ext)
//     uiBase: "https://ext-ui.psa-content.net",   // cookieless UI origin (/ext-ui)
//     getToken: async () => ({ token, expires_at }),
//     apiProxy: true, // the iframe gets no token; the host calls the API for it
//     themeTokens: { "primary-color": "#0055aa" },
//     onNavigate: (path) => router.push(`/ext/acme${path}`),
//   });
//
// The iframe is sandboxed with "allow-scripts" only, so its document has an
// opaque origin: it cannot read the PSA's cookies, storage or DOM, and the PSA
// talks to it only through postMessage. The host accepts a message only when
// it comes from that iframe's own window, and sends the session token only to
// that window, only after the window said "ready" — or, with apiProxy, never
// sends it and performs the extension's API calls itself (SPEC §16). See
// README.md.
//
// Plain ES module, no build step, no dependencies beyond its sibling
// protocol.js (the rules both sides of the bridge share). Importing it touches no DOM,
// so it is safe to import during server-side rendering.

import { PROTOCOL_VERSION, EXTENSION_ID_RE, CONTROL_RE, MAX_PATH_LENGTH, parseEnvelope, checkApiPath, validToken, bytesToBase64, base64ToBytes } from "./protocol.js";

export { PROTOCOL_VERSION };

/** Smallest iframe height, in CSS pixels, that a resize request can set. */
export const MIN_HEIGHT = 100;

/** Largest iframe height, in CSS pixels, that a resize request can set. */
export const MAX_HEIGHT = 4000;

/** The value of the iframe's sandbox attribute. Never add allow-same-origin. */
export const SANDBOX = "allow-scripts";

// Content hash rule (SPEC §2.2).
const CONTENT_HASH_RE = /^sha256:[0-9a-f]{64}$/;
const SCHEME_RE = /^[a-zA-Z][a-zA-Z0-9+.-]*:/;

// Refresh timing. The host refreshes the session min(60 s, lifetime/2) before
// expires_at; the iframe asks for a refresh (session_expiring) only later, at
// min(30 s, lifetime/4) before expiry, so it is a fallback, not a race.
const REFRESH_LEAD_MS = 60_000;
const MIN_TIMER_MS = 1_000;
// setTimeout fires at once for delays over 2^31-1 ms; long-lived tokens are
// simply refreshed after a day.
const MAX_TIMER_MS = 86_400_000;
// After a failed getToken the host retries after 5 s, doubling up to 60 s.
const RETRY_FIRST_MS = 5_000;
const RETRY_MAX_MS = 60_000;
const DEFAULT_READY_TIMEOUT_MS = 15_000;

// apiproxy bounds (SPEC §16). The header allowlist is the gateway's CORS
// allowlist for browsers (caddymodule corsAllowedHeaders) without
// Authorization, which only the host sets; names starting with "x-ext-" are
// allowed too, as the gateway allows them.
const PROXY_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);
const PROXY_HEADERS = new Set([
  "accept",
  "accept-language",
  "content-type",
  "if-none-match",
  "if-modified-since",
  "x-request-id",
  "x-idempotency-key",
  "idempotency-key",
]);
const PROXY_HEADER_PREFIX = "x-ext-";
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9a-z-]{1,64}$/;
const MAX_PROXY_HEADERS = 32;
const MAX_PROXY_HEADER_VALUE = 4096;
/** Largest request body, in bytes, an apiproxy request may carry. */
export const MAX_PROXY_BODY_BYTES = 1 << 20;
/** Largest response body, in bytes, the host relays to the iframe. */
export const MAX_PROXY_RESPONSE_BYTES = 8 << 20;
/** Most apiproxy requests one mounted iframe may have in flight. */
export const MAX_PROXY_IN_FLIGHT = 16;
const DEFAULT_PROXY_TIMEOUT_MS = 30_000;

const IFRAME_TO_HOST_TYPES = new Set(["ready", "resize", "navigate", "session_expiring", "apiproxy"]);

/**
 * Reports whether id is a valid extension id (the manifest name rule).
 * @param {unknown} id
 * @returns {boolean}
 */
export function isValidExtensionId(id) {
  return typeof id === "string" && EXTENSION_ID_RE.test(id);
}

/**
 * Reports whether hash is a valid content hash: "sha256:" and 64 lowercase
 * hex digits.
 * @param {unknown} hash
 * @returns {boolean}
 */
export function isValidContentHash(hash) {
  return typeof hash === "string" && CONTENT_HASH_RE.test(hash);
}

/**
 * Builds the URL of an extension's UI page:
 * `${base}/ext-ui/${extensionId}/${contentHash}/${path}`.
 *
 * base is the gateway's absolute http(s) URL (trailing slashes are dropped).
 * path is relative to the bundle's ui/ directory; one leading "/" is dropped,
 * an empty path serves the manifest's ui.entry, and a query or fragment is
 * kept. Throws a TypeError for an invalid extension id, a content hash that is
 * not `sha256:` + 64 lowercase hex digits, or a path that contains `..` or `.`
 * segments (also percent-encoded), hidden segments, empty segments, a
 * backslash, control characters, a scheme or a leading `//`.
 *
 * @param {string} base
 * @param {string} extensionId
 * @param {string} contentHash
 * @param {string} [path]
 * @returns {string}
 */
export function buildExtUiSrc(base, extensionId, contentHash, path = "") {
  const b = normalizeBase(base);
  if (!isValidExtensionId(extensionId)) {
    throw new TypeError(`alga: invalid extension id ${JSON.stringify(String(extensionId))}`);
  }
  if (!isValidContentHash(contentHash)) {
    throw new TypeError(
      `alga: invalid content hash ${JSON.stringify(String(contentHash))}: want sha256: and 64 lowercase hex digits`,
    );
  }
  return `${b}/ext-ui/${extensionId}/${contentHash}/${cleanUiPath(path)}`;
}

/**
 * Mounts an extension's iframe UI into container and connects the bridge.
 *
 * Options:
 * - container (Element, required): the iframe is appended to it.
 * - extensionId, contentHash (required): see buildExtUiSrc.
 * - gatewayBase (required): absolute http(s) URL of the extedge gateway's API
 *   (/api/ext). Sent to the iframe as gateway_base.
 * - uiBase (optional): absolute http(s) URL the iframe's page is loaded from
 *   (/ext-ui), i.e. the gateway's dedicated, cookieless `ui_host` origin
 *   (SPEC §16). Default: gatewayBase.
 * - getToken (required): `() => {token, expires_at} | Promise<…>`. token is the
 *   bearer token the iframe sends to /api/ext/{extensionId}/…; it should be a
 *   short-lived token scoped to this extension (an `ext` claim). expires_at is
 *   an ISO 8601 string, a Date, or a number of epoch seconds (like a JWT exp).
 *   It is called at mount, before expiry, and when the iframe reports
 *   session_expiring.
 * - themeTokens (object, optional): flat map of theme token name → value.
 * - onNavigate (function, optional): called with the path ("/…") the
 *   extension asks the host to navigate to.
 * - path (string, optional): initial UI path, relative to ui/ (default: the
 *   entry). Also sent to the iframe as navigation.path ("/" + path).
 * - onError (function, optional): called with an Error when getToken fails or
 *   returns an invalid session, or when the iframe sends no "ready" in time.
 *   Its `code` is "token_failed", "invalid_session" or "ready_timeout".
 * - readyTimeoutMs (number, optional): default 15000; 0 disables the check.
 * - title (string, optional): the iframe's accessible title.
 * - apiProxy (boolean, optional, default false): answer the iframe's
 *   "apiproxy" requests by calling `${gatewayBase}/api/ext/${extensionId}${path}`
 *   with the current token (SPEC §16). Off by default: it is a new capability
 *   of the host page, granted per mount. When off, apiproxy requests are
 *   answered with the error "apiproxy_disabled".
 * - shareToken (boolean, optional, default !apiProxy): send the session token
 *   to the iframe (bootstrap.session and "session" messages). With apiProxy
 *   the default is false, so the extension's code never holds a token;
 *   shareToken false without apiProxy is a TypeError (the iframe could not
 *   call its API at all).
 * - apiProxyTimeoutMs (number, optional, default 30000): an apiproxy call
 *   still running after this long is aborted and answered with "timeout".
 *
 * Returns `{iframe, setThemeTokens(tokens), unmount()}`. setThemeTokens
 * re-sends theme_tokens when the tokens changed and returns whether they did.
 * unmount removes the iframe, the message listener and every timer, and
 * aborts the apiproxy calls in flight without answering them; it is
 * idempotent. Throws a TypeError synchronously for invalid options.
 *
 * @param {object} options
 * @returns {{iframe: HTMLIFrameElement, setThemeTokens: (tokens: object) => boolean, unmount: () => void}}
 */
export function mountExtension(options) {
  const {
    container,
    extensionId,
    contentHash,
    gatewayBase,
    getToken,
    themeTokens = {},
    onNavigate,
    path = "",
    onError,
    readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS,
    title,
    uiBase,
    apiProxy = false,
    shareToken = !apiProxy,
    apiProxyTimeoutMs = DEFAULT_PROXY_TIMEOUT_MS,
  } = options ?? {};
  if (!container || typeof container.appendChild !== "function") {
    throw new TypeError("alga: mountExtension: container must be a DOM element");
  }
  if (typeof getToken !== "function") {
    throw new TypeError("alga: mountExtension: getToken must be a function");
  }
  if (onNavigate !== undefined && typeof onNavigate !== "function") {
    throw new TypeError("alga: mountExtension: onNavigate must be a function");
  }
  if (onError !== undefined && typeof onError !== "function") {
    throw new TypeError("alga: mountExtension: onError must be a function");
  }
  if (typeof readyTimeoutMs !== "number" || !(readyTimeoutMs >= 0)) {
    throw new TypeError("alga: mountExtension: readyTimeoutMs must be a non-negative number");
  }
  if (typeof apiProxy !== "boolean" || typeof shareToken !== "boolean") {
    throw new TypeError("alga: mountExtension: apiProxy and shareToken must be booleans");
  }
  if (!apiProxy && !shareToken) {
    throw new TypeError("alga: mountExtension: shareToken false needs apiProxy true, or the iframe cannot call its API");
  }
  if (typeof apiProxyTimeoutMs !== "number" || !(apiProxyTimeoutMs > 0)) {
    throw new TypeError("alga: mountExtension: apiProxyTimeoutMs must be a positive number");
  }
  const base = normalizeBase(gatewayBase);
  const ui = uiBase === undefined ? base : normalizeBase(uiBase, "UI base");
  const cleanPath = cleanUiPath(path);
  const src = buildExtUiSrc(ui, extensionId, contentHash, cleanPath);
  let theme = normalizeTheme(themeTokens);

  // The iframe's messages arrive at the window that owns the container.
  const doc = container.ownerDocument || document;
  const hostWindow = doc.defaultView || window;
  const iframe = doc.createElement("iframe");
  iframe.setAttribute("sandbox", SANDBOX);
  iframe.setAttribute("referrerpolicy", "no-referrer");
  iframe.setAttribute("title", typeof title === "string" && title ? title : `Extension ${extensionId}`);
  iframe.style.display = "block";
  iframe.style.width = "100%";
  iframe.style.border = "0";
  iframe.style.height = `${MIN_HEIGHT}px`;
  iframe.src = src;

  let disposed = false;
  let readySeen = false; // a "ready" came from the iframe's window
  let bootstrapped = false; // bootstrap was posted to it
  let session = null; // {token, expiresAtMs, receivedAtMs}
  let refreshing = null; // Promise of the getToken call in flight
  let retryDelayMs = RETRY_FIRST_MS;
  let refreshTimer = 0;
  let readyTimer = 0;
  // apiproxy calls in flight: request_id → {controller, timer}. At most
  // MAX_PROXY_IN_FLIGHT; each ends by its reply, its timeout, a new "ready"
  // (a new document must not get the old one's replies) or unmount.
  const proxyCalls = new Map();

  const reportError = (code, message, cause) => {
    if (disposed || !onError) return;
    const err = new Error(`alga: ${message}`, cause === undefined ? undefined : { cause });
    err.code = code;
    try {
      onError(err);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  };

  const post = (type, payload, requestId) => {
    const win = iframe.contentWindow;
    if (disposed || !win) return;
    const msg = { alga: true, version: PROTOCOL_VERSION, type, payload };
    if (requestId !== undefined) msg.request_id = requestId;
    // The sandboxed document's origin is opaque ("null") whatever uiBase is,
    // so no target origin can name it (uiBase's origin would never match and
    // the message would be dropped); the message goes to this exact window
    // object instead.
    win.postMessage(msg, "*");
  };

  const wireSession = () => ({ token: session.token, expires_at: new Date(session.expiresAtMs).toISOString() });

  const schedule = (delayMs) => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      refreshTimer = 0;
      refresh();
    }, Math.min(MAX_TIMER_MS, Math.max(MIN_TIMER_MS, delayMs)));
  };

  // refresh calls getToken once (concurrent callers share the call), stores
  // the session, posts it to the iframe if it is bootstrapped, and schedules
  // the next refresh. It never rejects.
  const refresh = () => {
    if (refreshing) return refreshing;
    clearTimeout(refreshTimer);
    refreshTimer = 0;
    refreshing = (async () => {
      let raw;
      try {
        raw = await getToken();
      } catch (e) {
        return fail("token_failed", `getToken failed: ${e && e.message ? e.message : e}`, e);
      }
      if (disposed) return;
      const s = parseSession(raw, Date.now());
      if (typeof s === "string") return fail("invalid_session", `getToken returned ${s}`);
      session = s;
      retryDelayMs = RETRY_FIRST_MS;
      const lifetime = s.expiresAtMs - s.receivedAtMs;
      schedule(s.expiresAtMs - Math.min(REFRESH_LEAD_MS, lifetime / 2) - Date.now());
      if (bootstrapped) {
        if (shareToken) post("session", wireSession());
      } else if (readySeen) postBootstrap();
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  };

  const fail = (code, message, cause) => {
    if (disposed) return;
    reportError(code, message, cause);
    schedule(retryDelayMs);
    retryDelayMs = Math.min(RETRY_MAX_MS, retryDelayMs * 2);
  };

  // postBootstrap sends the bootstrap message with the current session (null
  // without shareToken); the caller has checked that a "ready" arrived from
  // the iframe's window.
  const postBootstrap = () => {
    if (disposed || (shareToken && !session)) return;
    bootstrapped = true;
    post("bootstrap", {
      session: shareToken ? wireSession() : null,
      theme_tokens: { ...theme },
      navigation: { path: "/" + cleanPath },
      gateway_base: base,
      extension_id: extensionId,
    });
  };

  const onMessage = (event) => {
    if (disposed) return;
    const win = iframe.contentWindow;
    // Only the iframe's own window may talk to this bridge. Its origin is
    // opaque because of the sandbox; anything else means it is not our frame.
    if (!win || event.source !== win || event.origin !== "null") return;
    const msg = parseEnvelope(event.data);
    if (!msg || !IFRAME_TO_HOST_TYPES.has(msg.type)) return;
    switch (msg.type) {
      case "ready":
        // Also after a reload of the iframe's document: it gets a fresh
        // bootstrap, never a bare session message.
        readySeen = true;
        bootstrapped = false;
        abortProxyCalls();
        clearTimeout(readyTimer);
        readyTimer = 0;
        // A valid session goes out now; otherwise the refresh in flight (or
        // the one started here) bootstraps the iframe when it succeeds. A
        // bootstrap without a token needs no session.
        if (!shareToken || (session && session.expiresAtMs > Date.now())) postBootstrap();
        else refresh();
        return;
      case "resize": {
        const h = msg.payload && msg.payload.height;
        if (typeof h !== "number" || !Number.isFinite(h)) return;
        const clamped = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.ceil(h)));
        iframe.style.height = `${clamped}px`;
        return;
      }
      case "navigate": {
        const p = msg.payload && msg.payload.path;
        if (!onNavigate || checkNavigationPath(p) !== "") return;
        try {
          onNavigate(p);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
        return;
      }
      case "session_expiring": {
        if (!readySeen || refreshing) return;
        // Honoured only when the host's own refresh is due (it failed or its
        // timer was throttled): a fresh token is not refreshed again, so a
        // misbehaving iframe cannot make the host call getToken in a loop.
        if (session) {
          const lifetime = session.expiresAtMs - session.receivedAtMs;
          if (session.expiresAtMs - Date.now() > Math.min(REFRESH_LEAD_MS, lifetime / 2)) return;
        }
        refresh();
        return;
      }
      case "apiproxy":
        startProxyCall(msg.request_id, msg.payload);
        return;
    }
  };

  // currentToken returns a valid token for an apiproxy call, refreshing the
  // session when it is missing or expired, or null.
  const currentToken = async () => {
    const valid = () => session !== null && session.expiresAtMs > Date.now();
    if (!valid()) await refresh();
    return !disposed && valid() ? session.token : null;
  };

  // startProxyCall checks one apiproxy request and performs it; the answer is
  // exactly one apiproxy_response with the same request_id, unless the
  // iframe's document changed or the mount was removed meanwhile. A request
  // without a request_id cannot be answered and is ignored.
  const startProxyCall = (requestId, payload) => {
    if (typeof requestId !== "string" || requestId === "") return;
    const refuse = (error, message) => post("apiproxy_response", { error, message }, requestId);
    if (!apiProxy) return refuse("apiproxy_disabled", "this host does not proxy API calls (mountExtension apiProxy)");
    if (!bootstrapped) return refuse("not_ready", "apiproxy before bootstrap");
    if (proxyCalls.has(requestId)) return refuse("invalid_request", "request_id is already in flight");
    if (proxyCalls.size >= MAX_PROXY_IN_FLIGHT) {
      return refuse("too_many_requests", `at most ${MAX_PROXY_IN_FLIGHT} apiproxy calls in flight`);
    }
    const req = parseProxyRequest(payload);
    if (req.error) return refuse(req.error, req.message);

    const call = { controller: new AbortController(), timer: 0 };
    const finish = (reply) => {
      if (proxyCalls.get(requestId) !== call) return; // timed out, aborted or unmounted
      proxyCalls.delete(requestId);
      clearTimeout(call.timer);
      post("apiproxy_response", reply, requestId);
    };
    call.timer = setTimeout(() => {
      finish({ error: "timeout", message: `no response within ${apiProxyTimeoutMs} ms` });
      call.controller.abort();
    }, apiProxyTimeoutMs);
    proxyCalls.set(requestId, call);

    (async () => {
      const token = await currentToken();
      if (!token) return finish({ error: "token_unavailable", message: "getToken gave no valid session" });
      const headers = new Headers(req.headers);
      headers.set("Authorization", `Bearer ${token}`);
      let res;
      try {
        res = await fetch(`${base}/api/ext/${extensionId}${req.path}`, {
          method: req.method,
          headers,
          body: req.body,
          // Never the PSA's cookies: the gateway often shares its origin.
          credentials: "omit",
          mode: "cors",
          // A redirect is not followed from the PSA's origin on the
          // extension's behalf; the iframe gets an error instead.
          redirect: "manual",
          referrerPolicy: "no-referrer",
          cache: "no-store",
          signal: call.controller.signal,
        });
      } catch (e) {
        return finish({ error: "network_error", message: String(e && e.message ? e.message : e) });
      }
      if (res.type === "opaqueredirect") return finish({ error: "redirect", message: "the gateway answered with a redirect" });
      let body;
      try {
        body = await readBodyCapped(res, MAX_PROXY_RESPONSE_BYTES);
      } catch (e) {
        return finish({ error: "network_error", message: String(e && e.message ? e.message : e) });
      }
      if (!body) return finish({ error: "response_too_large", message: `response body over ${MAX_PROXY_RESPONSE_BYTES} bytes` });
      const outHeaders = {};
      for (const [k, v] of res.headers) if (k !== "set-cookie" && k !== "set-cookie2") outHeaders[k] = v;
      finish({ status: res.status, headers: outHeaders, body_b64: bytesToBase64(body) });
    })();
  };

  // abortProxyCalls ends every apiproxy call without answering it.
  const abortProxyCalls = () => {
    const calls = [...proxyCalls.values()];
    proxyCalls.clear();
    for (const call of calls) {
      clearTimeout(call.timer);
      call.controller.abort();
    }
  };

  hostWindow.addEventListener("message", onMessage);
  if (readyTimeoutMs > 0) {
    readyTimer = setTimeout(() => {
      readyTimer = 0;
      if (!readySeen) reportError("ready_timeout", `extension ${extensionId} sent no ready within ${readyTimeoutMs} ms`);
    }, readyTimeoutMs);
  }
  // Fetch the first token while the iframe loads.
  refresh();
  container.appendChild(iframe);

  return {
    iframe,
    setThemeTokens(tokens) {
      if (disposed) return false;
      const next = normalizeTheme(tokens);
      if (sameTheme(theme, next)) return false;
      theme = next;
      if (bootstrapped) post("theme_tokens", { theme_tokens: { ...theme } });
      return true;
    },
    unmount() {
      if (disposed) return;
      disposed = true;
      hostWindow.removeEventListener("message", onMessage);
      abortProxyCalls();
      clearTimeout(refreshTimer);
      clearTimeout(readyTimer);
      refreshTimer = 0;
      readyTimer = 0;
      iframe.remove();
    },
  };
}


// parseProxyRequest checks an apiproxy payload {method, path, headers,
// body_b64} and returns {method, path, headers, body} (headers a plain object
// of lowercase names, body a Uint8Array or undefined), or {error, message}.
function parseProxyRequest(p) {
  const bad = (error, message) => ({ error, message });
  const method = typeof p.method === "string" ? p.method.toUpperCase() : p.method === undefined ? "GET" : null;
  if (!PROXY_METHODS.has(method)) return bad("invalid_method", `method ${JSON.stringify(String(p.method))} is not one of ${[...PROXY_METHODS].join(", ")}`);
  const why = checkApiPath(p.path);
  if (why) return bad("invalid_path", `path ${JSON.stringify(String(p.path))} ${why}`);
  const raw = p.headers === undefined || p.headers === null ? {} : p.headers;
  if (typeof raw !== "object" || Array.isArray(raw)) return bad("invalid_request", "headers must be an object");
  const entries = Object.entries(raw);
  if (entries.length > MAX_PROXY_HEADERS) return bad("invalid_request", `more than ${MAX_PROXY_HEADERS} headers`);
  const headers = {};
  for (const [k, v] of entries) {
    const name = k.toLowerCase();
    if (!HEADER_NAME_RE.test(name) || !(PROXY_HEADERS.has(name) || name.startsWith(PROXY_HEADER_PREFIX))) {
      return bad("forbidden_header", `header ${JSON.stringify(k)} is not allowed`);
    }
    if (typeof v !== "string" || v.length > MAX_PROXY_HEADER_VALUE || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(v)) {
      return bad("invalid_request", `header ${JSON.stringify(k)} has an invalid value`);
    }
    headers[name] = v;
  }
  let body;
  if (p.body_b64 !== undefined && p.body_b64 !== null) {
    if (typeof p.body_b64 !== "string") return bad("invalid_request", "body_b64 must be a string");
    if (p.body_b64.length > Math.ceil(MAX_PROXY_BODY_BYTES / 3) * 4) {
      return bad("body_too_large", `body over ${MAX_PROXY_BODY_BYTES} bytes`);
    }
    body = base64ToBytes(p.body_b64);
    if (!body) return bad("invalid_request", "body_b64 is not base64");
    if (body.length > MAX_PROXY_BODY_BYTES) return bad("body_too_large", `body over ${MAX_PROXY_BODY_BYTES} bytes`);
    if (method === "GET" || method === "HEAD") return bad("invalid_request", `a ${method} request has no body`);
  }
  return { method, path: p.path, headers, body };
}

// readBodyCapped reads a response body into a Uint8Array, or returns null
// (and cancels the stream) when it is longer than max bytes.
async function readBodyCapped(res, max) {
  const declared = Number(res.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > max) {
    if (res.body) res.body.cancel().catch(() => {});
    return null;
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// parseSession validates a getToken result and returns
// {token, expiresAtMs, receivedAtMs}, or a string that says what is wrong.
function parseSession(raw, nowMs) {
  if (raw === null || typeof raw !== "object") return "no {token, expires_at} object";
  const { token, expires_at: exp } = raw;
  if (!validToken(token)) {
    return "an invalid token";
  }
  const expiresAtMs = parseExpiry(exp);
  if (expiresAtMs === null) return "an invalid expires_at (want an ISO 8601 string, a Date or epoch seconds)";
  if (expiresAtMs <= nowMs) return "an expired session";
  return { token, expiresAtMs, receivedAtMs: nowMs };
}

// parseExpiry converts an ISO 8601 string, a Date or epoch seconds to epoch
// milliseconds, or returns null.
function parseExpiry(exp) {
  let ms = NaN;
  if (typeof exp === "number") ms = exp * 1000;
  else if (exp instanceof Date) ms = exp.getTime();
  else if (typeof exp === "string" && exp !== "") ms = Date.parse(exp);
  return Number.isFinite(ms) ? ms : null;
}

// normalizeBase checks an absolute http(s) base URL without query or
// credentials and returns it without trailing slashes; what names it in the
// TypeError.
function normalizeBase(base, what = "gateway base") {
  if (typeof base !== "string" || base === "") {
    throw new TypeError(`alga: ${what} must be an absolute http(s) URL`);
  }
  let u;
  try {
    u = new URL(base);
  } catch {
    throw new TypeError(`alga: ${what} ${JSON.stringify(base)} is not an absolute URL`);
  }
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.search || u.hash || u.username || u.password) {
    throw new TypeError(`alga: ${what} ${JSON.stringify(base)} must be an http(s) URL without query or credentials`);
  }
  return (u.origin + u.pathname).replace(/\/+$/, "");
}

// cleanUiPath validates a UI path (relative to ui/) and returns it without its
// leading "/"; it throws a TypeError for unsafe paths.
function cleanUiPath(path) {
  if (typeof path !== "string") throw new TypeError("alga: UI path must be a string");
  if (path.length > MAX_PATH_LENGTH) throw new TypeError("alga: UI path is too long");
  const bad = (why) => new TypeError(`alga: UI path ${JSON.stringify(path)} ${why}`);
  if (path.startsWith("//")) throw bad("must not start with //");
  if (SCHEME_RE.test(path)) throw bad("must not have a scheme");
  if (path.includes("\\")) throw bad("must not contain a backslash");
  if (CONTROL_RE.test(path)) throw bad("must not contain control characters");
  const p = path.startsWith("/") ? path.slice(1) : path;
  const cut = p.search(/[?#]/);
  const pathPart = cut < 0 ? p : p.slice(0, cut);
  if (pathPart === "") return p;
  let decoded;
  try {
    decoded = decodeURIComponent(pathPart);
  } catch {
    throw bad("has invalid percent-encoding");
  }
  if (decoded.includes("\\") || CONTROL_RE.test(decoded)) throw bad("must not contain an encoded backslash or control character");
  for (const seg of decoded.split("/")) {
    if (seg === "") throw bad("must not contain empty segments");
    if (seg.startsWith(".")) throw bad("must not contain ., .. or hidden segments");
  }
  return p;
}

// checkNavigationPath returns "" when p is an acceptable navigate path ("/…",
// not "//", no scheme, backslash or control characters), else the reason.
function checkNavigationPath(p) {
  if (typeof p !== "string" || p.length > MAX_PATH_LENGTH) return "not a string of at most 2048 characters";
  if (!p.startsWith("/") || p.startsWith("//")) return "must start with a single /";
  if (p.includes("\\") || CONTROL_RE.test(p)) return "must not contain a backslash or control characters";
  return "";
}

// normalizeTheme copies a flat theme map, keeping string and finite number
// values as strings.
function normalizeTheme(tokens) {
  if (tokens === null || typeof tokens !== "object" || Array.isArray(tokens)) {
    throw new TypeError("alga: theme tokens must be a plain object");
  }
  const out = {};
  for (const [k, v] of Object.entries(tokens)) {
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" && Number.isFinite(v)) out[k] = String(v);
  }
  return out;
}

function sameTheme(a, b) {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}
