// The built-in `tinybase` party through TinyBase's own PartyKit persister
// (`createPartyKitPersister` over a `partysocket` PartySocket): stores persisting through one
// room see each other's changes and deletions, a store started later loads the content, and after
// a restart of the server over the same data dir a fresh store loads it intact. Also the raw HTTP
// side as the persister's `fetch` sees it (status codes, CORS headers, bodies).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import PartySocket from 'partysocket';
import { createStore } from 'tinybase';
import { createPartyKitPersister } from 'tinybase/persisters/persister-partykit-client';
import WS from 'ws';

import { Server, makeDataDir, removeDir, waitUntil, withTimeout } from './helpers.mjs';

const TEST_TIMEOUT = 60_000;

/**
 * A TinyBase store persisting to room `room` of party `tinybase`, once `startAutoPersisting` has
 * loaded and saved and its socket is open (a change is broadcast only to open sockets).
 */
async function tinyClient(server, room, { tables, values } = {}) {
  const socket = new PartySocket({
    host: server.addr,
    party: 'tinybase',
    room,
    WebSocket: WS, // Node 20 has no global WebSocket
    minReconnectionDelay: 20,
    maxReconnectionDelay: 200,
    connectionTimeout: 5_000,
  });
  const store = createStore();
  if (tables) store.setTables(tables);
  if (values) store.setValues(values);
  const errors = [];
  const persister = createPartyKitPersister(store, socket, 'http', (e) => errors.push(e));
  await withTimeout(persister.startAutoPersisting(), 10_000, `the persister of ${room} to start`);
  await waitUntil(() => socket.readyState === WS.OPEN, { timeoutMs: 10_000, what: `the socket of ${room} to open` });
  return { socket, store, persister, errors };
}

async function destroy(client) {
  await client.persister.destroy();
  client.socket.close();
}

/**
 * A client's content `[tables, values]` as plain objects (the store's own objects have no
 * prototype, which deep equality would tell apart from literals).
 */
function content(client) {
  return JSON.parse(JSON.stringify(client.store.getContent()));
}

/** Waits until every store holds `expected` (`[tables, values]`). */
function converged(clients, expected, what) {
  return waitUntil(() => clients.every((c) => isDeepStrictEqual(content(c), expected)), {
    timeoutMs: 10_000,
    what,
    detail: () => JSON.stringify(clients.map(content)).slice(0, 2000),
  });
}

function storeUrl(server, room) {
  return `${server.httpUrl}/parties/tinybase/${room}/store`;
}

function fetchStore(server, room, init = {}) {
  return withTimeout(fetch(storeUrl(server, room), { cache: 'no-store', ...init }), 5_000, `${init.method || 'GET'} of ${room}/store`);
}

function assertCors(res) {
  for (const name of ['Origin', 'Methods', 'Headers']) {
    assert.equal(res.headers.get(`access-control-allow-${name}`), '*', `Access-Control-Allow-${name}`);
  }
}

