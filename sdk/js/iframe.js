// extedge iframe SDK, v1 (SPEC §9).
//
// An extension's UI page (served from /ext-ui/… inside a sandboxed iframe)
// imports this module to talk to the PSA host page and to call its own API
// handlers through the gateway:
//
//   import { connect, api, onTheme, navigate } from "/ext-sdk/v1/iframe.js";
//   const ctx = await connect();
//   const res = await api.fetch("/agreements?page=2");
//   onTheme((tokens) => render(tokens));
//   navigate("/agreements/42");
//
// connect() posts "ready" to the parent window and resolves with the bootstrap
// context the host sends back. The SDK accepts messages only from
// window.parent and only in the protocol's envelope. The bearer token lives in
// this module's memory only (never in storage or the DOM) and is replaced when
// the host sends a refreshed session. When the host sends no token (its
// apiProxy mode, SPEC §16), api.fetch asks the host to make the call
// ("apiproxy") and builds a Response from the answer. See README.md.
//
// Plain ES module, no build step, no dependencies beyond its sibling
// protocol.js (the rules both sides of the bridge share). Importing it touches no DOM.

import { PROTOCOL_VERSION, EXTENSION_ID_RE, CONTROL_RE, MAX_PATH_LENGTH, parseEnvelope, checkApiPath, validToken, bytesToBase64, base64ToBytes } from "./protocol.js";

export { PROTOCOL_VERSION };

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
// session_expiring goes out min(30 s, lifetime/4) before expires_at, later than
// the host's own refresh (min(60 s, lifetime/2) before), so it is a fallback.
const EXPIRING_LEAD_MS = 30_000;
// A resize waits for the next animation frame, or this long when frames are
// throttled (hidden or off-screen frames).
const RESIZE_FALLBACK_MS = 100;
const HOST_TO_IFRAME_TYPES = new Set(["bootstrap", "theme_tokens", "session", "apiproxy_response"]);
// apiproxy bounds; the host enforces its own (the same numbers) as well.
const MAX_PROXY_IN_FLIGHT = 16;
const MAX_PROXY_BODY_BYTES = 1 << 20;
const DEFAULT_PROXY_TIMEOUT_MS = 30_000;
// Statuses whose Response must have a null body.
const NULL_BODY_STATUSES = new Set([204, 205, 304]);

// Module state: one page talks to one host.
let connecting = null; // Promise of connect()
let settle = null; // {resolve, reject, timer} while connect() waits
let listening = false;
let context = null; // frozen bootstrap context (without the live session)
let session = null; // {token, expires_at, expiresAtMs, receivedAtMs}
let expiringTimer = 0;
let expiringSentFor = null; // token for which session_expiring was posted
let theme = {};
let appliedVars = new Set();
const themeListeners = new Set();
let expectedHostOrigin = null;
let observer = null;
let lastHeight = -1;
let resizeFrame = 0;
let resizeTimer = 0;
let forceProxy = false; // connect({apiProxy: true})
let proxyTimeoutMs = DEFAULT_PROXY_TIMEOUT_MS;
let proxySeq = 0;
// apiproxy requests waiting for the host: request_id → {resolve, reject, timer}.
const proxyPending = new Map();

/**
 * Connects to the host page. Posts "ready" to window.parent and resolves with
 * the bootstrap context, a frozen object
 * `{extension_id, gateway_base, navigation: {path}, theme_tokens, session: {token, expires_at}}`
 * (session is the initial one; getSession() returns the current one).
 *
 * Options:
 * - timeoutMs: reject when no bootstrap arrives in time (default 10000).
 * - autoResize: report the document height to the host whenever it changes,
 *   using a ResizeObserver on document.documentElement (default true).
 * - hostOrigin: when set, accept host messages only from this origin, in
 *   addition to the window.parent check.
 * - apiProxy: send api.fetch calls through the host ("apiproxy") even when
 *   the bootstrap carries a token (default false: the proxy is used only
 *   when it carries none).
 * - apiProxyTimeoutMs: reject an api.fetch through the host that got no
 *   answer within this many ms (default 30000).
 *
 * Calling connect() again returns the same promise; after a rejection a new
 * call tries again.
 *
 * @param {{timeoutMs?: number, autoResize?: boolean, hostOrigin?: string, apiProxy?: boolean, apiProxyTimeoutMs?: number}} [options]
 * @returns {Promise<object>}
 */
