// The Socket.IO transport with the official clients from npm, in node:
// socket.io-client 4.x (Engine.IO 4) and 2.x (Engine.IO 3), each over
// polling only, WebSocket only and the default (polling, then upgrade).
// The original demo's round trip on `/test`, notifications on `/`, resume
// from a cursor, resets, bad input, and two processes sharing a Redis.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io as io4 } from "socket.io-client";
import io2 from "socket.io-client-v2";
import { publish, startRedis, startServer, startServerOnRedis } from "./support.mjs";

const PATIENCE_MS = 15_000;
const CLIENTS = { "4.x": io4, "2.x": io2 };
const MODES = {
  "polling only": { transports: ["polling"], expect: "polling" },
  "websocket only": { transports: ["websocket"], expect: "websocket" },
  "default upgrade": { transports: undefined, expect: "websocket" },
};

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** Resolves with the first `event` on `emitter`, or fails after a while. */
function next(emitter, event, what = event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${PATIENCE_MS} ms`)), PATIENCE_MS);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}

/** Collects every `event` on `socket` into an array. */
function collect(socket, event) {
  const seen = [];
  socket.on(event, (payload) => seen.push(payload));
  return seen;
}

async function until(what, condition) {
  const deadline = Date.now() + PATIENCE_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A socket of `version` on namespace `ns` of `base`, over `mode`. */
function connect(version, base, ns, mode, extra = {}) {
  const options = { forceNew: true, reconnection: false, ...extra };
  if (mode.transports) options.transports = mode.transports;
  return CLIENTS[version](new URL(ns, base).href, options);
}

/** Waits until the socket is connected over the transport `mode` expects. */
async function connected(socket, mode) {
  if (!socket.connected) await next(socket, "connect");
  const engine = socket.io.engine;
  if (engine.transport.name !== mode.expect) await next(engine, "upgrade", "the upgrade to WebSocket");
  assert.equal(engine.transport.name, mode.expect);
}

for (const version of Object.keys(CLIENTS)) {
  for (const [modeName, mode] of Object.entries(MODES)) {
    test(`socket.io-client ${version}, ${modeName}: the /test demo round trip and notifications on /`, async () => {
      const sender = connect(version, server.base, "/test", mode);
      const other = connect(version, server.base, "/test", mode);
      const feed = connect(version, server.base, "/", mode);
      try {
        await Promise.all([connected(sender, mode), connected(other, mode), connected(feed, mode)]);

        const data = `hello from ${version} over ${modeName}`;
        const toSender = next(sender, "my response");
        const toOther = next(other, "my response");
        sender.emit("my broadcast event", { data });
        // `count` is the sender's: the events it has sent, this one its first.
        assert.deepEqual(await toSender, { data, count: 1 }, "the sender gets its own broadcast");
        assert.deepEqual(await toOther, { data, count: 1 }, "another client gets it");

        const arrived = next(feed, "notification");
        const text = `notification for ${version} over ${modeName}`;
        const id = await publish(server.base, text);
        const notification = await arrived;
        assert.equal(notification.id, id);
        assert.equal(notification.text, text);
        assert.match(notification.published_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      } finally {
        for (const socket of [sender, other, feed]) socket.close();
      }
    });
  }
}

test("a client that reconnects with its cursor in auth gets exactly what it missed, in order", async () => {
  const mode = MODES["default upgrade"];
  // Start from now, as a page that already showed the history would.
  const now = await (await fetch(new URL("/api/poll", server.base))).json();
  const cursor = { after: now.cursor, epoch: now.epoch };
  // The official client calls an auth function on every (re)connection.
  const socket = connect("4.x", server.base, "/", mode, {
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    auth: (send) => send(cursor),
  });
  const ids = [];
  const resets = collect(socket, "reset");
  socket.on("hello", (hello) => {
    cursor.epoch = hello.epoch;
  });
  socket.on("notification", (n) => {
    ids.push(n.id);
    cursor.after = n.id;
  });
  try {
    await connected(socket, mode);
    const first = await publish(server.base, "before the cut");
    await until("the first notification arrives", () => ids.includes(first));

    // Cut the connection the way a network does, then publish while away.
    const reconnected = next(socket, "connect", "the reconnection");
    socket.io.engine.close();
    const missed = [];
    for (let i = 0; i < 5; i++) missed.push(await publish(server.base, `missed ${i}`));
    await reconnected;
    await until("the missed notifications arrive", () => ids.length >= 1 + missed.length);
    const live = await publish(server.base, "after the reconnection");
    await until("the live one arrives", () => ids.includes(live));

    assert.deepEqual(ids, [first, ...missed, live], "each exactly once, in order");
    assert.deepEqual(resets, [], "resuming inside retention is not a reset");
  } finally {
    socket.close();
  }
});

test("a cursor the server cannot honour gets a reset, then what is retained", async () => {
  const mode = MODES["websocket only"];
  const newest = await publish(server.base, "retained");
  const socket = connect("4.x", server.base, "/", mode, { auth: { after: 3, epoch: "another-epoch" } });
  const notifications = collect(socket, "notification");
  try {
    const [hello, reset] = await Promise.all([next(socket, "hello"), next(socket, "reset")]);
    assert.equal(hello.type, "hello");
    assert.equal(reset.reset_reason, "epoch_changed");
    assert.equal(reset.epoch, hello.epoch);
    await until("the retained notifications arrive", () => notifications.some((n) => n.id === newest));
    assert.equal(notifications[0].id, 1, "everything retained, from the first");
  } finally {
    socket.close();
  }
});

test("bad input gets the protocol's error and nothing else breaks", async () => {
  const mode = MODES["websocket only"];
  const sender = connect("4.x", server.base, "/test", mode);
  const other = connect("4.x", server.base, "/test", mode);
  const received = collect(other, "my response");
  try {
    await Promise.all([connected(sender, mode), connected(other, mode)]);

    // Over the text limit: refused in the acknowledgement and an event.
    const errorEvent = next(sender, "my error");
    const ack = await sender.timeout(PATIENCE_MS).emitWithAck("my broadcast event", { data: "x".repeat(5000) });
    assert.equal(ack.error, "too_large");
    assert.equal((await errorEvent).error, "too_large");

    // Not of the form {"data": …}.
    const shapeAck = await sender.timeout(PATIENCE_MS).emitWithAck("my broadcast event", "just a string");
    assert.equal(shapeAck.error, "invalid_body");

    // A flood: at most the burst gets through, the rest is refused.
    const acks = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        sender.timeout(PATIENCE_MS).emitWithAck("my broadcast event", { data: `flood ${i}` }),
      ),
    );
    const refused = acks.filter((a) => a.error === "rate_limited").length;
    assert.ok(refused > 0, "some of the flood is refused");
    assert.ok(acks.length - refused <= 21, `no broadcast storm (${acks.length - refused} got through)`);
    assert.ok(received.every((r) => r.data.startsWith("flood ")), "nothing refused was broadcast");

    // An unknown namespace is refused at connect.
    const stray = connect("4.x", server.base, "/nope", mode);
    const error = await next(stray, "connect_error");
    assert.match(error.message, /Invalid namespace/);
    stray.close();

    // A malformed resume cursor is refused at connect, with the reason.
    const bad = connect("4.x", server.base, "/", mode, { auth: { after: "x" } });
    const badCursor = await next(bad, "connect_error");
    assert.match(badCursor.message, /bad resume cursor/);
    bad.close();

    // Still serving: the demo goes on for everyone.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = next(other, "my response");
    sender.emit("my broadcast event", { data: "still here" });
    assert.equal((await again).data, "still here");
  } finally {
    sender.close();
    other.close();
  }
});

test("with Redis, notifications and /test broadcasts reach clients of the other process", async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const a = await startServerOnRedis(redis.url);
  const b = await startServerOnRedis(redis.url);
  t.after(async () => {
    await a.stop();
    await b.stop();
  });

  const mode = MODES["default upgrade"];
  const onA = connect("4.x", a.base, "/test", mode);
  const onB = connect("2.x", b.base, "/test", mode);
  const feedB = connect("4.x", b.base, "/", mode);
  try {
    await Promise.all([connected(onA, mode), connected(onB, mode), connected(feedB, mode)]);
    // The adapter subscribes to Redis when the first request builds the
    // service; broadcasts published before the other process listens are
    // not kept by Redis, so ask until one crosses.
    const crossed = next(onB, "my response", "a broadcast from the other process");
    const asking = setInterval(() => onA.emit("my broadcast event", { data: "across processes" }), 200);
    try {
      assert.equal((await crossed).data, "across processes");
    } finally {
      clearInterval(asking);
    }
    const arrived = next(feedB, "notification");
    const id = await publish(a.base, "published on A");
    assert.equal((await arrived).id, id);
  } finally {
    for (const socket of [onA, onB, feedB]) socket.close();
  }
});
