// Wrappers for every host import of module "alga" (SPEC §5.2). JSON calls
// take (req_ptr, req_len, out_ptr) -> status; the host writes its reply
// through the guest's alloc and stores (ptr, len) at out_ptr.
import { JSONValue, parse, quote, formatNumber } from "./json";
import { encodeBase64, decodeBase64 } from "./base64";
import { HostError, Result, Code } from "./errors";
import { takeBuffer } from "./memory";

@external("alga", "http.fetch") declare function hostHTTPFetch(req: usize, len: usize, out: usize): u32;
@external("alga", "storage.get") declare function hostStorageGet(req: usize, len: usize, out: usize): u32;
@external("alga", "storage.put") declare function hostStoragePut(req: usize, len: usize, out: usize): u32;
@external("alga", "storage.delete") declare function hostStorageDelete(req: usize, len: usize, out: usize): u32;
@external("alga", "storage.list") declare function hostStorageList(req: usize, len: usize, out: usize): u32;
@external("alga", "secrets.get") declare function hostSecretsGet(req: usize, len: usize, out: usize): u32;
@external("alga", "metrics.emit") declare function hostMetricsEmit(req: usize, len: usize, out: usize): u32;
@external("alga", "log_info") declare function hostLogInfo(ptr: usize, len: usize): void;
@external("alga", "log_warn") declare function hostLogWarn(ptr: usize, len: usize): void;
@external("alga", "log_error") declare function hostLogError(ptr: usize, len: usize): void;

const FETCH = "http.fetch";
const GET = "storage.get";
const PUT = "storage.put";
const DELETE = "storage.delete";
const LIST = "storage.list";
const SECRET = "secrets.get";
const METRIC = "metrics.emit";

// The out area the host writes (ptr, len) into; static memory, so no
// collection can move or free it while the host runs.
const outArea = memory.data(8, 8);

/** One JSON host call's raw outcome: the reply text, or the error. */
class Reply {
  constructor(public value: JSONValue | null, public error: HostError | null) {}
}

function invoke(name: string, body: string): u32 {
  const req = String.UTF8.encode(body);
  const p = changetype<usize>(req);
  const n = <usize>req.byteLength;
  store<u64>(outArea, 0);
  if (name == FETCH) return hostHTTPFetch(p, n, outArea);
  if (name == GET) return hostStorageGet(p, n, outArea);
  if (name == PUT) return hostStoragePut(p, n, outArea);
  if (name == DELETE) return hostStorageDelete(p, n, outArea);
  if (name == LIST) return hostStorageList(p, n, outArea);
  if (name == SECRET) return hostSecretsGet(p, n, outArea);
  return hostMetricsEmit(p, n, outArea);
}

/** Performs one JSON host call and decodes its reply or error. */
function call(name: string, body: string): Reply {
  const status = invoke(name, body);
  const ptr = load<u32>(outArea);
  const len = load<u32>(outArea, 4);
  let text = "";
  if (ptr != 0 || len != 0) {
    const buf = takeBuffer(ptr, len);
    if (buf == null) {
      return new Reply(null, new HostError(name, Code.InvalidHostReply,
        "reply at " + ptr.toString() + "+" + len.toString() + " is outside guest memory"));
    }
    text = String.UTF8.decode(buf);
  }
  const v: JSONValue | null = text.length == 0 ? null : parse(text);
  if (status != 0) {
    if (v != null) {
      const e = v.get("error");
      if (e != null && e.getString("code").length > 0) {
        return new Reply(null, new HostError(name, e.getString("code"), e.getString("message")));
      }
    }
    return new Reply(null, new HostError(name, Code.InvalidHostReply,
      "host returned " + status.toString() + " without an error object"));
  }
  if (v == null) {
    if (text.length == 0) return new Reply(JSONValue.newObject(), null);
    return new Reply(null, new HostError(name, Code.InvalidHostReply, "reply is not JSON"));
  }
  return new Reply(v, null);
}

// ---- http.fetch ---------------------------------------------------------

/** An outbound HTTP request (capability http.fetch, egress policy of SPEC §5.3). */
export class FetchRequest {
  /** Headers sent as given. */
  headers: Map<string, string> = new Map<string, string>();
  /** The request body; null for none. */
  body: Uint8Array | null = null;
  /** Bounds the fetch (the host also caps it); 0 = the host's default. */
  timeoutMs: i32 = 0;