export function connect(options = {}) {
  if (connecting) return connecting;
  const {
    timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
    autoResize = true,
    hostOrigin,
    apiProxy = false,
    apiProxyTimeoutMs = DEFAULT_PROXY_TIMEOUT_MS,
  } = options;
  connecting = new Promise((resolve, reject) => {
    if (typeof window === "undefined" || window.parent === window) {
      reject(new Error("alga: connect: this page is not inside an iframe"));
      return;
    }
    if (hostOrigin !== undefined && typeof hostOrigin !== "string") {
      reject(new TypeError("alga: connect: hostOrigin must be a string"));
      return;
    }
    if (typeof apiProxy !== "boolean" || typeof apiProxyTimeoutMs !== "number" || !(apiProxyTimeoutMs > 0)) {
      reject(new TypeError("alga: connect: apiProxy must be a boolean and apiProxyTimeoutMs a positive number"));
      return;
    }
    expectedHostOrigin = hostOrigin ?? null;
    forceProxy = apiProxy;
    proxyTimeoutMs = apiProxyTimeoutMs;
    if (!listening) {
      window.addEventListener("message", onMessage);
      listening = true;
    }
    const timer = setTimeout(() => {
      settle = null;
      connecting = null;
      reject(new Error(`alga: connect: no bootstrap from the host within ${timeoutMs} ms`));
    }, timeoutMs);
    settle = {
      resolve: (ctx) => {
        clearTimeout(timer);
        settle = null;
        if (autoResize) startAutoResize();
        resolve(ctx);
      },
    };
    post("ready", {});
  });
  return connecting;
}

