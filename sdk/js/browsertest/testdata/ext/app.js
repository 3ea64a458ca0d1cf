// The test extension's UI: a real user of iframe.js, plus a command channel
// ({extedgeTest}) through which the host test page drives it. The channel is
// not part of the SDK: its messages are not protocol envelopes, so the SDK on
// both sides ignores them.
import { connect, api, onTheme, navigate, resize, getSession } from "/ext-sdk/v1/iframe.js";

const params = new URLSearchParams(location.search);
const timeoutMs = Number(params.get("timeout") || 5000);
const hostOrigin = params.get("hostOrigin") || undefined;
const apiProxy = params.get("proxy") === "1";
const apiProxyTimeoutMs = params.get("proxyTimeout") ? Number(params.get("proxyTimeout")) : undefined;

// Every protocol envelope this window receives, from any source, so tests can
// tell that a message arrived even when the SDK ignored it.
const received = [];
window.addEventListener("message", (e) => {
  if (e.data && e.data.alga !== undefined) {
    received.push({ fromParent: e.source === window.parent, type: String(e.data.type) });
  }
});

const started = new Map();
const proxyWaiters = new Map();
window.addEventListener("message", (e) => {
  const d = e.data;
  if (e.source !== window.parent || !d || d.type !== "apiproxy_response") return;
  const w = proxyWaiters.get(d.request_id);
  if (w) {
    proxyWaiters.delete(d.request_id);
    w(d.payload);
  }
});

async function runFetch(path, init) {
  try {
    const opts = init && init.bytes ? { ...init, body: new Uint8Array(init.bytes) } : init;
    if (opts) delete opts.bytes;
    const r = await api.fetch(path, opts);
    const text = await r.text();
    return {
      ok: true,
      isResponse: r instanceof Response,
      status: r.status,
      headers: Object.fromEntries(r.headers),
      body: text ? JSON.parse(text) : null,
    };
  } catch (e) {
    return { ok: false, error: String(e && e.message), code: e && e.code };
  }
}

const themeCalls = [];
onTheme((tokens) => themeCalls.push(tokens));

const connected = connect({ timeoutMs, hostOrigin, apiProxy, apiProxyTimeoutMs }).then(
  (ctx) => ({ ok: true, ctx }),
  (err) => ({ ok: false, error: String(err && err.message) }),
);

const commands = {
  context: () => connected,
  origin: () => self.origin,
  touchParent: () => {
    try {
      return "read: " + String(window.parent.document.title);
    } catch (e) {
      return "blocked: " + e.name;
    }
  },
  // fetch runs api.fetch; init.bytes (an array of numbers) becomes a
  // Uint8Array body.
  fetch: (path, init) => runFetch(path, init),
  // fetchStart starts api.fetch without waiting; fetchResult(key) waits.
  fetchStart: (key, path, init) => {
    started.set(key, runFetch(path, init));
    return true;
  },
  fetchResult: (key) => started.get(key),
  // rawProxy posts an apiproxy envelope past iframe.js and waits up to 5 s
  // for the host's apiproxy_response with the same request_id. payload.bigBody
  // = n replaces the body with n bytes.
  rawProxy: (requestId, payload) => {
    if (payload && payload.bigBody) {
      payload = { ...payload, body_b64: btoa("x".repeat(payload.bigBody)) };
      delete payload.bigBody;
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        proxyWaiters.delete(requestId);
        resolve({ answered: false });
      }, 5000);
      proxyWaiters.set(requestId, (p) => {
        clearTimeout(timer);
        resolve({ answered: true, payload: p });
      });
      window.parent.postMessage({ alga: true, version: "1", type: "apiproxy", request_id: requestId, payload }, "*");
    });
  },
  cssVar: (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim(),
  themeCalls: () => themeCalls,
  resize: (h) => {
    resize(h);
    return true;
  },
  grow: (h) => {
    document.getElementById("filler").style.height = `${h}px`;
    return true;
  },
  navigate: (p) => {
    try {
      navigate(p);
      return { ok: true };
    } catch (e) {
      return { ok: false, error: String(e && e.message) };
    }
  },
  rawPost: (msg) => {
    window.parent.postMessage(msg, "*");
    return true;
  },
  postToFrame: (index, msg) => {
    window.parent.frames[index].postMessage(msg, "*");
    return true;
  },
  received: () => received,
  session: () => getSession(),
  // DOM probes for pages that use the UI kit (ui-theme.html, react.html).
  style: (sel, prop) => {
    const n = document.querySelector(sel);
    return n ? getComputedStyle(n).getPropertyValue(prop).trim() : null;
  },
  attr: (sel, name) => document.querySelector(sel)?.getAttribute(name) ?? null,
  texts: (sel) => [...document.querySelectorAll(sel)].map((n) => n.textContent),
  click: (sel) => {
    const n = document.querySelector(sel);
    if (!n) throw new Error(`no ${sel}`);
    n.click();
    return true;
  },
  choose: (sel, value) => {
    const n = document.querySelector(sel);
    if (!n) throw new Error(`no ${sel}`);
    n.value = value;
    n.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  },
};

window.addEventListener("message", async (e) => {
  if (e.source !== window.parent || !e.data || !e.data.extedgeTest) return;
  const { seq, name, args } = e.data;
  let reply;
  try {
    if (!commands[name]) throw new Error(`unknown command ${name}`);
    reply = { ok: true, value: await commands[name](...(args || [])) };
  } catch (err) {
    reply = { ok: false, error: String(err && err.message) };
  }
  window.parent.postMessage({ extedgeTestReply: true, seq, ...reply }, "*");
});

window.parent.postMessage({ extedgeTestHello: true }, "*");