  constructor(
    /** Absolute URL; https unless the allowlist entry says http://. */
    public url: string,
    /** Defaults to GET. */
    public method: string = "GET",
  ) {}

  /** Sets a header; returns this. */
  header(name: string, value: string): FetchRequest { this.headers.set(name, value); return this; }
  /** Sets the body to the UTF-8 bytes of s; returns this. */
  text(s: string): FetchRequest { this.body = Uint8Array.wrap(String.UTF8.encode(s)); return this; }
  /** Sets a JSON body and its content type; returns this. */
  json(v: JSONValue): FetchRequest { return this.header("content-type", "application/json").text(v.toString()); }

  toJSON(): string {
    const o = JSONValue.newObject().setString("url", this.url).setString("method", this.method);
    if (this.headers.size > 0) o.set("headers", JSONValue.ofStringMap(this.headers));
    const b = this.body;
    if (b != null) o.setString("body_b64", encodeBase64(b));
    if (this.timeoutMs > 0) o.setNumber("timeout_ms", <f64>this.timeoutMs);
    return o.toString();
  }
}

/** The upstream's reply. Any HTTP status is a successful fetch. */
export class FetchResponse {
  status: i32 = 0;
  headers: Map<string, string> = new Map<string, string>();
  body: Uint8Array = new Uint8Array(0);

  /** The body as UTF-8 text. */
  text(): string { return String.UTF8.decodeUnsafe(this.body.dataStart, this.body.length); }
  /** The body parsed as JSON; null when it is not JSON. */
  json(): JSONValue | null { return parse(this.text()); }
}

/**
 * Performs an outbound HTTP request through the host. Errors: egress_denied,
 * invalid_url, timeout, transport, too_large, capability_denied.
 */
export function fetch(req: FetchRequest): Result<FetchResponse> {
  const r = call(FETCH, req.toJSON());
  const v = r.value;
  if (v == null) return new Result<FetchResponse>(null, r.error);
  const resp = new FetchResponse();
  resp.status = <i32>v.getNumber("status");
  resp.headers = v.getStringMap("headers");
  const body = decodeBase64(v.getString("body_b64"));
  if (body == null) return new Result<FetchResponse>(null, new HostError(FETCH, Code.InvalidHostReply, "body_b64 is not base64"));
  resp.body = body;
  return new Result<FetchResponse>(resp, null);
}

// ---- storage.kv ---------------------------------------------------------

/** One KV record. */
export class Item {
  namespace: string = "";
  key: string = "";
  value: JSONValue = JSONValue.ofNull();
  /** Starts at 1 and grows by one per write. */
  revision: i64 = 0;
  /** RFC 3339 expiry for records written with a TTL, else "". */
  expiresAt: string = "";

  static fromJSON(v: JSONValue): Item {
    const it = new Item();
    it.namespace = v.getString("namespace");
    it.key = v.getString("key");
    const val = v.get("value");
    if (val != null) it.value = val;
    it.revision = <i64>v.getNumber("revision");
    it.expiresAt = v.getString("expires_at");
    return it;
  }
}

/** One page of a list: items in key order and the next cursor ("" at the end). */
export class Page {
  items: Item[] = [];
  nextCursor: string = "";
}

/** The outcome of a delete. */
export class Deleted {
  constructor(public deleted: bool) {}
}

/** Optional conditions of a put or delete. */
export class PutOptions {
  /** Write only at this revision (0: only if the key does not exist); -1 = unconditional. */
  ifRevision: i64 = -1;
  /** Expire after this many seconds (60 s … 30 days); 0 = never. */
  ttlSeconds: i32 = 0;
}

function kvRequest(namespace: string, key: string): JSONValue {
  const o = JSONValue.newObject().setString("namespace", namespace);
  if (key.length > 0) o.setString("key", key);
  return o;
}

function itemResult(name: string, r: Reply): Result<Item> {
  const v = r.value;
  if (v == null) return new Result<Item>(null, r.error);
  const it = v.get("item");
  if (it == null || !it.isObject) return new Result<Item>(null, new HostError(name, name == GET ? Code.NotFound : Code.InvalidHostReply, "no item in reply"));
  return new Result<Item>(Item.fromJSON(it), null);
}