/** API calls to this extension's own handlers through the gateway. */
export const api = {
  /**
   * Calls `${gateway_base}/api/ext/${extension_id}${path}` with
   * `Authorization: Bearer <current token>` (replacing any Authorization in
   * init) and `credentials: "omit"`. Otherwise behaves like window.fetch.
   * Rejects with an Error when path does not start with "/", starts with
   * "//", has a scheme, contains "." or ".." segments (also percent-encoded),
   * empty segments, a backslash or control characters, or when connect() was
   * never called. Waits for a pending connect().
   *
   * When the host sent no token (or connect({apiProxy: true})), the call goes
   * through the host instead ("apiproxy"): init's method, headers (without
   * Authorization) and body (at most 1 MiB) are sent to the host, which calls
   * the same URL with the token; the result is a Response built from the
   * answer (its url is ""). It rejects with an Error whose code is the
   * host's error ("invalid_path", "forbidden_header", …), "timeout" or
   * "too_many_requests" (16 in flight).
   *
   * @param {string} path
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async fetch(path, init) {
    const why = checkApiPath(path);
    if (why) throw new Error(`alga: api.fetch: path ${JSON.stringify(String(path))} ${why}`);
    if (!context) {
      if (!connecting) throw new Error("alga: api.fetch: call connect() first");
      await connecting;
    }
    const opts = init ?? {};
    const url = `${context.gateway_base}/api/ext/${context.extension_id}${path}`;
    if (!session || forceProxy) return fetchViaHost(url, path, opts);
    const headers = new Headers(opts.headers);
    headers.set("Authorization", `Bearer ${session.token}`);
    return fetch(url, { ...opts, headers, credentials: "omit", mode: "cors" });
  },
};

// fetchViaHost performs api.fetch through the host's apiproxy bridge.
async function fetchViaHost(url, path, opts) {
  if (proxyPending.size >= MAX_PROXY_IN_FLIGHT) {
    throw proxyError("too_many_requests", `at most ${MAX_PROXY_IN_FLIGHT} apiproxy requests in flight`);
  }
  const requestId = `apiproxy-${++proxySeq}`;
  // The slot is taken before the body is read, so the bound holds for
  // concurrent callers too.
  const entry = { resolve: null, reject: null, timer: 0 };
  proxyPending.set(requestId, entry);
  let payload;
  try {
    // A Request serializes every BodyInit the way fetch would (and sets
    // content-type for strings, URLSearchParams, FormData and Blobs).
    const req = new Request(url, { method: opts.method ?? "GET", headers: opts.headers, body: opts.body });
    const headers = {};
    for (const [k, v] of req.headers) if (k !== "authorization") headers[k] = v;
    payload = { method: req.method, path, headers };
    if (req.body !== null) {
      const body = new Uint8Array(await req.arrayBuffer());
      if (body.length > MAX_PROXY_BODY_BYTES) throw proxyError("body_too_large", `body over ${MAX_PROXY_BODY_BYTES} bytes`);
      payload.body_b64 = bytesToBase64(body);
    }
  } catch (e) {
    proxyPending.delete(requestId);
    throw e;
  }
  const signal = opts.signal;
  return new Promise((resolve, reject) => {
    const done = () => {
      proxyPending.delete(requestId);
      clearTimeout(entry.timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal.reason ?? new DOMException("aborted", "AbortError"));
    };
    entry.resolve = (v) => {
      done();
      resolve(v);
    };
    entry.reject = (e) => {
      done();
      reject(e);
    };
    entry.timer = setTimeout(
      () => entry.reject(proxyError("timeout", `no apiproxy answer from the host within ${proxyTimeoutMs} ms`)),
      proxyTimeoutMs,
    );
    if (signal) {
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort);
    }
    post("apiproxy", payload, requestId);
  });
}

// settleProxy answers the pending api.fetch of an apiproxy_response.
function settleProxy(requestId, p) {
  const entry = proxyPending.get(requestId);
  if (!entry || !entry.resolve) return;
  if (typeof p.error === "string") {
    entry.reject(proxyError(p.error, typeof p.message === "string" ? p.message : "the host refused the call"));
    return;
  }
  const { status, headers } = p;
  const body = p.body_b64 === undefined || p.body_b64 === null ? new Uint8Array(0) : base64ToBytes(p.body_b64);
  if (!Number.isInteger(status) || status < 200 || status > 599 || !body) {
    entry.reject(proxyError("invalid_response", "the host sent an invalid apiproxy_response"));
    return;
  }
  try {
    const h = new Headers(headers && typeof headers === "object" && !Array.isArray(headers) ? headers : {});
    entry.resolve(new Response(NULL_BODY_STATUSES.has(status) ? null : body, { status, headers: h }));
  } catch (e) {
    entry.reject(proxyError("invalid_response", `the host sent an unusable apiproxy_response: ${e && e.message}`));
  }
}

function proxyError(code, message) {
  const err = new Error(`alga: api.fetch: apiproxy ${code}: ${message}`);
  err.code = code;
  return err;
}

/**
 * Subscribes to theme tokens. cb is called with a copy of the tokens when
 * they arrive (bootstrap or theme_tokens), and once soon after subscribing
 * when they are already known. The tokens are also applied, independently of
 * subscribers, as CSS custom properties on :root: the name is lowercased,
 * camelCase becomes kebab-case, every character outside [a-z0-9-] becomes
 * "-", leading and trailing dashes are dropped, and "--alga-" is prefixed
 * ("primaryColor" → --alga-primary-color). Tokens that disappear are removed.
 * Returns a function that unsubscribes.
 *
 * @param {(tokens: Record<string, string>) => void} cb
 * @returns {() => void}
 */
export function onTheme(cb) {
  if (typeof cb !== "function") throw new TypeError("alga: onTheme: callback must be a function");
  const entry = { cb };
  themeListeners.add(entry);
  if (context) {
    const snapshot = { ...theme };
    queueMicrotask(() => {
      if (themeListeners.has(entry)) callSafely(cb, snapshot);
    });
  }
  return () => themeListeners.delete(entry);
}

/**
 * Asks the host to navigate the PSA to path, which must start with a single
 * "/" and contain no backslash or control characters (throws a TypeError
 * otherwise). The host decides what the path maps to.
 *
 * @param {string} path
 */
export function navigate(path) {
  if (typeof path !== "string" || path.length > MAX_PATH_LENGTH) {
    throw new TypeError("alga: navigate: path must be a string of at most 2048 characters");
  }
  if (!path.startsWith("/") || path.startsWith("//") || path.includes("\\") || CONTROL_RE.test(path)) {
    throw new TypeError(`alga: navigate: path ${JSON.stringify(path)} must start with a single / and contain no backslash or control characters`);
  }
  post("navigate", { path });
}

/**
 * Reports a height to the host: height in CSS pixels, or the document's
 * current height when omitted. The host clamps it to [100, 4000].
 *
 * @param {number} [height]
 */
export function resize(height) {
  const h = height === undefined ? measureHeight() : height;
  if (typeof h !== "number" || !Number.isFinite(h)) {
    throw new TypeError("alga: resize: height must be a finite number");
  }
  post("resize", { height: Math.ceil(h) });
}

/**
 * Returns the current session `{token, expires_at}`, or null before connect()
 * resolved. Use it for transports api.fetch does not cover (EventSource URLs
 * must not carry it; prefer api.fetch).
 *
 * @returns {{token: string, expires_at: string|number} | null}
 */
export function getSession() {
  return session ? { token: session.token, expires_at: session.expires_at } : null;
}

function post(type, payload, requestId) {
  if (typeof window === "undefined" || window.parent === window) return;
  const msg = { alga: true, version: PROTOCOL_VERSION, type, payload };
  if (requestId !== undefined) msg.request_id = requestId;
  // The parent's origin is not known to a sandboxed page; nothing secret goes
  // out through these messages (apiproxy carries the extension's own request,
  // for the host to check).
  window.parent.postMessage(msg, "*");
}

function onMessage(event) {
  if (event.source !== window.parent || event.source === window) return;
  if (expectedHostOrigin !== null && event.origin !== expectedHostOrigin) return;
  const msg = parseEnvelope(event.data);
  if (!msg || !HOST_TO_IFRAME_TYPES.has(msg.type)) return;
  const p = msg.payload;
  switch (msg.type) {
    case "bootstrap": {
      // session null: the host keeps the token and proxies api.fetch.
      const tokenless = p.session === null;
      const s = tokenless ? null : parseSession(p.session);
      if (!s && !tokenless) return;
      if (!EXTENSION_ID_RE.test(String(p.extension_id))) return;
      const base = parseGatewayBase(p.gateway_base);
      if (!base) return;
      const tokens = parseTheme(p.theme_tokens ?? {});
      if (!tokens) return;
      const navPath = p.navigation && typeof p.navigation.path === "string" ? p.navigation.path : "/";
      if (s) setSession(s);
      else clearSession();
      context = Object.freeze({
        extension_id: p.extension_id,
        gateway_base: base,
        navigation: Object.freeze({ path: navPath }),
        theme_tokens: Object.freeze({ ...tokens }),
        session: s ? Object.freeze({ token: s.token, expires_at: s.expires_at }) : null,
      });
      setTheme(tokens);
      if (settle) settle.resolve(context);
      return;
    }
    case "theme_tokens": {
      if (!context) return;
      const tokens = parseTheme(p.theme_tokens);
      if (tokens) setTheme(tokens);
      return;
    }
    case "session": {
      if (!context) return;
      const s = parseSession(p);
      if (s) setSession(s);
      return;
    }
    case "apiproxy_response":
      if (typeof msg.request_id === "string") settleProxy(msg.request_id, p);
      return;
  }
}

function clearSession() {
  session = null;
  clearTimeout(expiringTimer);
  expiringTimer = 0;
}

function setSession(s) {
  session = s;
  clearTimeout(expiringTimer);
  expiringTimer = 0;
  const lifetime = Math.max(0, s.expiresAtMs - s.receivedAtMs);
  armExpiring(s, s.expiresAtMs - Math.min(EXPIRING_LEAD_MS, lifetime / 4));
}

// armExpiring posts session_expiring for s at dueMs, unless another session
// replaced s by then. Timers are capped at a day (setTimeout fires at once
// beyond 2^31-1 ms) and re-armed.
function armExpiring(s, dueMs) {
  const delay = dueMs - Date.now();
  if (delay > 0) {
    expiringTimer = setTimeout(() => armExpiring(s, dueMs), Math.min(delay, 86_400_000));
    return;
  }
  expiringTimer = 0;
  // Once per token: a host that cannot refresh is not asked in a loop.
  if (session !== s || expiringSentFor === s.token) return;
  expiringSentFor = s.token;
  post("session_expiring", {});
}

function setTheme(tokens) {
  theme = tokens;
  applyThemeVars(tokens);
  for (const { cb } of [...themeListeners]) callSafely(cb, { ...tokens });
}

function applyThemeVars(tokens) {
  const style = document.documentElement.style;
  const next = new Map();
  for (const [k, v] of Object.entries(tokens)) {
    const name = cssVarName(k);
    if (name) next.set(name, v);
  }
  for (const name of appliedVars) if (!next.has(name)) style.removeProperty(name);
  for (const [name, v] of next) style.setProperty(name, v);
  appliedVars = new Set(next.keys());
}

/**
 * Returns the CSS custom property for a theme token name, or null when
 * nothing of the name survives sanitising ("Brand_Color" → "--alga-brand-color").
 *
 * @param {string} name
 * @returns {string|null}
 */
export function cssVarName(name) {
  const s = String(name)
    .slice(0, 128)
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return s ? `--alga-${s}` : null;
}

function startAutoResize() {
  if (observer || typeof ResizeObserver === "undefined") return;
  observer = new ResizeObserver(scheduleResize);
  observer.observe(document.documentElement);
  scheduleResize();
}

// scheduleResize coalesces bursts of size changes into one message per frame.
function scheduleResize() {
  if (resizeFrame || resizeTimer) return;
  const run = () => {
    cancelAnimationFrame(resizeFrame);
    clearTimeout(resizeTimer);
    resizeFrame = 0;
    resizeTimer = 0;
    const h = measureHeight();
    if (h === lastHeight) return;
    lastHeight = h;
    post("resize", { height: h });
  };
  resizeFrame = requestAnimationFrame(run);
  resizeTimer = setTimeout(run, RESIZE_FALLBACK_MS);
}

function measureHeight() {
  return Math.ceil(document.documentElement.getBoundingClientRect().height);
}


// parseSession accepts {token, expires_at} with expires_at an ISO 8601 string
// or epoch seconds; it returns null when either is invalid.
function parseSession(raw) {
  if (raw === null || typeof raw !== "object") return null;
  const { token, expires_at } = raw;
  if (!validToken(token)) {
    return null;
  }
  let ms = NaN;
  if (typeof expires_at === "number") ms = expires_at * 1000;
  else if (typeof expires_at === "string" && expires_at !== "") ms = Date.parse(expires_at);
  if (!Number.isFinite(ms)) return null;
  return { token, expires_at, expiresAtMs: ms, receivedAtMs: Date.now() };
}

function parseGatewayBase(base) {
  if (typeof base !== "string") return null;
  let u;
  try {
    u = new URL(base);
  } catch {
    return null;
  }
  if ((u.protocol !== "https:" && u.protocol !== "http:") || u.search || u.hash || u.username || u.password) {
    return null;
  }
  return (u.origin + u.pathname).replace(/\/+$/, "");
}

function parseTheme(tokens) {
  if (tokens === null || typeof tokens !== "object" || Array.isArray(tokens)) return null;
  const out = {};
  for (const [k, v] of Object.entries(tokens)) {
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" && Number.isFinite(v)) out[k] = String(v);
  }
  return out;
}

function callSafely(cb, arg) {
  try {
    cb(arg);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}
