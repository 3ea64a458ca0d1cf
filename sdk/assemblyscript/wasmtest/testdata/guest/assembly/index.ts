// The test guest of sdk/assemblyscript/wasmtest: one route per SDK feature,
// driven on the runner's real engine and host. The vendor's base URL comes
// from the install config ("vendor_url").
import {
  Request, Response, JSONValue, handle, route, log, fetch, FetchRequest, kv, PutOptions,
  secret, metric, MetricKind, Code, liveBuffers, parse,
} from "@extedge/guest";

export { alloc, dealloc, handler } from "@extedge/guest";

function named(r: Request): Response { return Response.text(200, "named"); }

function fetchItems(r: Request): Response {
  const key = secret("api_key");
  if (!key.ok) return Response.fromError(key.error!);
  const res = fetch(new FetchRequest(r.configString("vendor_url") + "/items?page=" + r.query("page"))
    .header("authorization", "Bearer " + key.value!));
  if (!res.ok) return Response.fromError(res.error!);
  const resp = res.value!;
  const items = resp.json();
  if (items == null) return Response.error(502, "bad_upstream", "vendor answered no JSON");
  log.info("fetched " + items.items.length.toString() + " items");
  const labels = new Map<string, string>();
  labels.set("src", "vendor");
  const err = metric("items_fetched", <f64>items.items.length, MetricKind.Counter, labels);
  if (err != null) return Response.fromError(err);
  return Response.json(200, JSONValue.newObject()
    .setNumber("upstream_status", <f64>resp.status)
    .setString("content_type", resp.headers.has("content-type") ? resp.headers.get("content-type") : "")
    .set("items", items));
}

function postUpstream(r: Request): Response {
  const req = new FetchRequest(r.configString("vendor_url") + "/echo", "POST").json(JSONValue.newObject().setString("hello", "vendor"));
  req.timeoutMs = 2000;
  const res = fetch(req);
  if (!res.ok) return Response.fromError(res.error!);
  return Response.rawJSON(200, res.value!.text());
}

function denied(r: Request): Response {
  const res = fetch(new FetchRequest("https://evil.example/"));
  if (res.is(Code.EgressDenied)) return Response.fromError(res.error!);
  return Response.text(500, "unexpected: " + (res.ok ? "ok" : res.error!.toString()));
}

function kvPut(r: Request): Response {
  const body = r.json();
  if (body == null) return Response.error(400, "bad_json", "body must be JSON");
  const opts = new PutOptions();
  opts.ifRevision = r.queryInt("if_revision", -1);
  const res = kv.put("items", r.param("key"), body, opts);
  if (!res.ok) return Response.fromError(res.error!);
  return Response.json(200, JSONValue.newObject().setNumber("revision", <f64>res.value!.revision));
}

function kvGet(r: Request): Response {
  const res = kv.get("items", r.param("key"));
  if (!res.ok) return Response.fromError(res.error!);
  const it = res.value!;
  return Response.json(200, JSONValue.newObject()
    .setString("namespace", it.namespace).setString("key", it.key)
    .set("value", it.value).setNumber("revision", <f64>it.revision));
}

function kvDelete(r: Request): Response {
  const res = kv.remove("items", r.param("key"), r.queryInt("if_revision", -1));
  if (!res.ok) return Response.fromError(res.error!);
  return Response.json(200, JSONValue.newObject().setBool("deleted", res.value!.deleted));
}

function kvList(r: Request): Response {
  const res = kv.list("items", r.query("prefix"), r.query("cursor"), <i32>r.queryInt("limit", 0));
  if (!res.ok) return Response.fromError(res.error!);
  const keys = JSONValue.newArray();
  const page = res.value!;
  for (let i = 0; i < page.items.length; i++) keys.push(JSONValue.ofString(page.items[i].key));
  return Response.json(200, JSONValue.newObject().set("keys", keys).setString("next_cursor", page.nextCursor));
}

function secretGet(r: Request): Response {
  const res = secret(r.param("key"));
  if (!res.ok) return Response.fromError(res.error!);
  return Response.json(200, JSONValue.newObject().setNumber("length", <f64>res.value!.length));
}

function logs(r: Request): Response {
  log.info("info line");
  log.warn("warn line");
  log.error("error line");
  const err = metric("queue_depth", 2.5, MetricKind.Gauge);
  if (err != null) return Response.fromError(err);
  return new Response(204);
}

function echo(r: Request): Response {
  const body = r.json();
  if (body == null || !body.isObject) return Response.error(400, "bad_json", "body must be a JSON object");
  const u = r.user;
  body.setString("user", u != null ? u.name : "");
  body.setString("tenant", r.context.tenantId);
  body.setString("header", r.header("X-Test"));
  body.setString("param", r.param("id"));
  return Response.json(201, body).withHeader("x-echo", "1");
}

function itemByID(r: Request): Response { return Response.text(200, "param " + r.param("id")); }
function itemSpecial(r: Request): Response { return Response.text(200, "literal"); }
function anyMethod(r: Request): Response { return Response.text(200, "any " + r.http.method); }

function trap(r: Request): Response {
  unreachable();
  return new Response(200);
}

function thrown(r: Request): Response {
  throw new Error("kaboom");
}

function loop(r: Request): Response {
  let n: i64 = 0;
  while (r.query("never") != "stop") n++;
  return Response.json(200, JSONValue.newObject().setNumber("n", <f64>n));
}

function grow(r: Request): Response {
  // Holds ever more memory until the runner's limit stops the guest.
  const keep = new Array<ArrayBuffer>();
  while (true) keep.push(new ArrayBuffer(1 << 20));
  return new Response(200);
}

function leaks(r: Request): Response {
  return Response.json(200, JSONValue.newObject().setNumber("live", <f64>liveBuffers()));
}

function jsonRoundTrip(r: Request): Response {
  const v = parse(r.text());
  if (v == null) return Response.error(400, "bad_json", "not JSON");
  return Response.rawJSON(200, v.toString());
}

handle("dist/main#named", named);
route("GET", "/fetch", fetchItems);
route("POST", "/upstream", postUpstream);
route("GET", "/denied", denied);
route("PUT", "/kv/:key", kvPut);
route("GET", "/kv/:key", kvGet);
route("DELETE", "/kv/:key", kvDelete);
route("GET", "/kv", kvList);
route("GET", "/secret/:key", secretGet);
route("GET", "/logs", logs);
route("POST", "/echo/:id", echo);
route("GET", "/echo/literal", named);
route("GET", "/items/:id", itemByID);
route("GET", "/items/special", itemSpecial);
route("*", "/any", anyMethod);
route("GET", "/trap", trap);
route("GET", "/throw", thrown);
route("GET", "/loop", loop);
route("GET", "/grow", grow);
route("GET", "/leaks", leaks);
route("POST", "/json", jsonRoundTrip);
