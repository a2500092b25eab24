// The built-in `yjs` party through the real `y-websocket` client (`WebsocketProvider`) and
// `yjs`: documents converge both ways, awareness is shared, the document survives a restart and
// hibernation, and a document of a few MB (built in chunks under the 1 MiB message limit)
// survives a restart.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import WS from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';

import { Server, makeDataDir, pseudoRandomText, removeDir, waitUntil, withTimeout } from './helpers.mjs';

const TEST_TIMEOUT = 60_000;

/**
 * Whether the server serves party `yjs`: the upgrade of /parties/yjs/{room} is answered with 101
 * (true) or an HTTP status (returned as a number).
 */
function probeYjs(server) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WS(`${server.wsUrl}/parties/yjs/probe`);
      ws.on('open', () => {
        ws.close();
        resolve(true);
      });
      ws.on('unexpected-response', (req, res) => {
        resolve(res.statusCode);
        req.destroy();
      });
      ws.on('error', (e) => reject(e));
    }),
    5_000,
    'the upgrade of /parties/yjs/probe',
  );
}

/** A doc connected to room `name` of party `yjs`, once synced with the room. */
async function connectDoc(server, name, { doc = new Y.Doc(), user } = {}) {
  const provider = new WebsocketProvider(`${server.wsUrl}/parties/yjs`, name, doc, {
    WebSocketPolyfill: WS, // Node 20 has no global WebSocket
    disableBc: true, // Node has BroadcastChannel: without this, docs in one process would sync around the server
    maxBackoffTime: 200,
  });
  const closes = [];
  provider.on('connection-close', (e) => closes.push(e ? { code: e.code, reason: e.reason } : null));
  if (user) provider.awareness.setLocalStateField('user', user);
  const client = { doc, provider, closes, name };
  await waitUntil(() => provider.synced, {
    timeoutMs: 15_000,
    what: `the provider of ${name} to sync`,
    detail: () => `status connected=${provider.wsconnected}, closes ${JSON.stringify(closes)}`,
  });
  return client;
}

function destroy(client) {
  client.provider.destroy();
  client.doc.destroy();
}

function stateVector(doc) {
  return [...Y.decodeStateVector(Y.encodeStateVector(doc)).entries()].sort((a, b) => a[0] - b[0]);
}

function snapshot(doc) {
  return {
    text: doc.getText('text').toString(),
    map: doc.getMap('map').toJSON(),
    list: doc.getArray('list').toJSON(),
  };
}

/** Waits until every doc has the same content as the first, and returns it. */
async function converged(clients, what, check = () => true, timeoutMs = 10_000) {
  return waitUntil(
    () => {
      const first = snapshot(clients[0].doc);
      const same = clients.every((c) => isDeepStrictEqual(snapshot(c.doc), first));
      return same && check(snapshot(clients[0].doc)) ? snapshot(clients[0].doc) : null;
    },
    { timeoutMs, what, detail: () => JSON.stringify(clients.map((c) => snapshot(c.doc))).slice(0, 2000) },
  );
}

function awarenessUser(observer, of) {
  return observer.provider.awareness.getStates().get(of.doc.clientID)?.user;
}

