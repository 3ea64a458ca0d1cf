// hello-as is the smallest extedge handler in AssemblyScript: GET /hello
// answers with a greeting, like examples/hello (Go). Build with
// `npm install && npm run build` (dist/hello.wasm).
import { Request, Response, JSONValue, handle, log } from "@extedge/guest";

// The ABI exports must come from the entry file.
export { alloc, dealloc, handler } from "@extedge/guest";

function hello(r: Request): Response {
  const greeting = r.configString("greeting", "hello");
  let name = r.query("name");
  if (name.length == 0) name = "world";
  log.info("greeting " + name);
  return Response.json(200, JSONValue.newObject()
    .setString("message", greeting + ", " + name)
    .setString("request_id", r.context.requestId));
}

handle("dist/hello", hello);
