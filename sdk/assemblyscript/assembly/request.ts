// The request the host hands to the guest for one call (SPEC §5.1).
import { JSONValue, parseBytes } from "./json";
import { decodeBase64 } from "./base64";

/** Who is calling which installed version. */
export class Context {
  requestId: string = "";
  tenantId: string = "";
  extensionId: string = "";
  installId: string = "";
  versionId: string = "";
  contentHash: string = "";
}

/** The client request as the gateway forwarded it. Header names are lowercase. */
export class HTTP {
  method: string = "";
  path: string = "";
  query: Map<string, string> = new Map<string, string>();
  headers: Map<string, string> = new Map<string, string>();
  /** The body; null when the request had none. */
  body: Uint8Array | null = null;
}

/** The manifest endpoint the gateway matched, with its URL-decoded params. */
export class Endpoint {
  method: string = "";
  path: string = "";
  handler: string = "";
  params: Map<string, string> = new Map<string, string>();
}

/** The calling user; present only when the install has user.read. */
export class User {
  id: string = "";
  email: string = "";
  name: string = "";
  type: string = "";
}

/** One call's request. */
export class Request {
  context: Context = new Context();
  http: HTTP = new HTTP();
  endpoint: Endpoint = new Endpoint();
  /** The install's configuration object (a null value when absent). */
  config: JSONValue = JSONValue.ofNull();
  user: User | null = null;

  /** Decodes the request JSON; null when it is not the ABI's shape. */
  static fromJSON(v: JSONValue): Request | null {
    if (!v.isObject) return null;
    const r = new Request();
    const c = v.get("context");
    if (c != null) {
      r.context.requestId = c.getString("request_id");
      r.context.tenantId = c.getString("tenant_id");
      r.context.extensionId = c.getString("extension_id");
      r.context.installId = c.getString("install_id");
      r.context.versionId = c.getString("version_id");
      r.context.contentHash = c.getString("content_hash");
    }
    const h = v.get("http");
    if (h != null) {
      r.http.method = h.getString("method");
      r.http.path = h.getString("path");
      r.http.query = h.getStringMap("query");
      r.http.headers = h.getStringMap("headers");
      const b = h.get("body_b64");
      if (b != null && b.isString) {
        const body = decodeBase64(b.stringValue);
        if (body == null) return null;
        r.http.body = body;
      }
    }
    const e = v.get("endpoint");
    if (e != null) {
      r.endpoint.method = e.getString("method");
      r.endpoint.path = e.getString("path");
      r.endpoint.handler = e.getString("handler");
      r.endpoint.params = e.getStringMap("params");
    }
    const cfg = v.get("config");
    if (cfg != null) r.config = cfg;
    const u = v.get("user");
    if (u != null && u.isObject) {
      const user = new User();
      user.id = u.getString("id");
      user.email = u.getString("email");
      user.name = u.getString("name");
      user.type = u.getString("type");
      r.user = user;
    }
    return r;
  }

  /** The path parameter name (`:name` in the pattern), or "". */
  param(name: string): string {
    return this.endpoint.params.has(name) ? this.endpoint.params.get(name) : "";
  }
  /** The query parameter name, or "". */
  query(name: string): string {
    return this.http.query.has(name) ? this.http.query.get(name) : "";
  }
  /** The query parameter name as an integer, or def when missing or not one. */
  queryInt(name: string, def: i64 = 0): i64 {
    const s = this.query(name).trim();
    if (s.length == 0) return def;
    let i = s.charCodeAt(0) == 0x2d ? 1 : 0;
    if (i == s.length) return def;
    for (let k = i; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x30 || c > 0x39) return def;
    }
    return I64.parseInt(s, 10);
  }
  /** The request header name (case-insensitive), or "". */
  header(name: string): string {
    if (this.http.headers.has(name)) return this.http.headers.get(name);
    const lower = name.toLowerCase();
    return this.http.headers.has(lower) ? this.http.headers.get(lower) : "";
  }
  /** The body as UTF-8 text ("" without a body). */
  text(): string {
    const b = this.http.body;
    if (b == null) return "";
    return String.UTF8.decodeUnsafe(b.dataStart, b.length);
  }
  /** The body parsed as JSON; null without a body or when it is not JSON. */
  json(): JSONValue | null {
    const b = this.http.body;
    if (b == null || b.length == 0) return null;
    return parseBytes(b);
  }
  /** The string member key of the install config, or def. */
  configString(key: string, def: string = ""): string {
    return this.config.getString(key, def);
  }
}
