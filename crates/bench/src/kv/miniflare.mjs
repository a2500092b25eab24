// The Miniflare anchor of `cairn bench kv`: runs Miniflare (installed with
// `npm install --prefix $MINIFLARE_PREFIX miniflare`) with a Worker that exposes its KV
// namespace and D1 database over HTTP, both persisted under $PERSIST_DIR.
//
// Prints `MINIFLARE_URL <url>` when it is ready (Miniflare's own messages are other lines); disposes of Miniflare (and its workerd
// process) and exits when its standard input closes.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(`${process.env.MINIFLARE_PREFIX}/`);
const { Log, LogLevel, Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);

const worker = `
export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname.startsWith("/k/")) {
      const key = decodeURIComponent(pathname.slice(3));
      if (request.method === "PUT") {
        await env.KV.put(key, await request.arrayBuffer());
        return Response.json({});
      }
      const value = await env.KV.get(key, "arrayBuffer");
      return value === null ? new Response("key not found", { status: 404 }) : new Response(value);
    }
    if (pathname === "/list") {
      const page = await env.KV.list({ limit: 1000 });
      return Response.json({ keys: page.keys, cursor: page.cursor ?? "" });
    }
    if (pathname === "/d1/query") {
      const { sql, params } = await request.json();
      return Response.json(await env.DB.prepare(sql).bind(...(params ?? [])).first());
    }
    if (pathname === "/d1/batch") {
      const { batch } = await request.json();
      const statements = batch.map((s) => env.DB.prepare(s.sql).bind(...(s.params ?? [])));
      return Response.json(await env.DB.batch(statements));
    }
    return new Response("no route", { status: 404 });
  },
};
`;

const persist = process.env.PERSIST_DIR;
const mf = new Miniflare({
  modules: true,
  script: worker,
  kvNamespaces: ["KV"],
  d1Databases: ["DB"],
  kvPersist: `${persist}/kv`,
  d1Persist: `${persist}/d1`,
  host: "127.0.0.1",
  port: 0,
  log: new Log(LogLevel.WARN),
  // No fetching of the `Request.cf` placeholder from the network.
  cf: false,
});
const url = await mf.ready;
console.log(`MINIFLARE_URL ${url.href}`);

process.stdin.on("end", async () => {
  await mf.dispose();
  process.exit(0);
});
process.stdin.resume();
