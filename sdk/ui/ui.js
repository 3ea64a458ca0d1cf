// extedge UI kit, v1 (SPEC §19).
//
// Custom elements that make an extension's iframe UI look native in the PSA,
// styled by /ext-sdk/v1/ui.css from the host's theme tokens (--alga-*):
//
//   <link rel="stylesheet" href="/ext-sdk/v1/ui.css">
//   <script type="module">
//     import { connect, api } from "/ext-sdk/v1/iframe.js";
//     import "/ext-sdk/v1/ui.js";
//     const table = document.querySelector("ext-data-table");
//     table.columns = [{ key: "id", header: "ID", sortable: true }, …];
//     table.loader = ({ page, pageSize, sortKey, sortDirection }) =>
//       api.fetch(`/items?page=${page}&page_size=${pageSize}&sort=${sortKey}&direction=${sortDirection}`);
//     await connect();
//   </script>
//
// - <ext-data-table>: a real <table> with sortable columns (aria-sort,
//   keyboard through native buttons), client- or server-side paging with a
//   page-size selector, loading, empty and error states with retry, row
//   click, sticky header. See README.md, "DataTable guide".
// - <ext-button variant="primary|secondary|danger" loading>: a native
//   <button> inside; while loading or disabled it swallows clicks.
// - <ext-badge tone="neutral|info|success|warning|danger">.
//
// Importing this module defines the three elements and keeps
// <html data-alga-theme> in step with the host's theme tokens (light or
// dark, so that ui.css picks the matching defaults). Plain ES module, no
// dependencies besides ./iframe.js, no build step.
import { onTheme } from "./iframe.js";

const SORT_DIRECTIONS = new Set(["asc", "desc"]);
const DEFAULT_PAGE_SIZE = 10;
const DEFAULT_PAGE_SIZE_OPTIONS = [10, 20, 50, 100];

/**
 * Returns "dark" or "light" for a set of theme tokens, or null when they do
 * not say: an explicit `mode`, `theme`, `color-scheme` (or colorScheme)
 * token wins; otherwise the lightness of `color-bg` (or background) decides.
 *
 * @param {Record<string, string>} tokens
 * @returns {"dark"|"light"|null}
 */
export function themeMode(tokens) {
  if (!tokens || typeof tokens !== "object") return null;
  for (const k of ["mode", "theme", "color-scheme", "colorScheme"]) {
    const v = String(tokens[k] ?? "").trim().toLowerCase();
    if (v === "dark" || v === "light") return v;
  }
  const bg = tokens["color-bg"] ?? tokens.colorBg ?? tokens.background;
  const rgb = parseColor(bg);
  if (!rgb) return null;
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.4 ? "dark" : "light";
}

