// Routing by endpoint.handler or by method + path, as in the Go SDK.
import { Request } from "./request";
import { Response } from "./response";

/** A handler: one request in, one response out. */
export type HandlerFunc = (r: Request) => Response;

class Route {
  constructor(public method: string, public pattern: string, public segs: string[], public fn: HandlerFunc) {}

  matches(segs: string[]): bool {
    if (segs.length != this.segs.length) return false;
    for (let i = 0; i < segs.length; i++) {
      const s = this.segs[i];
      if (!s.startsWith(":") && s != segs[i]) return false;
    }
    return true;
  }

  // At the first position where the two differ in kind the literal segment
  // wins (as at the gateway, SPEC §4); a specific method beats "*".
  moreSpecific(other: Route): bool {
    for (let i = 0; i < this.segs.length; i++) {
      const lit = !this.segs[i].startsWith(":");
      const otherLit = !other.segs[i].startsWith(":");
      if (lit != otherLit) return lit;
    }
    return this.method != "*" && other.method == "*";
  }
}

const byHandler = new Map<string, HandlerFunc>();
const routes = new Array<Route>();

/**
 * A manifest handler reference `path[#export]` reduced to a comparable form:
 * no ".wasm" suffix, no leading "./", no default "#handler" export.
 */
export function canonicalHandler(ref: string): string {
  let path = ref;
  let exp = "";
  const hash = ref.indexOf("#");
  if (hash >= 0) { path = ref.substring(0, hash); exp = ref.substring(hash + 1); }
  if (path.endsWith(".wasm")) path = path.substring(0, path.length - 5);
  if (path.startsWith("./")) path = path.substring(2);
  return exp.length == 0 || exp == "handler" ? path : path + "#" + exp;
}

/**
 * Registers fn for calls whose endpoint.handler is handler — the value in
 * the manifest, e.g. "dist/handlers/list" ("dist/hello", "dist/hello.wasm"
 * and "dist/hello#handler" name the same one). A duplicate aborts.
 */
export function handle(handler: string, fn: HandlerFunc): void {
  const canon = canonicalHandler(handler);
  assert(handler.length > 0, "handle: empty handler name");
  assert(!byHandler.has(canon), "handle: handler " + handler + " registered twice");
  byHandler.set(canon, fn);
}

/**
 * Registers fn for method ("*" = any; HEAD matches GET routes) and a path
 * pattern such as "/agreements/:id". A malformed pattern or a duplicate aborts.
 */
export function route(method: string, pattern: string, fn: HandlerFunc): void {
  let m = method.trim().toUpperCase();
  if (m.length == 0) m = "*";
  assert(pattern.startsWith("/"), "route " + pattern + ": pattern must start with /");
  const segs = pattern.substring(1).split("/");
  for (let i = 0; i < segs.length; i++) assert(segs[i] != ":", "route " + pattern + ": empty parameter name");
  for (let i = 0; i < routes.length; i++) {
    assert(!(routes[i].method == m && routes[i].pattern == pattern), "route " + m + " " + pattern + " registered twice");
  }
  routes.push(new Route(m, pattern, segs, fn));
}

function methodMatches(routeMethod: string, method: string): bool {
  return routeMethod == "*" || routeMethod == method;
}

function unescapeSegment(s: string): string {
  if (s.indexOf("%") < 0) return s;
  const d = decodeURIComponent(s);
  return d;
}

/**
 * Picks the handler: endpoint.handler (canonical form), then a route whose
 * pattern equals endpoint.path, then the most specific route matching
 * http.path (filling endpoint.params). Nothing matched is a 404 not_found.
 */
export function dispatch(r: Request): Response {
  const fn = lookup(r);
  if (fn == null) return Response.error(404, "not_found", "no handler for " + r.http.method + " " + r.http.path);
  return fn(r);
}

function lookup(r: Request): HandlerFunc | null {
  const h = r.endpoint.handler;
  if (h.length > 0) {
    const canon = canonicalHandler(h);
    if (byHandler.has(canon)) return byHandler.get(canon);
  }
  let method = (r.endpoint.method.length > 0 ? r.endpoint.method : r.http.method).toUpperCase();
  if (method == "HEAD") method = "GET";
  const p = r.endpoint.path;
  if (p.length > 0) {
    for (let i = 0; i < routes.length; i++) {
      if (routes[i].pattern == p && methodMatches(routes[i].method, method)) return routes[i].fn;
    }
  }
  if (r.http.path.length == 0) return null;
  const segs = r.http.path.substring(r.http.path.startsWith("/") ? 1 : 0).split("/");
  let best: Route | null = null;
  for (let i = 0; i < routes.length; i++) {
    const rr = routes[i];
    if (!methodMatches(rr.method, method) || !rr.matches(segs)) continue;
    if (best == null || rr.moreSpecific(best)) best = rr;
  }
  if (best == null) return null;
  for (let i = 0; i < best.segs.length; i++) {
    const s = best.segs[i];
    if (s.startsWith(":")) {
      const name = s.substring(1);
      if (!r.endpoint.params.has(name)) r.endpoint.params.set(name, unescapeSegment(segs[i]));
    }
  }
  return best.fn;
}