describe('tinybase via createPartyKitPersister', () => {
  let dataDir;
  let server;
  const clients = [];
  const track = (c) => (clients.push(c), c);

  before(async () => {
    dataDir = await makeDataDir();
    server = await Server.start(dataDir);
  });

  after(async () => {
    for (const c of clients) await destroy(c);
    if (server) await server.stop();
    await removeDir(dataDir);
  });

  test('the store endpoint answers as TinyBasePartyKitServer does', { timeout: TEST_TIMEOUT }, async () => {
    const room = 'raw-http';
    let res = await fetchStore(server, room);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '', 'an uninitialised room answers an empty body');
    assertCors(res);

    res = await fetchStore(server, room, { method: 'PUT', body: '[1]' });
    assert.equal(res.status, 400);
    assertCors(res);
    const content = [{ pets: { fido: { species: 'dog', legs: 4 } } }, { open: true }];
    res = await fetchStore(server, room, { method: 'PUT', body: JSON.stringify(content) });
    assert.equal(res.status, 201);
    assert.equal(await res.text(), '');
    res = await fetchStore(server, room, { method: 'PUT', body: JSON.stringify([{}, {}]) });
    assert.equal(res.status, 205);

    res = await fetchStore(server, room);
    assert.equal(res.status, 200);
    assertCors(res);
    assert.deepEqual(await res.json(), content);
    res = await fetchStore(server, room, { method: 'OPTIONS' });
    assert.equal(res.status, 200);
    assertCors(res);

    res = await withTimeout(fetch(`${server.httpUrl}/parties/tinybase/${room}/other`), 5_000, 'GET of other');
    assert.equal(res.status, 404);
    assertCors(res);
  });

  test('two stores share changes and deletions through one room; a later store loads the content', { timeout: TEST_TIMEOUT }, async () => {
    const room = 'shared';
    const a = track(
      await tinyClient(server, room, {
        tables: { pets: { fido: { species: 'dog', legs: 4 } }, petsX: { tom: { species: 'cat' } } },
        values: { open: true },
      }),
    );
    // A's first save initialised the room; B loads A's content over HTTP.
    const b = track(await tinyClient(server, room));
    const initial = [
      { pets: { fido: { species: 'dog', legs: 4 } }, petsX: { tom: { species: 'cat' } } },
      { open: true },
    ];
    assert.deepEqual(content(b), initial);

    // Changes both ways, including an array cell (sent U+FFFD-encoded) and a new row.
    a.store.transaction(() => {
      a.store.setCell('pets', 'fido', 'tags', ['a', 'b']);
      a.store.setRow('pets', 'felix', { species: 'cat', legs: 4 });
    });
    b.store.setValue('visits', 3);
    const changed = [
      {
        pets: { fido: { species: 'dog', legs: 4, tags: ['a', 'b'] }, felix: { species: 'cat', legs: 4 } },
        petsX: { tom: { species: 'cat' } },
      },
      { open: true, visits: 3 },
    ];
    await converged([a, b], changed, 'both stores to hold both changes');

    // Deletions at every level: a cell, a row, a value, then a whole table (`petsX` stays).
    b.store.delCell('pets', 'fido', 'tags');
    a.store.delRow('pets', 'felix');
    a.store.delValue('visits');
    await converged(
      [a, b],
      [{ pets: { fido: { species: 'dog', legs: 4 } }, petsX: { tom: { species: 'cat' } } }, { open: true }],
      'the cell, row and value deletions',
    );
    b.store.setRow('pets', 'rex', { species: 'dog' });
    await converged(
      [a, b],
      [{ pets: { fido: { species: 'dog', legs: 4 }, rex: { species: 'dog' } }, petsX: { tom: { species: 'cat' } } }, { open: true }],
      'the new row',
    );
    a.store.delTable('pets');
    b.store.setCell('petsX', 'tom', 'legs', 4);
    const final = [{ petsX: { tom: { species: 'cat', legs: 4 } } }, { open: true }];
    await converged([a, b], final, 'the table deletion');

    // A third store started now loads everything.
    const c = track(await tinyClient(server, room));
    assert.deepEqual(content(c), final);
    // And takes part.
    c.store.setValue('third', 'yes');
    const withThird = [final[0], { open: true, third: 'yes' }];
    await converged([a, b, c], withThird, 'the change of the third store');

    // What the server holds is what the stores hold.
    const res = await fetchStore(server, room);
    assert.deepEqual(await res.json(), withThird);
    for (const client of [a, b, c]) assert.deepEqual(client.errors, [], 'no errors reported by a persister');
  });

  test('after a restart over the same data dir, a fresh store loads the content intact', { timeout: TEST_TIMEOUT }, async () => {
    const room = 'durable';
    const a = await tinyClient(server, room, { tables: { notes: { n1: { text: 'héllo ✓ 🎉', done: false } } } });
    const b = await tinyClient(server, room);
    a.store.setCell('notes', 'n2', 'text', 'second');
    a.store.setValue('config', { theme: 'dark', sizes: [1, 2] });
    b.store.setCell('notes', 'n1', 'done', true);
    const expected = [
      { notes: { n1: { text: 'héllo ✓ 🎉', done: true }, n2: { text: 'second' } } },
      { config: { theme: 'dark', sizes: [1, 2] } },
    ];
    // Once each store holds the other's change, the room has stored both (a change is sent on
    // only after it is durable).
    await converged([a, b], expected, 'both stores before the restart');
    await destroy(a);
    await destroy(b);

    const exit = await server.stop();
    assert.equal(exit.code, 0, `the server exits 0 on SIGTERM (got ${JSON.stringify(exit)}); stderr:\n${server.stderr.text}`);
    server = await Server.start(dataDir);

    const fresh = track(await tinyClient(server, room));
    assert.deepEqual(content(fresh), expected);
    assert.deepEqual(JSON.parse(JSON.stringify(fresh.store.getValue('config'))), { theme: 'dark', sizes: [1, 2] });
    // Its own first save was ignored (205): the room's content stays as it was.
    const res = await fetchStore(server, room);
    assert.deepEqual(await res.json(), [
      { notes: { n1: { text: 'héllo ✓ 🎉', done: true }, n2: { text: 'second' } } },
      { config: '\uFFFD{"theme":"dark","sizes":[1,2]}' },
    ]);
    // The earlier room survived too.
    const other = track(await tinyClient(server, 'shared'));
    assert.equal(other.store.getValue('third'), 'yes');
    assert.deepEqual(fresh.errors, []);
  });
});
