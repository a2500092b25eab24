// Bad input from a raw `ws` client: an unknown party is refused with HTTP 404 at the upgrade,
// a text frame of invalid UTF-8 closes the socket with 1007, a message over the 1 MiB limit
// closes it with 1009 (one big frame, or fragments that add up), bad chat and yjs payloads are
// handled as their protocols say, and the server keeps serving everyone else throughout.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import WS from 'ws';

import { Inbox, Server, makeDataDir, removeDir, withTimeout } from './helpers.mjs';

const TEST_TIMEOUT = 30_000;
const MAX_MESSAGE = 1024 * 1024; // the server's default rooms.max_message_bytes

/** Opens a raw socket on `path`; resolves once open, with an inbox and the close to come. */
async function open(server, path) {
  const ws = new WS(`${server.wsUrl}${path}`);
  const inbox = new Inbox(ws, { decode: (d) => (typeof d === 'string' ? JSON.parse(d) : d) });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const errors = [];
  ws.on('error', (e) => errors.push(e.message));
  await withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade of ${path} answered HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    }),
    5_000,
    `the socket on ${path} to open`,
  );
  return { ws, inbox, closed, errors };
}

const closeOf = (s, what) => withTimeout(s.closed, 5_000, what);

/** The HTTP answer to an upgrade of `path` that the server refuses: `{ status, body }`. */
function refusedUpgrade(server, path) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WS(`${server.wsUrl}${path}`);
      ws.on('open', () => {
        ws.close();
        reject(new Error(`the upgrade of ${path} was accepted`));
      });
      ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          resolve({ status: res.statusCode, body });
          req.destroy();
        });
      });
      ws.on('error', (e) => reject(e));
    }),
    5_000,
    `the answer to the upgrade of ${path}`,
  );
}

