// kv-as keeps JSON documents in the install's key-value storage, written in
// AssemblyScript with @extedge/guest:
//
//   GET    /docs               list  → {"items":[{key,revision,value}],"next_cursor"}
//   GET    /docs/:key          get   → {key,revision,value} or 404 not_found
//   PUT    /docs/:key?if_revision=N   put → {key,revision}; 409 revision_mismatch on a stale N
//   DELETE /docs/:key          delete → {deleted}
//
// Build with `npm install && npm run build` (dist/main.wasm, the manifest's entry).
import { Request, Response, JSONValue, Item, PutOptions, kv, route, log } from "@extedge/guest";

export { alloc, dealloc, handler } from "@extedge/guest";

const NS = "docs";

function itemJSON(it: Item): JSONValue {
  return JSONValue.newObject().setString("key", it.key).setNumber("revision", <f64>it.revision).set("value", it.value);
}

function list(r: Request): Response {
  const res = kv.list(NS, r.query("prefix"), r.query("cursor"), 20);
  if (!res.ok) return Response.fromError(res.error!);
  const page = res.value!;
  const items = JSONValue.newArray();
  for (let i = 0; i < page.items.length; i++) items.push(itemJSON(page.items[i]));
  return Response.json(200, JSONValue.newObject().set("items", items).setString("next_cursor", page.nextCursor));
}

function get(r: Request): Response {
  const res = kv.get(NS, r.param("key"));
  if (!res.ok) return Response.fromError(res.error!);
  return Response.json(200, itemJSON(res.value!));
}

function put(r: Request): Response {
  const body = r.json();
  if (body == null) return Response.error(400, "invalid_body", "body must be JSON");
  const opts = new PutOptions();
  opts.ifRevision = r.queryInt("if_revision", -1);
  const res = kv.put(NS, r.param("key"), body, opts);
  if (!res.ok) return Response.fromError(res.error!);
  log.info("stored " + r.param("key") + " at revision " + res.value!.revision.toString());
  return Response.json(200, JSONValue.newObject().setString("key", r.param("key")).setNumber("revision", <f64>res.value!.revision));
}

function remove(r: Request): Response {
  const res = kv.remove(NS, r.param("key"));
  if (!res.ok) return Response.fromError(res.error!);
  return Response.json(200, JSONValue.newObject().setBool("deleted", res.value!.deleted));
}

route("GET", "/docs", list);
route("GET", "/docs/:key", get);
route("PUT", "/docs/:key", put);
route("DELETE", "/docs/:key", remove);
