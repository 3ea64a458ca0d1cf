// The module's abort (asc --use abort=~lib/@extedge/guest/assembly/abort/abortHandler):
// `throw` and failed assertions end here. It logs the message and location
// with log_error, then traps. It lives in a file of its own without
// globals: asc compiles it with the runtime, and state it touched would be
// used before the module's start function initialised it.

@external("alga", "log_error") declare function abortLog(ptr: usize, len: usize): void;

export function abortHandler(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let msg = "abort: " + (message != null ? message : "(no message)");
  if (fileName != null) msg += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  const b = String.UTF8.encode(msg);
  abortLog(changetype<usize>(b), <usize>b.byteLength);
  unreachable();
}
