// The built-in `chat` party through PartyKit's own client, `partysocket`: two clients exchange
// messages, a late joiner gets the history, the history survives a restart of the server, and
// a hibernated room wakes up with its history and sequence intact.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import PartySocket from 'partysocket';
import WS from 'ws';

import { Inbox, Server, makeDataDir, removeDir, withTimeout } from './helpers.mjs';

const TEST_TIMEOUT = 30_000;

/** A partysocket client of `room` in party `chat`, with an inbox of the JSON it receives. */
function chatClient(addr, room, extra = {}) {
  const socket = new PartySocket({
    host: addr,
    party: 'chat',
    room,
    WebSocket: WS, // Node 20 has no global WebSocket
    minReconnectionDelay: 20,
    maxReconnectionDelay: 200,
    connectionTimeout: 5_000,
    ...extra,
  });
  const inbox = new Inbox(socket);
  const closes = [];
  socket.addEventListener('close', (e) => closes.push({ code: e.code, reason: e.reason }));
  return { socket, inbox, closes, id: socket.id };
}

const history = (inbox, what = 'the history') => inbox.next((m) => m.type === 'history', 5_000, what);
const ackOf = (inbox, what = 'an ack') => inbox.next((m) => m.type === 'ack', 5_000, what);
const messageWith = (inbox, text) =>
  inbox.next((m) => m.type === 'message' && m.message?.text === text, 5_000, `the message ${JSON.stringify(text)}`);

function say(client, text, user) {
  client.socket.send(JSON.stringify({ type: 'message', text, user }));
}

/** Sends `text` and awaits the ack; returns it. */
async function sayAndAck(client, text, user) {
  say(client, text, user);
  const ack = await ackOf(client.inbox, `the ack of ${JSON.stringify(text)}`);
  assert.equal(typeof ack.seq, 'number');
  assert.equal(ack.id, String(ack.seq));
  return ack;
}

function texts(messages) {
  return messages.map((m) => m.text);
}

describe('chat via partysocket', () => {
  let dataDir;
  let server;
  const clients = [];
  const track = (c) => (clients.push(c), c);

  before(async () => {
    dataDir = await makeDataDir();
    server = await Server.start(dataDir);
  });

  after(async () => {
    for (const c of clients) c.socket.close();
    if (server) await server.stop();
    await removeDir(dataDir);
  });

  test('two clients exchange messages; the sender gets an ack; a late joiner gets the history', { timeout: TEST_TIMEOUT }, async () => {
    const room = 'exchange';
    const ada = track(chatClient(server.addr, room));
    const bob = track(chatClient(server.addr, room));
    assert.deepEqual((await history(ada.inbox)).messages, []);
    assert.deepEqual((await history(bob.inbox)).messages, []);

    say(ada, 'hello from ada', 'ada');
    const [ackA, seenByBob] = await Promise.all([ackOf(ada.inbox), messageWith(bob.inbox, 'hello from ada')]);
    assert.equal(ackA.seq, 1);
    assert.equal(seenByBob.message.seq, 1);
    assert.equal(seenByBob.message.id, '1');
    assert.equal(seenByBob.message.user, 'ada');
    assert.equal(seenByBob.message.from, ada.id, 'from is the sender connection id (partysocket _pk)');
    assert.equal(typeof seenByBob.message.ts, 'number');

    say(bob, 'hi ada, bob here', 'bob');
    const [ackB, seenByAda] = await Promise.all([ackOf(bob.inbox), messageWith(ada.inbox, 'hi ada, bob here')]);
    assert.equal(ackB.seq, 2);
    assert.equal(seenByAda.message.user, 'bob');
    assert.equal(seenByAda.message.from, bob.id);

    // A sender does not get its own message back, only the ack.
    assert.equal(ada.inbox.items.filter((m) => m.type === 'message').length, 0, 'ada got her own message echoed');
    assert.equal(bob.inbox.items.filter((m) => m.type === 'message').length, 0, 'bob got his own message echoed');

    const carol = track(chatClient(server.addr, room));
    const h = await history(carol.inbox, "the late joiner's history");
    assert.deepEqual(texts(h.messages), ['hello from ada', 'hi ada, bob here']);
    assert.deepEqual(h.messages.map((m) => m.seq), [1, 2]);
    assert.deepEqual(h.messages.map((m) => m.user), ['ada', 'bob']);

    // The late joiner takes part too.
    say(carol, 'carol joins', 'carol');
    await Promise.all([
      ackOf(carol.inbox),
      messageWith(ada.inbox, 'carol joins'),
      messageWith(bob.inbox, 'carol joins'),
    ]);

    // Rooms are separate: another room starts empty.
    const other = track(chatClient(server.addr, 'exchange-other'));
    assert.deepEqual((await history(other.inbox)).messages, []);
  });

  test('after a restart over the same data dir, new clients get the full history', { timeout: TEST_TIMEOUT }, async () => {
    const room = 'durable';
    const ada = track(chatClient(server.addr, room));
    await history(ada.inbox);
    const sent = ['one', 'two', 'three', 'unicode: héllo wörld ✓ 🎉'];
    for (const text of sent) await sayAndAck(ada, text, 'ada');

    // A client that stays connected sees the server go away with 1001 (going away).
    const closed = new Promise((resolve) => ada.socket.addEventListener('close', (e) => resolve(e), { once: true }));
    const exit = await server.stop();
    assert.equal(exit.code, 0, `the server exits 0 on SIGTERM (got ${JSON.stringify(exit)}); stderr:\n${server.stderr.text}`);
    const closeEvent = await withTimeout(closed, 5_000, 'the close of the connected client at shutdown');
    assert.equal(closeEvent.code, 1001, `close code at shutdown (reason ${JSON.stringify(closeEvent.reason)})`);

    server = await Server.start(dataDir);

    const bob = track(chatClient(server.addr, room));
    const h = await history(bob.inbox, 'the history after the restart');
    assert.deepEqual(texts(h.messages), sent);
    assert.deepEqual(h.messages.map((m) => m.seq), [1, 2, 3, 4]);

    // The sequence goes on from the stored messages rather than starting over.
    const ack = await sayAndAck(bob, 'after the restart', 'bob');
    assert.equal(ack.seq, 5);

    // The old client reconnects to the new address through partysocket's own reconnect
    // (same connection id), gets the history again and sees new messages.
    ada.socket.updateProperties({ host: server.addr });
    ada.socket.reconnect();
    const again = await history(ada.inbox, 'the history of the reconnected partysocket');
    assert.deepEqual(texts(again.messages), [...sent, 'after the restart']);
    say(bob, 'welcome back', 'bob');
    const seen = await messageWith(ada.inbox, 'welcome back');
    assert.equal(seen.message.seq, 6);

    // The earlier room's history survived too.
    const carol = track(chatClient(server.addr, 'exchange'));
    assert.deepEqual(texts((await history(carol.inbox)).messages), ['hello from ada', 'hi ada, bob here', 'carol joins']);
  });
});

