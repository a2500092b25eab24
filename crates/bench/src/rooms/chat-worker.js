// The anchor of `cairn bench rooms`: Cairn's built-in `chat` room (crates/rooms/src/builtin/
// chat.rs) written as a PartyServer with WebSocket hibernation, for Miniflare/workerd.
//
// Same protocol and storage: each message is stored under its own key `msg:{seq:020}` in the
// Durable Object's storage (the oldest deleted past 10,000), a new socket gets the last 100
// messages as `{"type":"history","messages":[...]}`, a message is broadcast to the others as
// `{"type":"message","message":{id,seq,user,text,ts,from}}` and acknowledged to its sender as
// `{"type":"ack","id","seq"}`. The writes are not awaited: the Durable Object's output gate holds
// the broadcast and the ack until they are durable, as Cairn's output gate does.
//
// `GET /stats` (the entry Worker, not a room) answers `{"starts": n}`: room instances started in
// this isolate (first starts and wake-ups from hibernation).
import { Server, routePartykitRequest } from "partyserver";

const PREFIX = "msg:";
const HISTORY = 100;
const MAX_MESSAGES = 10000;
const MAX_TEXT_BYTES = 16 * 1024;
const MAX_USER_BYTES = 256;

let starts = 0;
const utf8 = new TextEncoder();

function key(seq) {
  return PREFIX + String(seq).padStart(20, "0");
}

function errorFrame(code, message) {
  return JSON.stringify({ type: "error", code, message });
}

// `{"type":"message","text":"...","user":"..."}` (type and user optional), or the raw text.
function parse(raw) {
  try {
    const m = JSON.parse(raw);
    const okType = m !== null && typeof m === "object" && (m.type === undefined || m.type === null || m.type === "message");
    const okUser = m?.user === undefined || m?.user === null || typeof m?.user === "string";
    if (okType && okUser && typeof m.text === "string") {
      return { text: m.text, user: m.user ?? "" };
    }
  } catch {
    // Not JSON: the whole text is the message.
  }
  return { text: raw, user: "" };
}

export class Chat extends Server {
  static options = { hibernate: true };

  lastSeq = 0;

  async onStart() {
    starts += 1;
    const last = await this.ctx.storage.list({ prefix: PREFIX, reverse: true, limit: 1 });
    for (const k of last.keys()) {
      this.lastSeq = Number(k.slice(PREFIX.length));
    }
  }

  async onConnect(connection) {
    const recent = await this.ctx.storage.list({ prefix: PREFIX, reverse: true, limit: HISTORY });
    const messages = [...recent.values()].reverse();
    connection.send(JSON.stringify({ type: "history", messages }));
  }

  onMessage(connection, raw) {
    if (typeof raw !== "string") {
      connection.send(errorFrame("chat.binary_message", "chat messages are text frames"));
      return;
    }
    const { text, user } = parse(raw);
    const textBytes = utf8.encode(text).length;
    if (textBytes > MAX_TEXT_BYTES) {
      connection.send(errorFrame("chat.message_too_large",
        `message text is ${textBytes} bytes, over the limit of ${MAX_TEXT_BYTES} bytes`));
      return;
    }
    const userBytes = utf8.encode(user).length;
    if (userBytes > MAX_USER_BYTES) {
      connection.send(errorFrame("chat.user_too_large",
        `user is ${userBytes} bytes, over the limit of ${MAX_USER_BYTES} bytes`));
      return;
    }
    const seq = this.lastSeq + 1;
    const stored = { id: String(seq), seq, user, text, ts: Date.now(), from: connection.id };
    this.ctx.storage.put(key(seq), stored);
    if (seq > MAX_MESSAGES) {
      this.ctx.storage.delete(key(seq - MAX_MESSAGES));
    }
    this.lastSeq = seq;
    this.broadcast(JSON.stringify({ type: "message", message: stored }), [connection.id]);
    connection.send(JSON.stringify({ type: "ack", id: stored.id, seq }));
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/stats") {
      return Response.json({ starts });
    }
    return (await routePartykitRequest(request, env)) ?? new Response("no route", { status: 404 });
  },
};
