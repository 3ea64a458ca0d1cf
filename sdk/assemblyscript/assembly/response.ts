// What a handler returns; sent as {"status","headers","body_b64"} (SPEC §5.1).
import { JSONValue, quote } from "./json";
import { base64Len, encodeBase64Into } from "./base64";
import { HostError, Code } from "./errors";

/** An HTTP response: status 100–599, single-valued headers, a raw body. */
export class Response {
  status: i32 = 200;
  headers: Map<string, string> = new Map<string, string>();
  body: Uint8Array = new Uint8Array(0);

  constructor(status: i32 = 200) { this.status = status; }

  /** Sets a header; returns this. */
  withHeader(name: string, value: string): Response {
    this.headers.set(name, value);
    return this;
  }
  /** Replaces the body with the UTF-8 bytes of s; returns this. */
  withText(s: string): Response {
    this.body = Uint8Array.wrap(String.UTF8.encode(s));
    return this;
  }

  /** A JSON response with v encoded. */
  static json(status: i32, v: JSONValue): Response {
    return Response.rawJSON(status, v.toString());
  }
  /** A JSON response whose body is already-encoded JSON text. */
  static rawJSON(status: i32, jsonText: string): Response {
    return new Response(status).withHeader("content-type", "application/json").withText(jsonText);
  }
  /** A plain-text response. */
  static text(status: i32, s: string): Response {
    return new Response(status).withHeader("content-type", "text/plain; charset=utf-8").withText(s);
  }
  /** A JSON error {"error":{"code","message"}}, the gateway's own error shape. */
  static error(status: i32, code: string, message: string): Response {
    return Response.rawJSON(status, "{\"error\":{\"code\":" + quote(code) + ",\"message\":" + quote(message) + "}}");
  }
  /**
   * A failed host call as a JSON error that keeps its code and message, with
   * a status that fits the code (not_found → 404, revision_mismatch → 409,
   * quota_exceeded → 429, validation_failed → 400, capability_denied → 403,
   * timeout → 504, egress and transport codes → 502, others → 500).
   */
  static fromError(e: HostError): Response {
    return Response.error(statusForCode(e.code), e.code, e.message);
  }

  /**
   * The ABI encoding of the response, as UTF-8 bytes: the body's base64 is
   * written straight into the result.
   */
  encode(): ArrayBuffer {
    let status = this.status;
    if (status == 0) status = 200;
    let head = "{\"status\":" + status.toString() + ",\"headers\":{";
    const ks = this.headers.keys();
    for (let i = 0; i < ks.length; i++) {
      if (i > 0) head += ",";
      head += quote(ks[i]) + ":" + quote(this.headers.get(ks[i]));
    }
    head += "},\"body_b64\":\"";
    const headLen = String.UTF8.byteLength(head);
    const b64 = base64Len(this.body.length);
    const out = new ArrayBuffer(headLen + b64 + 2);
    const p = changetype<usize>(out);
    String.UTF8.encodeUnsafe(changetype<usize>(head), head.length, p);
    encodeBase64Into(this.body.dataStart, this.body.length, p + headLen);
    store<u8>(p + headLen + b64, 0x22);
    store<u8>(p + headLen + b64 + 1, 0x7d);
    return out;
  }
}

/** The HTTP status Response.fromError answers a host error code with. */
export function statusForCode(code: string): i32 {
  if (code == Code.NotFound) return 404;
  if (code == Code.RevisionMismatch) return 409;
  if (code == Code.QuotaExceeded) return 429;
  if (code == Code.ValidationFailed) return 400;
  if (code == Code.CapabilityDenied) return 403;
  if (code == Code.Timeout) return 504;
  if (code == Code.EgressDenied || code == Code.InvalidURL || code == Code.Transport ||
      code == Code.TooLarge || code == Code.InvalidHostReply) return 502;
  if (code == Code.HostCallLimit) return 503;
  return 500;
}