/**
 * The install's key-value storage (capability storage.kv, SPEC §7.6),
 * scoped to the tenant and install by the host.
 */
export namespace kv {
  /** The record; a missing key is a not_found error. */
  export function get(namespace: string, key: string): Result<Item> {
    return itemResult(GET, call(GET, kvRequest(namespace, key).toString()));
  }

  /**
   * Stores a JSON value and returns the stored item (with its new
   * revision). Errors: revision_mismatch, quota_exceeded, validation_failed.
   */
  export function put(namespace: string, key: string, value: JSONValue, opts: PutOptions | null = null): Result<Item> {
    const req = kvRequest(namespace, key).set("value", value);
    if (opts != null) {
      if (opts.ifRevision >= 0) req.setNumber("if_revision", <f64>opts.ifRevision);
      if (opts.ttlSeconds > 0) req.setNumber("ttl_seconds", <f64>opts.ttlSeconds);
    }
    return itemResult(PUT, call(PUT, req.toString()));
  }

  /** Removes the record; with ifRevision >= 0 only at that revision. */
  export function remove(namespace: string, key: string, ifRevision: i64 = -1): Result<Deleted> {
    const req = kvRequest(namespace, key);
    if (ifRevision >= 0) req.setNumber("if_revision", <f64>ifRevision);
    const r = call(DELETE, req.toString());
    const v = r.value;
    if (v == null) return new Result<Deleted>(null, r.error);
    return new Result<Deleted>(new Deleted(v.getBool("deleted")), null);
  }

  /** Up to limit records (host maximum 100; 0 = host default) whose keys start with prefix. */
  export function list(namespace: string, prefix: string = "", cursor: string = "", limit: i32 = 0): Result<Page> {
    const req = kvRequest(namespace, "");
    if (prefix.length > 0) req.setString("prefix", prefix);
    if (cursor.length > 0) req.setString("cursor", cursor);
    if (limit > 0) req.setNumber("limit", <f64>limit);
    const r = call(LIST, req.toString());
    const v = r.value;
    if (v == null) return new Result<Page>(null, r.error);
    const page = new Page();
    const items = v.get("items");
    if (items != null) {
      for (let i = 0; i < items.items.length; i++) page.items.push(Item.fromJSON(items.items[i]));
    }
    page.nextCursor = v.getString("next_cursor");
    return new Result<Page>(page, null);
  }
}

// ---- secrets.get --------------------------------------------------------

/** The install's secret key (capability secrets.get); missing is not_found. Never log it. */
export function secret(key: string): Result<string> {
  const r = call(SECRET, "{\"key\":" + quote(key) + "}");
  const v = r.value;
  if (v == null) return new Result<string>(null, r.error);
  return new Result<string>(v.getString("value"), null);
}

// ---- metrics.emit -------------------------------------------------------

/** Metric kinds. */
export namespace MetricKind {
  export const Counter = "counter";
  export const Gauge = "gauge";
  export const Histogram = "histogram";
}

/** Emits one sample; returns the error, or null. */
export function metric(name: string, value: f64, kind: string = MetricKind.Counter, labels: Map<string, string> | null = null): HostError | null {
  let body = "{\"name\":" + quote(name) + ",\"value\":" + formatNumber(value) + ",\"kind\":" + quote(kind);
  if (labels != null && labels.size > 0) body += ",\"labels\":" + JSONValue.ofStringMap(labels).toString();
  return call(METRIC, body + "}").error;
}

// ---- log ----------------------------------------------------------------

function logText(level: i32, msg: string): void {
  if (msg.length == 0) return;
  const b = String.UTF8.encode(msg);
  const p = changetype<usize>(b);
  const n = <usize>b.byteLength;
  if (level == 1) hostLogWarn(p, n);
  else if (level == 2) hostLogError(p, n);
  else hostLogInfo(p, n);
}

/** The runner's log and debug stream; it caps bytes per call and per invocation. */
export namespace log {
  export function info(msg: string): void { logText(0, msg); }
  export function warn(msg: string): void { logText(1, msg); }
  export function error(msg: string): void { logText(2, msg); }
}