describe('bad input over raw WebSockets', () => {
  let dataDir;
  let server;
  let bystander; // a chat socket that stays open through every test
  const sockets = [];

  before(async () => {
    dataDir = await makeDataDir();
    server = await Server.start(dataDir);
    bystander = await open(server, '/parties/chat/bad-input');
    await bystander.inbox.next((m) => m.type === 'history', 5_000, 'the bystander history');
  });

  after(async () => {
    for (const s of [bystander, ...sockets]) s?.ws.terminate();
    if (server) await server.stop();
    await removeDir(dataDir);
  });

  test('an unknown party is refused with HTTP 404 at the upgrade', { timeout: TEST_TIMEOUT }, async () => {
    const { status, body } = await refusedUpgrade(server, '/parties/no-such-party/room');
    assert.equal(status, 404);
    const error = JSON.parse(body).error;
    assert.equal(error.code, 'rooms.unknown_party', body);
  });

  test('a text frame of invalid UTF-8 closes the socket with 1007', { timeout: TEST_TIMEOUT }, async () => {
    const s = await open(server, '/parties/chat/bad-input');
    sockets.push(s);
    await s.inbox.next((m) => m.type === 'history');
    // ws does not check outgoing text: a Buffer sent with binary: false goes out as is.
    s.ws.send(Buffer.from([0x68, 0x69, 0xff, 0xfe, 0xc3, 0x28]), { binary: false });
    const { code } = await closeOf(s, 'the close after invalid UTF-8');
    assert.equal(code, 1007);
    // Nothing of it reached the room.
    assert.deepEqual(bystander.inbox.items.filter((m) => m.type === 'message'), []);
  });

  test('a message over 1 MiB closes the socket with 1009', { timeout: TEST_TIMEOUT }, async () => {
    const one = await open(server, '/parties/chat/bad-input');
    sockets.push(one);
    await one.inbox.next((m) => m.type === 'history');
    one.ws.send('x'.repeat(MAX_MESSAGE + 1));
    assert.equal((await closeOf(one, 'the close after a single oversized frame')).code, 1009);

    // Fragments under the limit each that add up to more than it.
    const frag = await open(server, '/parties/chat/bad-input');
    sockets.push(frag);
    await frag.inbox.next((m) => m.type === 'history');
    const part = Buffer.alloc(MAX_MESSAGE / 2 + 1, 0x61);
    frag.ws.send(part, { binary: true, fin: false });
    frag.ws.send(part, { binary: true, fin: true });
    assert.equal((await closeOf(frag, 'the close after an oversized fragmented message')).code, 1009);

    // A message of exactly the limit is fine (the chat room refuses its text, in its own way).
    const edge = await open(server, '/parties/chat/bad-input');
    sockets.push(edge);
    await edge.inbox.next((m) => m.type === 'history');
    edge.ws.send('y'.repeat(MAX_MESSAGE));
    const err = await edge.inbox.next((m) => m.type === 'error', 5_000, 'the chat error for a long text');
    assert.equal(err.code, 'chat.message_too_large');
    assert.equal(edge.ws.readyState, WS.OPEN);
  });

  test('bad chat payloads get an error frame and the socket stays open', { timeout: TEST_TIMEOUT }, async () => {
    const s = await open(server, '/parties/chat/bad-input');
    sockets.push(s);
    await s.inbox.next((m) => m.type === 'history');
    s.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await s.inbox.next((m) => m.type === 'error')).code, 'chat.binary_message');
    s.ws.send(JSON.stringify({ type: 'message', text: 'z'.repeat(16 * 1024 + 1) }));
    assert.equal((await s.inbox.next((m) => m.type === 'error')).code, 'chat.message_too_large');
    s.ws.send(JSON.stringify({ type: 'message', text: 'ok', user: 'u'.repeat(257) }));
    assert.equal((await s.inbox.next((m) => m.type === 'error')).code, 'chat.user_too_large');
    // Still usable.
    s.ws.send(JSON.stringify({ type: 'message', text: 'still here', user: 'raw' }));
    const ack = await s.inbox.next((m) => m.type === 'ack');
    const seen = await bystander.inbox.next((m) => m.type === 'message' && m.message.text === 'still here');
    assert.equal(seen.message.seq, ack.seq);
  });

  test('a binary frame that is not a y-protocols message closes a yjs socket with 1007', { timeout: TEST_TIMEOUT }, async () => {
    let s;
    try {
      s = await open(server, '/parties/yjs/bad-input');
    } catch (e) {
      assert.fail(`party yjs is not served: ${e.message}`);
    }
    sockets.push(s);
    // The room's greeting: sync step 1 (message type 0, sub-type 0).
    const first = await s.inbox.next(() => true, 5_000, 'the yjs sync step 1');
    assert.ok(Buffer.isBuffer(first) && first[0] === 0 && first[1] === 0, `first frame: ${first?.toString('hex')}`);
    // Sync message with an unknown sub-type 7.
    s.ws.send(Buffer.from([0x00, 0x07, 0x00]), { binary: true });
    assert.equal((await closeOf(s, 'the close after a malformed yjs frame')).code, 1007);

    const truncated = await open(server, '/parties/yjs/bad-input');
    sockets.push(truncated);
    await truncated.inbox.next(() => true, 5_000, 'the yjs sync step 1');
    // Sync update announcing 5 bytes of payload and carrying 1.
    truncated.ws.send(Buffer.from([0x00, 0x02, 0x05, 0x01]), { binary: true });
    assert.equal((await closeOf(truncated, 'the close after a truncated yjs frame')).code, 1007);
  });

  test('the server keeps serving other clients afterwards', { timeout: TEST_TIMEOUT }, async () => {
    assert.equal(server.child.exitCode, null, 'the server is still running');
    assert.equal(bystander.ws.readyState, WS.OPEN, 'the bystander socket was never closed');
    const late = await open(server, '/parties/chat/bad-input');
    sockets.push(late);
    const h = await late.inbox.next((m) => m.type === 'history');
    assert.deepEqual(h.messages.map((m) => m.text), ['still here']);
    late.ws.send(JSON.stringify({ type: 'message', text: 'after the bad input', user: 'late' }));
    await late.inbox.next((m) => m.type === 'ack');
    await bystander.inbox.next((m) => m.type === 'message' && m.message.text === 'after the bad input');
    bystander.ws.send(JSON.stringify({ type: 'message', text: 'and back' }));
    await late.inbox.next((m) => m.type === 'message' && m.message.text === 'and back');

    const res = await withTimeout(fetch(`${server.httpUrl}/metrics`), 5_000, 'GET /metrics');
    assert.equal(res.status, 200);
    await res.text();
  });
});
