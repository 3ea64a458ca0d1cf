// @extedge/guest: the AssemblyScript SDK for extedge handlers (Guest ABI v1,
// SPEC §5). The entry file of a handler module must re-export the ABI:
//
//   export { alloc, dealloc, handler } from "@extedge/guest";
//
// and register its handlers at top level (the start function runs them
// when the runner instantiates the module).
export { alloc, dealloc, handler, ReturnCode } from "./abi";
export { abortHandler } from "./abort";
export { JSONValue, Kind, parse, parseBytes, quote, formatNumber } from "./json";
export { encodeBase64, decodeBase64 } from "./base64";
export { Request, Context, HTTP, Endpoint, User } from "./request";
export { Response, statusForCode } from "./response";
export { handle, route, dispatch, canonicalHandler, HandlerFunc } from "./router";
export { HostError, Result, Code } from "./errors";
export { fetch, FetchRequest, FetchResponse, kv, Item, Page, Deleted, PutOptions, secret, metric, MetricKind, log } from "./host";
export { liveBuffers } from "./memory";