describe('yjs via y-websocket', () => {
  let dataDir;
  let server;
  let served;
  const clients = [];
  const track = (c) => (clients.push(c), c);
  const connect = async (...args) => track(await connectDoc(server, ...args));

  const requireYjs = () => {
    if (served !== true) {
      assert.fail(`party yjs is not served: the upgrade of /parties/yjs/probe was answered with HTTP ${served}`);
    }
  };

  before(async () => {
    dataDir = await makeDataDir();
    server = await Server.start(dataDir);
    served = await probeYjs(server);
  });

  after(async () => {
    for (const c of clients) destroy(c);
    if (server) await server.stop();
    await removeDir(dataDir);
  });

  test('party yjs accepts WebSocket upgrades', { timeout: TEST_TIMEOUT }, () => {
    requireYjs();
  });

  test('two docs converge (text, map, array, both ways) and see each other\'s awareness', { timeout: TEST_TIMEOUT }, async () => {
    requireYjs();
    const room = 'converge';
    const a = await connect(room, { user: { name: 'ada', color: '#f00' } });
    const b = await connect(room, { user: { name: 'bob', color: '#00f' } });

    a.doc.getText('text').insert(0, 'hello');
    a.doc.getMap('map').set('from-a', 1);
    await converged([a, b], 'the edits of a to reach b', (s) => s.text === 'hello' && s.map['from-a'] === 1);

    b.doc.getText('text').insert(5, ' world');
    b.doc.getMap('map').set('from-b', { nested: [1, 2, 3] });
    b.doc.getArray('list').push(['b1', 'b2']);
    const s = await converged([a, b], 'the edits of b to reach a', (x) => x.text === 'hello world' && x.list.length === 2);
    assert.deepEqual(s.map, { 'from-a': 1, 'from-b': { nested: [1, 2, 3] } });

    // Concurrent edits of the same things: both sides end up with the same merge.
    a.doc.transact(() => {
      a.doc.getText('text').insert(0, '[a]');
      a.doc.getMap('map').set('both', 'a');
      a.doc.getArray('list').insert(0, ['a0']);
    });
    b.doc.transact(() => {
      b.doc.getText('text').insert(0, '[b]');
      b.doc.getMap('map').set('both', 'b');
      b.doc.getArray('list').push(['b3']);
    });
    const merged = await converged([a, b], 'concurrent edits to converge', (x) => x.text.length === 'hello world'.length + 6 && x.list.length === 4);
    assert.ok(merged.text.includes('[a]') && merged.text.includes('[b]') && merged.text.endsWith('hello world'), merged.text);
    assert.ok(['a', 'b'].includes(merged.map.both));
    assert.deepEqual(stateVector(a.doc), stateVector(b.doc));

    // Awareness: each sees the other's state, and updates to it.
    await waitUntil(() => awarenessUser(b, a)?.name === 'ada' && awarenessUser(a, b)?.name === 'bob', {
      what: 'each client to see the other\'s awareness state',
      detail: () => JSON.stringify([[...a.provider.awareness.getStates()], [...b.provider.awareness.getStates()]]),
    });
    a.provider.awareness.setLocalStateField('cursor', { index: 3 });
    await waitUntil(() => b.provider.awareness.getStates().get(a.doc.clientID)?.cursor?.index === 3, {
      what: 'b to see a\'s cursor',
    });

    // A third client joining late gets the document and both awareness states.
    const c = await connect(room);
    assert.deepEqual(snapshot(c.doc), snapshot(a.doc));
    await waitUntil(() => awarenessUser(c, a)?.name === 'ada' && awarenessUser(c, b)?.name === 'bob', {
      what: 'a late joiner to get the current awareness states',
      detail: () => JSON.stringify([...c.provider.awareness.getStates()]),
    });

    // When a leaves, the others see its awareness state go away.
    destroy(a);
    clients.splice(clients.indexOf(a), 1);
    await waitUntil(() => !b.provider.awareness.getStates().has(a.doc.clientID) && !c.provider.awareness.getStates().has(a.doc.clientID), {
      what: 'a\'s awareness state to be removed at the others',
    });
  });

  test('after a restart, a fresh doc syncing from the room has the same content', { timeout: TEST_TIMEOUT }, async () => {
    requireYjs();
    const room = 'durable-doc';
    const a = await connect(room);
    const b = await connect(room);
    a.doc.getText('text').insert(0, 'persisted text ✓ 🎉');
    a.doc.getMap('map').set('k', 'v');
    b.doc.getArray('list').push([1, 'two', { three: 3 }]);
    b.doc.getMap('map').set('n', 42);
    // Each side seeing the other's edits means the room applied them, and the room sends an
    // update on only once it is durable.
    const expected = await converged([a, b], 'a and b to converge', (s) => s.list.length === 3 && s.map.n === 42 && s.map.k === 'v');
    const expectedVector = stateVector(a.doc);

    const exit = await server.stop();
    assert.equal(exit.code, 0, `the server exits 0 on SIGTERM (got ${JSON.stringify(exit)})`);
    await waitUntil(() => a.closes.length > 0, { what: 'the provider to see its socket closed' });
    assert.equal(a.closes[0]?.code, 1001, `close code at shutdown: ${JSON.stringify(a.closes)}`);
    destroy(a);
    destroy(b);
    clients.splice(clients.indexOf(a), 1);
    clients.splice(clients.indexOf(b), 1);

    server = await Server.start(dataDir);
    const fresh = await connect(room);
    assert.deepEqual(snapshot(fresh.doc), expected);
    assert.deepEqual(stateVector(fresh.doc), expectedVector);

    // And the room goes on taking edits.
    const other = await connect(room);
    fresh.doc.getText('text').insert(0, '> ');
    await converged([fresh, other], 'an edit after the restart to propagate', (s) => s.text.startsWith('> persisted'));

    // The room from the first test survived too.
    const old = await connect('converge');
    assert.ok(old.doc.getText('text').toString().endsWith('hello world'), old.doc.getText('text').toString());
  });

  test('a document of a few MB, built in chunks, survives a restart', { timeout: TEST_TIMEOUT }, async () => {
    requireYjs();
    const room = 'big-doc';
    const CHUNK = 256 * 1024; // each edit is one update of ~256 KiB, under the 1 MiB message limit
    const CHUNKS = 12; // 3 MiB in all
    const writer = await connect(room);
    const watcher = await connect(room);
    const text = writer.doc.getText('text');
    const chunks = [];
    for (let i = 0; i < CHUNKS; i++) {
      const chunk = pseudoRandomText(CHUNK, i + 1);
      chunks.push(chunk);
      text.insert(text.length, chunk);
    }
    writer.doc.getMap('map').set('chunks', CHUNKS);
    const expected = chunks.join('');
    await waitUntil(() => watcher.doc.getText('text').length === expected.length && watcher.doc.getMap('map').get('chunks') === CHUNKS, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'the watcher to receive the whole document',
      detail: () => `watcher has ${watcher.doc.getText('text').length} of ${expected.length} characters; closes ${JSON.stringify(writer.closes)}`,
    });
    assert.equal(watcher.doc.getText('text').toString(), expected);
    assert.deepEqual(writer.closes, [], 'the writer was never disconnected');

    await server.stop();
    destroy(writer);
    destroy(watcher);
    clients.splice(clients.indexOf(writer), 1);
    clients.splice(clients.indexOf(watcher), 1);

    server = await Server.start(dataDir);
    const fresh = await connect(room);
    assert.equal(fresh.doc.getText('text').length, expected.length);
    assert.ok(fresh.doc.getText('text').toString() === expected, 'the text after the restart differs from what was written');
    assert.equal(fresh.doc.getMap('map').get('chunks'), CHUNKS);
  });
});