describe('chat with fast hibernation', () => {
  let dataDir;
  let server;
  const clients = [];
  const track = (c) => (clients.push(c), c);

  before(async () => {
    dataDir = await makeDataDir();
    server = await Server.start(dataDir, { CAIRN_ROOMS_HIBERNATE_AFTER_MS: '200' });
  });

  after(async () => {
    for (const c of clients) c.socket.close();
    if (server) await server.stop();
    await removeDir(dataDir);
  });

  test('a hibernated room wakes up, keeps its sockets, history and sequence', { timeout: TEST_TIMEOUT }, async () => {
    const room = 'sleepy';
    const ada = track(chatClient(server.addr, room));
    const bob = track(chatClient(server.addr, room));
    await Promise.all([history(ada.inbox), history(bob.inbox)]);
    let opens = 0;
    ada.socket.addEventListener('open', () => opens++);

    say(ada, 'before sleeping', 'ada');
    await Promise.all([ackOf(ada.inbox), messageWith(bob.inbox, 'before sleeping')]);

    await server.waitForMetric('cairn_rooms_hibernated', (n) => n >= 1, { what: 'the room to hibernate' });
    assert.equal(await server.metric('cairn_room_sockets'), 2, 'both sockets stay open while the room hibernates');
    const wakeupsBefore = await server.metric('cairn_room_wakeups');
    assert.notEqual(wakeupsBefore, undefined, 'cairn_room_wakeups is exported');

    say(bob, 'wake up', 'bob');
    const [ack, seen] = await Promise.all([ackOf(bob.inbox), messageWith(ada.inbox, 'wake up')]);
    assert.equal(ack.seq, 2, 'the woken room continues the sequence from storage');
    assert.equal(seen.message.seq, 2);
    assert.equal(seen.message.from, bob.id);

    await server.waitForMetric('cairn_room_wakeups', (n) => n > wakeupsBefore, { what: 'a wake-up to be counted' });
    assert.equal(opens, 0, 'the clients did not have to reconnect');
    assert.deepEqual(ada.closes, []);
    assert.deepEqual(bob.closes, []);

    // Hibernate again, then a new client's connect is what wakes the room.
    await server.waitForMetric('cairn_rooms_hibernated', (n) => n >= 1, { what: 'the room to hibernate again' });
    const carol = track(chatClient(server.addr, room));
    const h = await history(carol.inbox, 'the history from a woken room');
    assert.deepEqual(texts(h.messages), ['before sleeping', 'wake up']);
    assert.deepEqual(h.messages.map((m) => m.seq), [1, 2]);
  });
});
