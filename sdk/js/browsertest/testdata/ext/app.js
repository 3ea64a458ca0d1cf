// The test extension's UI: a real user of iframe.js, plus a command channel
// ({extedgeTest}) through which the host test page drives it. The channel is
// not part of the SDK: its messages are not protocol envelopes, so the SDK on
// both sides ignores them.
import { connect, api, onTheme, navigate, resize, getSession } from "/ext-sdk/v1/iframe.js";

const params = new URLSearchParams(location.search);
const timeoutMs = Number(params.get("timeout") || 5000);
const hostOrigin = params.get("hostOrigin") || undefined;

// Every protocol envelope this window receives, from any source, so tests can
// tell that a message arrived even when the SDK ignored it.
const received = [];
window.addEventListener("message", (e) => {
  if (e.data && e.data.alga !== undefined) {
    received.push({ fromParent: e.source === window.parent, type: String(e.data.type) });
  }
});

const themeCalls = [];
onTheme((tokens) => themeCalls.push(tokens));

const connected = connect({ timeoutMs, hostOrigin }).then(
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
  fetch: async (path, init) => {
    try {
      const r = await api.fetch(path, init);
      return { ok: true, status: r.status, body: await r.json() };
    } catch (e) {
      return { ok: false, error: String(e && e.message) };
    }
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
