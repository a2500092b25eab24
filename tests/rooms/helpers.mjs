// Shared helpers of the rooms client tests: start and stop `cairn serve` as a child process,
// bounded waits, a message inbox for sockets, and the Prometheus metrics.
//
// Every wait here is bounded: a promise gets a timeout (`withTimeout`), a condition is polled a
// bounded number of times (`waitUntil`, `waitForMetric`). Nothing sleeps as a way of waiting.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The server binary: `$CAIRN_BIN` (relative to the repo root if relative), or target/debug/cairn. */
export const CAIRN_BIN = path.resolve(REPO_ROOT, process.env.CAIRN_BIN || 'target/debug/cairn');

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const SERVING_LINE = /cairn serving http:\/\/(\S+) with data in/;

// Children still running when the test process exits (a crash, an unfinished test) are killed.
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A fresh, empty data directory; `removeDir` deletes it. */
export function makeDataDir() {
  return mkdtemp(path.join(tmpdir(), 'cairn-rooms-test-'));
}

export function removeDir(dir) {
  return rm(dir, { recursive: true, force: true });
}

/** Resolves `promise`, or rejects after `ms` with an error naming `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` (sync or async) every `intervalMs` until it returns a truthy value, which is
 * returned; fails after `timeoutMs` (at most `timeoutMs / intervalMs + 1` polls).
 */
