// Guest ABI v1 exports (SPEC §5.1). A module re-exports these from its entry
// file (`export { alloc, dealloc, handler } from "@extedge/guest"`), since
// AssemblyScript only exports what the entry file exports.
import { parse } from "./json";
import { Request } from "./request";
import { Response } from "./response";
import { dispatch } from "./router";
import { allocBuffer, freeBuffer, liveBuffer, keepBuffer } from "./memory";
import { log } from "./host";

/** Return codes of handler; non-zero makes the runner report handler_error. */
export namespace ReturnCode {
  export const OK: i32 = 0;
  /** The request JSON could not be decoded. */
  export const BadRequest: i32 = 2;
  /** req_ptr/req_len or out_ptr do not name guest memory. */
  export const BadMemory: i32 = 3;
}

let calls = 0;

/** alloc(size) -> ptr: a zeroed buffer the host may write. */
export function alloc(size: i32): usize { return allocBuffer(size); }

/** dealloc(ptr, size): releases a buffer from alloc or a response. */
export function dealloc(ptr: usize, size: i32): void { freeBuffer(ptr); }

/**
 * handler(req_ptr, req_len, out_ptr) -> code: decodes the request, runs the
 * routed handler and stores (resp_ptr, resp_len) little-endian at out_ptr.
 */
export function handler(reqPtr: usize, reqLen: usize, outPtr: usize): i32 {
  // With instance reuse (SPEC §6.5) an instance serves many calls: collect
  // what the previous one left, at a point where no managed value is on
  // the stack (needed by the minimal runtime, harmless with the others).
  if (calls++ > 0) __collect();
  const reqBuf = liveBuffer(reqPtr, reqLen);
  if (reqBuf == null && !(reqPtr == 0 && reqLen == 0)) return ReturnCode.BadMemory;
  if (liveBuffer(outPtr, 8) == null) return ReturnCode.BadMemory;
  const text = reqBuf == null ? "" : String.UTF8.decodeUnsafe(reqPtr, reqLen);
  const v = parse(text);
  if (v == null) {
    log.error("decoding request: not JSON");
    return ReturnCode.BadRequest;
  }
  const req = Request.fromJSON(v);
  if (req == null) {
    log.error("decoding request: not a Guest ABI v1 request");
    return ReturnCode.BadRequest;
  }
  const resp: Response = dispatch(req);
  const body = resp.encode();
  const ptr = keepBuffer(body);
  store<u32>(outPtr, <u32>ptr);
  store<u32>(outPtr, <u32>body.byteLength, 4);
  return ReturnCode.OK;
}