function parseColor(v) {
  if (typeof v !== "string") return null;
  const s = v.trim().toLowerCase();
  let m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/.exec(s);
  if (m) {
    const h = m[1].length === 3 ? [...m[1]].map((c) => c + c).join("") : m[1];
    return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
  }
  m = /^rgba?\(\s*(\d+)[\s,]+(\d+)[\s,]+(\d+)/.exec(s);
  return m ? [m[1], m[2], m[3]].map(Number) : null;
}

// applyThemeMode sets <html data-alga-theme> from the host's tokens, or
// from the OS preference when they do not say (or have not arrived).
function applyThemeMode(tokens) {
  const osDark = typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.algaTheme = themeMode(tokens) ?? (osDark ? "dark" : "light");
}

/**
 * Normalises one page of a server-side list to `{rows, total}`. Accepts
 * `{items, total}` (extedge style) and `{data, meta: {total}}` (PSA style);
 * a missing total falls back to the number of rows. Throws a TypeError for
 * anything else.
 *
 * @param {any} body
 * @returns {{rows: any[], total: number}}
 */
export function normalizePage(body) {
  if (body && Array.isArray(body.items)) {
    return { rows: body.items, total: finiteOr(body.total, body.items.length) };
  }
  if (body && Array.isArray(body.data)) {
    return { rows: body.data, total: finiteOr(body.meta?.total, body.data.length) };
  }
  throw new TypeError("ext-data-table: a page must be {items, total} or {data, meta: {total}}");
}

function finiteOr(v, fallback) {
  const n = Number(v);
  return v !== null && v !== undefined && Number.isFinite(n) && n >= 0 ? n : fallback;
}

// readBody turns what a loader returned (a fetch Response or a parsed body)
// into a body, throwing an Error with the API's message for non-2xx replies.
async function readBody(result) {
  if (typeof Response === "undefined" || !(result instanceof Response)) return result;
  const body = await result.json().catch(() => null);
  if (!result.ok) {
    const e = body && body.error ? body.error : {};
    throw Object.assign(new Error(e.message || `HTTP ${result.status}`), { code: e.code || `http_${result.status}` });
  }
  return body;
}

function positiveInt(v, fallback) {
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 ? n : fallback;
}

function compareValues(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" });
}

/**
 * <ext-data-table>: see README.md, "DataTable guide".
 *
 * Properties: columns, rows, loader, total, page, pageSize,
 * pageSizeOptions, sortKey, sortDirection, loading, error, serverSide;
 * method reload(). Events (bubbling CustomEvents): page-change {page},
 * page-size-change {pageSize, page}, sort-change {key, direction},
 * row-click {row, index}, retry {}.
 */
export class ExtDataTable extends HTMLElement {
  static observedAttributes = [
    "page", "page-size", "page-size-options", "total", "sort-key", "sort-direction",
    "loading", "error", "empty-text", "server-side", "max-height", "caption", "clickable-rows", "row-key",
  ];

  #columns = [];
  #rows = [];
  #loader = null;
  #loaderError = null; // the message of the last failed load
  #loaderBusy = false;
  #seq = 0; // numbers loads, so a slow stale reply never wins
  #abort = null;
  #renderQueued = false;
  #loadQueued = false;

  constructor() {
    super();
    this.addEventListener("click", (e) => this.#onClick(e));
    this.addEventListener("change", (e) => this.#onChange(e));
    this.addEventListener("keydown", (e) => this.#onKeydown(e));
  }

  connectedCallback() {
    this.#queueRender();
    if (this.#loader) this.#queueLoad();
  }

  disconnectedCallback() {
    this.#abort?.abort();
  }

  attributeChangedCallback() {
    this.#queueRender();
  }

  /** Column definitions: [{key, header, sortable, align, render(value, row, index)}]. */
  get columns() { return this.#columns; }
  set columns(v) {
    this.#columns = Array.isArray(v) ? v.filter((c) => c && typeof c.key === "string") : [];
    this.#queueRender();
  }

  /** All rows (client-side) or the current page's rows (server-side). */
  get rows() { return this.#rows; }
  set rows(v) {
    this.#rows = Array.isArray(v) ? v : [];
    this.#queueRender();
  }

  /**
   * A server-side data source: called with {page, pageSize, sortKey,
   * sortDirection, signal} whenever these change and on retry; returns
   * (a promise of) a fetch Response or a body, {items, total} or
   * {data, meta: {total}}. Setting it makes the table server-side and loads.
   */
  get loader() { return this.#loader; }
  set loader(fn) {
    this.#loader = typeof fn === "function" ? fn : null;
    if (this.#loader && this.isConnected) this.#queueLoad();
  }

  get serverSide() { return this.hasAttribute("server-side") || this.#loader !== null; }
  set serverSide(v) { this.toggleAttribute("server-side", Boolean(v)); }

  get page() { return positiveInt(this.getAttribute("page"), 1); }
  set page(v) { this.setAttribute("page", String(positiveInt(v, 1))); }

  get pageSize() { return positiveInt(this.getAttribute("page-size"), DEFAULT_PAGE_SIZE); }
  set pageSize(v) { this.setAttribute("page-size", String(positiveInt(v, DEFAULT_PAGE_SIZE))); }

  get pageSizeOptions() {
    const raw = this.getAttribute("page-size-options");
    const opts = raw === null ? DEFAULT_PAGE_SIZE_OPTIONS
      : raw.split(/[\s,]+/).map((s) => positiveInt(s, 0)).filter((n) => n > 0);
    const all = new Set([...opts, this.pageSize]);
    return [...all].sort((a, b) => a - b);
  }
  set pageSizeOptions(v) {
    this.setAttribute("page-size-options", (Array.isArray(v) ? v : []).join(","));
  }

  /** Rows in all pages: the total attribute server-side, rows.length client-side. */
  get total() {
    if (!this.serverSide) return this.#rows.length;
    const t = Number(this.getAttribute("total"));
    return Number.isFinite(t) && t >= 0 ? Math.floor(t) : this.#rows.length;
  }
  set total(v) { this.setAttribute("total", String(finiteOr(v, 0))); }

  get sortKey() { return this.getAttribute("sort-key") || ""; }
  set sortKey(v) {
    if (v) this.setAttribute("sort-key", String(v));
    else this.removeAttribute("sort-key");
  }

  get sortDirection() {
    const d = this.getAttribute("sort-direction");
    return SORT_DIRECTIONS.has(d) ? d : "asc";
  }
  set sortDirection(v) { this.setAttribute("sort-direction", SORT_DIRECTIONS.has(v) ? v : "asc"); }

  get loading() { return this.hasAttribute("loading") || this.#loaderBusy; }
  set loading(v) { this.toggleAttribute("loading", Boolean(v)); }

  /** The error message shown instead of rows, or "" (a loader's failure counts). */
  get error() { return this.getAttribute("error") || this.#loaderError || ""; }
  set error(v) {
    const msg = v instanceof Error ? v.message : v;
    if (msg) this.setAttribute("error", String(msg));
    else this.removeAttribute("error");
  }

  /** Pages in all: at least 1. */
  get pageCount() { return Math.max(1, Math.ceil(this.total / this.pageSize)); }

  /** Loads the current page again through the loader (no-op without one). */
  reload() {
    if (!this.#loader) return Promise.resolve();
    const seq = ++this.#seq;
    this.#abort?.abort();
    const ctl = typeof AbortController === "undefined" ? null : new AbortController();
    this.#abort = ctl;
    this.#loaderBusy = true;
    this.#loaderError = null;
    this.#queueRender();
    const query = { page: this.page, pageSize: this.pageSize, sortKey: this.sortKey, sortDirection: this.sortDirection, signal: ctl?.signal };
    return Promise.resolve()
      .then(() => this.#loader(query))
      .then(readBody)
      .then((body) => {
        if (seq !== this.#seq) return;
        const { rows, total } = normalizePage(body);
        this.#rows = rows;
        this.setAttribute("total", String(total));
      })
      .catch((err) => {
        if (seq !== this.#seq) return;
        this.#loaderError = (err && err.message) || String(err) || "Loading failed";
      })
      .finally(() => {
        if (seq !== this.#seq) return;
        this.#loaderBusy = false;
        this.#queueRender();
      });
  }

  #queueLoad() {
    if (this.#loadQueued) return;
    this.#loadQueued = true;
    queueMicrotask(() => {
      this.#loadQueued = false;
      this.reload();
    });
  }

  #queueRender() {
    if (this.#renderQueued) return;
    this.#renderQueued = true;
    queueMicrotask(() => {
      this.#renderQueued = false;
      if (this.isConnected) this.#render();
    });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  #changed() {
    if (this.#loader) this.#queueLoad();
    this.#queueRender();
  }

  #sortBy(key) {
    const direction = this.sortKey === key && this.sortDirection === "asc" ? "desc" : "asc";
    this.sortKey = key;
    this.sortDirection = direction;
    this.page = 1;
    this.#emit("sort-change", { key, direction });
    this.#changed();
  }

  #goTo(page) {
    const p = Math.min(Math.max(1, page), this.pageCount);
    if (p === this.page) return;
    this.page = p;
    this.#emit("page-change", { page: p });
    this.#changed();
  }

  #setPageSize(size) {
    const n = positiveInt(size, this.pageSize);
    if (n === this.pageSize) return;
    this.pageSize = n;
    this.page = 1;
    this.#emit("page-size-change", { pageSize: n, page: 1 });
    this.#changed();
  }

  #retry() {
    this.#emit("retry", {});
    if (this.#loader) this.reload();
  }

  #onClick(e) {
    const t = e.target instanceof Element ? e.target : null;
    if (!t || !this.contains(t)) return;
    const action = t.closest("[data-action]");
    if (action && this.contains(action)) {
      switch (action.dataset.action) {
        case "sort": return this.#sortBy(action.dataset.key);
        case "prev": return this.#goTo(this.page - 1);
        case "next": return this.#goTo(this.page + 1);
        case "retry": return this.#retry();
      }
      return;
    }
    const tr = t.closest("tr[data-row]");
    if (tr && this.contains(tr)) this.#rowClick(tr);
  }

  #onKeydown(e) {
    if (e.key !== "Enter" && e.key !== " ") return;
    const tr = e.target instanceof Element && e.target.matches("tr[data-row]") ? e.target : null;
    if (!tr || !this.contains(tr)) return;
    e.preventDefault();
    this.#rowClick(tr);
  }

  #rowClick(tr) {
    const index = Number(tr.dataset.row);
    const row = this.#visibleRows()[index];
    if (row !== undefined) this.#emit("row-click", { row, index });
  }

  #onChange(e) {
    const t = e.target;
    if (t instanceof HTMLSelectElement && t.dataset.action === "page-size") this.#setPageSize(t.value);
  }

  // visibleRows are the rows of the current page, sorted (client-side) or
  // as given (server-side).
  #visibleRows() {
    if (this.serverSide) return this.#rows;
    let rows = this.#rows;
    const key = this.sortKey;
    if (key) {
      const sign = this.sortDirection === "desc" ? -1 : 1;
      rows = [...rows].sort((a, b) => sign * compareValues(a?.[key], b?.[key]));
    }
    const start = (this.page - 1) * this.pageSize;
    return rows.slice(start, start + this.pageSize);
  }

  #render() {
    const focusId = document.activeElement?.closest?.("[data-focus-id]");
    const restore = focusId && this.contains(focusId) ? focusId.dataset.focusId : null;

    const cols = this.#columns;
    const loading = this.loading;
    const error = this.error;
    const rows = error ? [] : this.#visibleRows();
    const state = error ? "error" : loading ? "loading" : rows.length === 0 ? "empty" : "ready";
    this.dataset.state = state;

    const scroll = el("div", "ext-dt-scroll");
    const maxHeight = this.getAttribute("max-height");
    if (maxHeight) {
      scroll.dataset.scroll = "";
      scroll.style.maxHeight = maxHeight;
    }
    const table = el("table", "ext-dt-table");
    table.setAttribute("aria-busy", String(loading));
    const caption = this.getAttribute("caption");
    if (caption) table.append(el("caption", "ext-dt-caption", caption));

    const headRow = el("tr");
    for (const c of cols) {
      const th = el("th");
      th.scope = "col";
      th.dataset.key = c.key;
      if (c.align) th.dataset.align = c.align;
      const label = c.header ?? c.key;
      if (c.sortable) {
        const dir = this.sortKey === c.key ? this.sortDirection : null;
        th.setAttribute("aria-sort", dir === "asc" ? "ascending" : dir === "desc" ? "descending" : "none");
        const b = el("button", "ext-dt-sort", label);
        b.type = "button";
        b.dataset.action = "sort";
        b.dataset.key = c.key;
        b.dataset.focusId = "sort:" + c.key;
        th.append(b);
      } else {
        th.textContent = label;
      }
      headRow.append(th);
    }
    const thead = el("thead");
    thead.append(headRow);

    const tbody = el("tbody");
    const clickable = this.hasAttribute("clickable-rows");
    const rowKey = this.getAttribute("row-key");
    if (rows.length === 0) {
      tbody.append(this.#stateRow(state, error, Math.max(1, cols.length)));
    } else {
      rows.forEach((row, i) => {
        const tr = el("tr");
        tr.dataset.row = String(i);
        if (rowKey && row?.[rowKey] !== undefined) tr.dataset.key = String(row[rowKey]);
        if (clickable) tr.tabIndex = 0;
        for (const c of cols) {
          const td = el("td");
          if (c.align) td.dataset.align = c.align;
          const value = row?.[c.key];
          const out = typeof c.render === "function" ? c.render(value, row, i) : value;
          if (out instanceof Node) td.append(out);
          else td.textContent = out === null || out === undefined ? "" : String(out);
          tr.append(td);
        }
        tbody.append(tr);
      });
    }
    table.append(thead, tbody);
    scroll.append(table);
    this.replaceChildren(scroll, this.#pager());

    if (restore) {
      const target = [...this.querySelectorAll("[data-focus-id]")].find((n) => n.dataset.focusId === restore);
      target?.focus();
    }
  }

  #stateRow(state, error, span) {
    const tr = el("tr", "ext-dt-state");
    tr.dataset.state = state;
    const td = el("td");
    td.colSpan = span;
    if (state === "error") {
      td.setAttribute("role", "alert");
      td.append(el("span", "ext-dt-message", error));
      const retry = el("ext-button");
      retry.setAttribute("variant", "secondary");
      retry.dataset.action = "retry";
      retry.dataset.focusId = "retry";
      retry.textContent = "Retry";
      td.append(retry);
    } else {
      td.setAttribute("role", "status");
      td.textContent = state === "loading" ? "Loading…" : this.getAttribute("empty-text") || "No data";
    }
    tr.append(td);
    return tr;
  }

  #pager() {
    const nav = el("nav", "ext-dt-pager");
    nav.setAttribute("aria-label", "Pagination");
    const total = this.total;
    const size = this.pageSize;
    const page = this.page;
    const pages = this.pageCount;

    const label = el("label", "", "Rows per page ");
    const select = el("select");
    select.dataset.action = "page-size";
    select.dataset.focusId = "page-size";
    for (const n of this.pageSizeOptions) {
      const o = el("option", "", String(n));
      o.value = String(n);
      o.selected = n === size;
      select.append(o);
    }
    label.append(select);

    const first = total === 0 ? 0 : (page - 1) * size + 1;
    const last = Math.min(total, page * size);
    const range = el("span", "ext-dt-range", `${first}–${last} of ${total}`);
    const where = el("span", "ext-dt-page", `Page ${page} of ${pages}`);
    where.setAttribute("aria-live", "polite");

    const prev = pagerButton("prev", "Previous", page <= 1);
    const next = pagerButton("next", "Next", page >= pages);
    nav.append(label, range, where, prev, next);
    return nav;
  }
}

function pagerButton(action, text, disabled) {
  const b = el("ext-button");
  b.setAttribute("variant", "secondary");
  b.dataset.action = action;
  b.dataset.focusId = action;
  b.textContent = text;
  if (disabled) b.setAttribute("disabled", "");
  return b;
}

function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

/**
 * <ext-button>: variant primary (default), secondary or danger; `loading`
 * shows a spinner, sets aria-busy and, like `disabled`, swallows clicks.
 * The label is the element's content when it connects, or `label`.
 */
export class ExtButton extends HTMLElement {
  static observedAttributes = ["loading", "disabled", "type"];

  #button = null;
  #label = null;

  constructor() {
    super();
    // Capture on the host runs before the page's own click listeners on it.
    this.addEventListener("click", (e) => {
      if (this.loading || this.disabled) {
        e.preventDefault();
        e.stopImmediatePropagation();
      }
    }, true);
  }

  connectedCallback() {
    if (!this.#button) {
      this.#button = el("button", "ext-button");
      this.#label = el("span", "ext-button__label");
      this.#label.append(...this.childNodes);
      this.#button.append(this.#label);
      this.append(this.#button);
    }
    this.#sync();
  }

  attributeChangedCallback() {
    this.#sync();
  }

  get loading() { return this.hasAttribute("loading"); }
  set loading(v) { this.toggleAttribute("loading", Boolean(v)); }

  get disabled() { return this.hasAttribute("disabled"); }
  set disabled(v) { this.toggleAttribute("disabled", Boolean(v)); }

  get label() { return this.#label ? this.#label.textContent : this.textContent; }
  set label(v) {
    if (this.#label) this.#label.textContent = String(v);
    else this.textContent = String(v);
  }

  focus(options) {
    if (this.#button) this.#button.focus(options);
    else super.focus(options);
  }

  #sync() {
    const b = this.#button;
    if (!b) return;
    b.type = this.getAttribute("type") || "button";
    b.disabled = this.loading || this.disabled;
    b.setAttribute("aria-busy", String(this.loading));
    let spinner = b.querySelector(".ext-spinner");
    if (this.loading && !spinner) {
      spinner = el("span", "ext-spinner");
      spinner.setAttribute("aria-hidden", "true");
      b.prepend(spinner);
    } else if (!this.loading && spinner) {
      spinner.remove();
    }
  }
}

/** <ext-badge tone="neutral|info|success|warning|danger">: a status label. */
export class ExtBadge extends HTMLElement {}

/**
 * A badge tone for common status words ("active" → success, "expired" →
 * danger, …), "neutral" for the rest.
 *
 * @param {string} status
 * @returns {"success"|"warning"|"danger"|"info"|"neutral"}
 */
export function statusTone(status) {
  const s = String(status ?? "").toLowerCase();
  if (/^(active|enabled|ok|paid|success|succeeded|complete|completed|healthy)$/.test(s)) return "success";
  if (/^(pending|draft|trial|warning|expiring|paused|suspended)$/.test(s)) return "warning";
  if (/^(expired|cancelled|canceled|failed|error|overdue|disabled|revoked)$/.test(s)) return "danger";
  if (/^(new|info|scheduled|renewal)$/.test(s)) return "info";
  return "neutral";
}

for (const [name, cls] of [["ext-data-table", ExtDataTable], ["ext-button", ExtButton], ["ext-badge", ExtBadge]]) {
  if (!customElements.get(name)) customElements.define(name, cls);
}
applyThemeMode(null);
onTheme(applyThemeMode);