export async function waitUntil(check, { timeoutMs = 10_000, intervalMs = 20, what = 'a condition', detail } = {}) {
  const polls = Math.max(1, Math.ceil(timeoutMs / intervalMs)) + 1;
  for (let i = 0; i < polls; i++) {
    const value = await check();
    if (value) return value;
    if (i + 1 < polls) await pause(intervalMs);
  }
  const extra = detail ? `: ${await detail()}` : '';
  throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}${extra}`);
}

/**
 * A running `cairn serve` over `dataDir`. Start with `Server.start`; `stop` sends SIGTERM and
 * awaits the exit.
 */
export class Server {
  constructor(child, addr, dataDir, stderr) {
    this.child = child;
    this.addr = addr; // host:port of the main API
    this.dataDir = dataDir;
    this.stderr = stderr; // { text } — the last 64 KiB of stderr, drained continuously
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve({ code: child.exitCode, signal: child.signalCode });
      } else {
        child.once('exit', (code, signal) => resolve({ code, signal }));
      }
    });
  }

  get httpUrl() {
    return `http://${this.addr}`;
  }

  get wsUrl() {
    return `ws://${this.addr}`;
  }

  /**
   * Starts the server over `dataDir` on ephemeral loopback ports. `env` adds variables (for
   * example `CAIRN_ROOMS_HIBERNATE_AFTER_MS`); inherited `CAIRN_*` variables are dropped so that
   * a developer's token or settings do not change what is tested.
   */
  static async start(dataDir, env = {}) {
    const childEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith('CAIRN_')) childEnv[k] = v;
    }
    Object.assign(childEnv, env);
    const args = ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--s3-listen', '127.0.0.1:0'];
    const child = spawn(CAIRN_BIN, args, { env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    child.once('exit', () => running.delete(child));

    const stderr = { text: '' };
    let resolveAddr;
    let rejectAddr;
    const addrFound = new Promise((resolve, reject) => {
      resolveAddr = resolve;
      rejectAddr = reject;
    });
    let pending = '';
    child.stderr.setEncoding('utf8');
    // Keep draining stderr for the child's whole life: a full pipe would block it.
    child.stderr.on('data', (chunk) => {
      stderr.text = (stderr.text + chunk).slice(-64 * 1024);
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const m = SERVING_LINE.exec(line);
        if (m) resolveAddr(m[1]);
      }
    });
    child.once('error', (e) => rejectAddr(new Error(`cannot start ${CAIRN_BIN}: ${e.message}`)));
    child.once('exit', (code, signal) =>
      rejectAddr(new Error(`cairn serve exited (code ${code}, signal ${signal}) before serving:\n${stderr.text}`)),
    );
    let addr;
    try {
      addr = await withTimeout(addrFound, STARTUP_TIMEOUT_MS, `"cairn serving" on the server's stderr`);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    return new Server(child, addr, dataDir, stderr);
  }

  /** SIGTERM, then awaits the exit; returns `{ code, signal }`. SIGKILL (and an error) on timeout. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
    }
    try {
      return await withTimeout(this.exited, STOP_TIMEOUT_MS, 'the server to exit after SIGTERM');
    } catch (e) {
      this.child.kill('SIGKILL');
      throw e;
    }
  }

  /** The metrics as a Map from sample name (with labels, if any) to value. */
  async metrics() {
    const res = await withTimeout(fetch(`${this.httpUrl}/metrics`), 5_000, 'GET /metrics');
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${await res.text()}`);
    return parseMetrics(await res.text());
  }

  /** The value of metric `name` (also matched with a `_total` suffix or labels); undefined if absent. */
  async metric(name) {
    return metricValue(await this.metrics(), name);
  }

  /**
   * Polls /metrics until `pred(value of name)` holds: at most `polls` scrapes `intervalMs`
   * apart, then fails naming the last value seen.
   */
  async waitForMetric(name, pred, { polls = 100, intervalMs = 50, what } = {}) {
    let last;
    for (let i = 0; i < polls; i++) {
      last = await this.metric(name);
      if (last !== undefined && pred(last)) return last;
      if (i + 1 < polls) await pause(intervalMs);
    }
    throw new Error(`${what || `metric ${name}`}: condition not met after ${polls} polls ${intervalMs} ms apart (last value ${last})`);
  }
}

export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

export function metricValue(metrics, name) {
  for (const candidate of [name, `${name}_total`]) {
    if (metrics.has(candidate)) return metrics.get(candidate);
  }
  for (const [k, v] of metrics) {
    if (k.startsWith(`${name}{`) || k.startsWith(`${name}_total{`)) return v;
  }
  return undefined;
}

/**
 * Collects what a socket (an EventTarget or a `ws` socket) receives, so that tests can await a
 * message matching a predicate without missing one that arrived earlier. `decode` turns the
 * event's data into the stored item (JSON by default).
 */
export class Inbox {
  constructor(socket, { decode = (data) => JSON.parse(String(data)) } = {}) {
    this.items = [];
    this.waiters = [];
    this.all = []; // everything ever received, for error messages
    const onData = (data) => {
      const item = decode(data);
      this.all.push(item);
      this.items.push(item);
      this.#deliver();
    };
    if (typeof socket.on === 'function') {
      // A `ws` socket: text frames as strings, binary ones as Buffers.
      socket.on('message', (data, isBinary) => onData(isBinary ? data : data.toString('utf8')));
    } else {
      // An EventTarget such as partysocket's.
      socket.addEventListener('message', (e) => onData(e.data));
    }
  }

  #deliver() {
    for (const w of [...this.waiters]) {
      const i = this.items.findIndex(w.pred);
      if (i >= 0) {
        const [item] = this.items.splice(i, 1);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(item);
      }
    }
  }

  /** The first received item matching `pred` not taken yet (taken now), waiting up to `ms`. */
  next(pred, ms = 5_000, what = 'a message') {
    const i = this.items.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]);
    let waiter;
    const p = new Promise((resolve) => {
      waiter = { pred, resolve };
      this.waiters.push(waiter);
    });
    return withTimeout(p, ms, what).catch((e) => {
      const j = this.waiters.indexOf(waiter);
      if (j >= 0) this.waiters.splice(j, 1);
      e.message += `; received so far: ${JSON.stringify(this.all).slice(0, 2000)}`;
      throw e;
    });
  }
}

/** A string of `n` pseudo-random printable ASCII characters, the same for the same `seed`. */
export function pseudoRandomText(n, seed = 1) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;\n';
  let x = seed >>> 0 || 1;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = alphabet[x % alphabet.length];
  }
  return out.join('');
}
