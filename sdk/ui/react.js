// extedge UI kit React bindings, v1 (SPEC §19).
//
// React 18 or 19 is a peer: this module imports it, it does not ship it.
// Without a build step, say where React comes from in one of two ways:
//
//   // an import map that maps "react" (the default specifier):
//   import { useExtension, DataTable } from "/ext-sdk/v1/react.js";
//
//   // or a ?react= specifier (a URL, or a path resolved against the page),
//   // for pages whose CSP forbids inline import maps, like /ext-ui pages:
//   import { useExtension, DataTable } from "/ext-sdk/v1/react.js?react=./vendor/react.js";
//
// The module must have React as its default export (or be React's namespace).
//
// - useExtension(options?) → {ready, context, error, api, navigate}: connect()
//   from iframe.js (options are connect()'s) and the API client.
// - <DataTable columns data pagination sort loading error …>: the props of
//   the PSA's DataTable guide, rendered by <ext-data-table> from ui.js (so
//   the table behaves the same with or without React). See README.md.
import { connect, api, navigate } from "./iframe.js";
import "./ui.js";

const reactSpecifier = new URL(import.meta.url).searchParams.get("react") || "react";
const reactModule = await import(resolveSpecifier(reactSpecifier));
const React = reactModule.default ?? reactModule;

// resolveSpecifier resolves paths against the importing page (not against
// /ext-sdk/v1/), and leaves bare specifiers and URLs to the import map.
function resolveSpecifier(spec) {
  if (/^\.{0,2}\//.test(spec) && typeof document !== "undefined") return new URL(spec, document.baseURI).href;
  return spec;
}

/**
 * Connects to the host once and re-renders when the bootstrap context is
 * there: `{ready, context, error, api, navigate}`. context is connect()'s
 * frozen bootstrap context (null until ready); error is connect()'s
 * rejection, if any.
 *
 * @param {{timeoutMs?: number, autoResize?: boolean, hostOrigin?: string}} [options]
 */
export function useExtension(options) {
  const [state, setState] = React.useState({ context: null, error: null });
  React.useEffect(() => {
    let live = true;
    connect(options).then(
      (context) => live && setState({ context, error: null }),
      (error) => live && setState({ context: null, error }),
    );
    return () => {
      live = false;
    };
  }, []);
  return { ready: state.context !== null, context: state.context, error: state.error, api, navigate };
}

/**
 * A DataTable. Props:
 * - columns: [{key, header, sortable, align, render(value, row, index) → string | DOM Node}]
 * - data: all rows (client-side paging and sorting), or the current page's
 *   rows when pagination.total is set (server-side: fetch on the callbacks)
 * - pagination: {page, pageSize, total, pageSizeOptions, onPageChange(page),
 *   onPageSizeChange(pageSize)}
 * - sort: {key, direction: "asc"|"desc", onSortChange(key, direction)}
 * - loading, error (message), onRetry(), onRowClick(row, index), emptyText,
 *   caption, maxHeight, className
 */
export function DataTable(props) {
  const ref = React.useRef(null);
  const latest = React.useRef(props);
  latest.current = props;
  const { columns, data, pagination, sort, loading, error, emptyText, caption, maxHeight, onRowClick } = props;

  React.useLayoutEffect(() => {
    const el = ref.current;
    const p = pagination || {};
    el.serverSide = typeof p.total === "number";
    if (typeof p.total === "number") el.total = p.total;
    if (p.pageSize) el.pageSize = p.pageSize;
    if (p.page) el.page = p.page;
    if (p.pageSizeOptions) el.pageSizeOptions = p.pageSizeOptions;
    el.sortKey = sort?.key || "";
    if (sort?.direction) el.sortDirection = sort.direction;
    el.loading = Boolean(loading);
    el.error = error || "";
    setAttr(el, "empty-text", emptyText);
    setAttr(el, "caption", caption);
    setAttr(el, "max-height", maxHeight);
    el.toggleAttribute("clickable-rows", typeof onRowClick === "function");
    el.columns = columns || [];
    el.rows = data || [];
  });

  React.useEffect(() => {
    const el = ref.current;
    const on = {
      "page-change": (e) => latest.current.pagination?.onPageChange?.(e.detail.page),
      "page-size-change": (e) => latest.current.pagination?.onPageSizeChange?.(e.detail.pageSize),
      "sort-change": (e) => latest.current.sort?.onSortChange?.(e.detail.key, e.detail.direction),
      "row-click": (e) => latest.current.onRowClick?.(e.detail.row, e.detail.index),
      retry: () => latest.current.onRetry?.(),
    };
    for (const [type, fn] of Object.entries(on)) el.addEventListener(type, fn);
    return () => {
      for (const [type, fn] of Object.entries(on)) el.removeEventListener(type, fn);
    };
  }, []);

  return React.createElement("ext-data-table", props.className ? { ref, className: props.className } : { ref });
}

function setAttr(el, name, value) {
  if (value === undefined || value === null || value === "") el.removeAttribute(name);
  else el.setAttribute(name, String(value));
}