describe('yjs with fast hibernation', () => {
  let dataDir;
  let server;
  let served;
  const clients = [];
  const track = (c) => (clients.push(c), c);
  const connect = async (...args) => track(await connectDoc(server, ...args));

  before(async () => {
    dataDir = await makeDataDir();
    server = await Server.start(dataDir, { CAIRN_ROOMS_HIBERNATE_AFTER_MS: '200' });
    served = await probeYjs(server);
  });

  after(async () => {
    for (const c of clients) destroy(c);
    if (server) await server.stop();
    await removeDir(dataDir);
  });

  test('after hibernation an edit still propagates, awareness is kept, a fresh client gets everything', { timeout: TEST_TIMEOUT }, async () => {
    if (served !== true) assert.fail(`party yjs is not served: HTTP ${served}`);
    const room = 'sleepy-doc';
    const a = await connect(room, { user: { name: 'ada' } });
    const b = await connect(room, { user: { name: 'bob' } });
    a.doc.getText('text').insert(0, 'before sleeping');
    await converged([a, b], 'the first edit', (s) => s.text === 'before sleeping');
    await waitUntil(() => awarenessUser(b, a)?.name === 'ada' && awarenessUser(a, b)?.name === 'bob', {
      what: 'awareness before hibernation',
    });

    await server.waitForMetric('cairn_rooms_hibernated', (n) => n >= 1, { what: 'the yjs room to hibernate' });
    const wakeupsBefore = await server.metric('cairn_room_wakeups');
    assert.notEqual(wakeupsBefore, undefined, 'cairn_room_wakeups is exported');

    // An edit while the room hibernates wakes it and reaches the other client.
    b.doc.getText('text').insert(0, 'woken: ');
    await converged([a, b], 'an edit after hibernation', (s) => s.text === 'woken: before sleeping');
    await server.waitForMetric('cairn_room_wakeups', (n) => n > wakeupsBefore, { what: 'a wake-up to be counted' });
    assert.deepEqual(a.closes, [], 'a was never disconnected');
    assert.deepEqual(b.closes, [], 'b was never disconnected');

    // Hibernate again; a fresh client's connect wakes the room and gets the document and the
    // awareness states of the sockets that stayed open (kept with the sockets, not the instance).
    await server.waitForMetric('cairn_rooms_hibernated', (n) => n >= 1, { what: 'the yjs room to hibernate again' });
    const c = await connect(room);
    assert.deepEqual(snapshot(c.doc), snapshot(a.doc));
    await waitUntil(() => awarenessUser(c, a)?.name === 'ada' && awarenessUser(c, b)?.name === 'bob', {
      what: 'a fresh client to get the awareness states after hibernation',
      detail: () => JSON.stringify([...c.provider.awareness.getStates()]),
    });

    // Edits from all three still propagate.
    a.doc.getMap('map').set('a', 1);
    c.doc.getArray('list').push(['c']);
    await converged([a, b, c], 'edits after the wake-up', (s) => s.map.a === 1 && s.list.length === 1);
  });
});
