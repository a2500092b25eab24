// The Miniflare anchor of `cairn bench rooms`: bundles the chat Worker ($WORKER_SOURCE, which
// imports `partyserver`) with esbuild, both installed with `npm install --prefix $NPM_PREFIX`
// (scripts/bench-rooms.sh), and runs it on Miniflare with its Durable Objects (SQLite-backed)
// persisted under $PERSIST_DIR.
//
// Prints `MINIFLARE_URL <url>` when it is ready (Miniflare's own messages are other lines);
// disposes of Miniflare (and its workerd process) and exits when its standard input closes.
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const prefix = process.env.NPM_PREFIX;
const require = createRequire(`${prefix}/`);
const { Log, LogLevel, Miniflare } = await import(pathToFileURL(require.resolve("miniflare")).href);
const esbuild = await import(pathToFileURL(require.resolve("esbuild")).href);

const source = process.env.WORKER_SOURCE;
const built = await esbuild.build({
  stdin: { contents: await readFile(source, "utf8"), resolveDir: dirname(source), sourcefile: "chat-worker.js" },
  nodePaths: [join(prefix, "node_modules")],
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["module", "main"],
  external: ["cloudflare:*"],
  write: false,
  logLevel: "warning",
});
const script = built.outputFiles[0].text;
const persist = process.env.PERSIST_DIR;
await writeFile(join(persist, "chat-worker.bundle.mjs"), script);

const mf = new Miniflare({
  modules: true,
  script,
  compatibilityDate: "2026-04-01",
  durableObjects: { Chat: { className: "Chat", useSQLite: true } },
  durableObjectsPersist: join(persist, "do"),
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
