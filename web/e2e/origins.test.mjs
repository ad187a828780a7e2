// A page from another origin, as the classic write-up's Flask page on :5000
// talking to Socket.IO on :8000: served here by a small node server on a
// port of its own, it polls, publishes, streams, opens a WebSocket and
// connects with the official socket.io client to the notification server.
// Without --allow-origin every one of them fails in the browser; with the
// page's origin allowed, every one works. So does the write-up's own page
// shape: the socket.io 1.3.5 client loaded from the notification server (as
// the write-up loaded it from a CDN), joining /test on the other origin.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { TOKEN, freePort, launchBrowser, startServer } from "./support.mjs";

const SOCKET_IO = readFileSync(new URL("./node_modules/socket.io-client/dist/socket.io.min.js", import.meta.url));

/** Tries each transport against `base` from the page; resolves what worked. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Another origin</title>
<script src="/socket.io.min.js"></script>
<script>
const within = (ms, attempt) =>
  Promise.race([attempt, new Promise((done) => setTimeout(() => done("timed out"), ms))]);

window.tryAll = async (base, token) => {
  const wsBase = base.replace(/^http/, "ws");
  const poll = within(5000, fetch(base + "api/poll", { credentials: "include" })
    .then((r) => (r.ok ? r.json().then((a) => "epoch " + a.epoch.length) : "status " + r.status))
    .catch(() => "failed"));
  const publish = within(5000, fetch(base + "api/notifications", {
    method: "POST",
    credentials: "include",
    headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: JSON.stringify({ text: "from another origin" }),
  }).then((r) => "status " + r.status).catch(() => "failed"));
  const sse = within(5000, new Promise((done) => {
    const source = new EventSource(base + "api/sse", { withCredentials: true });
    source.addEventListener("hello", () => { source.close(); done("hello"); });
    source.onerror = () => { source.close(); done("failed"); };
  }));
  const ws = within(5000, new Promise((done) => {
    const socket = new WebSocket(wsBase + "api/ws", "notify.v1");
    socket.onmessage = (event) => { socket.close(); done(JSON.parse(event.data).type); };
    socket.onclose = () => done("failed");
  }));
  const socketio = within(8000, new Promise((done) => {
    const socket = io(base, { withCredentials: true, reconnection: false });
    socket.on("hello", () => { socket.close(); done("hello"); });
    socket.on("connect_error", () => { socket.close(); done("failed"); });
  }));
  const [a, b, c, d, e] = await Promise.all([poll, publish, sse, ws, socketio]);
  return { poll: a, publish: b, sse: c, websocket: d, socketio: e };
};
</script>`;

/** The write-up's page shape: the 1.3.5 client from the server, `/test` on it. */
const V1_PAGE = (server) => `<!doctype html>
<meta charset="utf-8">
<title>The write-up's page</title>
<script src="${server}static/vendor/socket.io-1.3.5.js"></script>
<script>
window.tryDemo = (server) => new Promise((done) => {
  if (typeof io === "undefined") return done("no client");
  const socket = io.connect(server + "test", { reconnection: false });
  socket.on("connect", () => socket.emit("my broadcast event", { data: "你好" }));
  socket.on("my response", (msg) => { socket.disconnect(); done(msg.data); });
  socket.on("connect_error", () => { socket.disconnect(); done("failed"); });
  setTimeout(() => done("timed out"), 8000);
});
</script>`;

const shared = { page: null, origin: null, browser: null };

before(async () => {
  const port = await freePort();
  shared.page = createServer((req, res) => {
    const url = new URL(req.url, "http://page.invalid");
    if (url.pathname === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(SOCKET_IO);
    } else if (url.pathname === "/v1") {
      const server = url.searchParams.get("server");
      res.writeHead(200, { "content-type": "text/html" }).end(V1_PAGE(server));
    } else {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
    }
  });
  await new Promise((done) => shared.page.listen(port, "127.0.0.1", done));
  shared.origin = `http://127.0.0.1:${port}`;
  shared.browser = await launchBrowser();
});

after(async () => {
  await shared.browser?.close();
  await new Promise((done) => shared.page?.close(done));
});

async function fromThePage(server) {
  const page = await shared.browser.newPage();
  await page.goto(shared.origin);
  const results = await page.evaluate(([base, token]) => window.tryAll(base, token), [server.base, TOKEN]);
  await page.goto(`${shared.origin}/v1?server=${encodeURIComponent(server.base)}`);
  results.socketioV1 = await page.evaluate((base) => window.tryDemo(base), server.base);
  await page.close();
  return results;
}

test("a page from another origin can use nothing without --allow-origin", async () => {
  const server = await startServer();
  try {
    assert.deepEqual(await fromThePage(server), {
      poll: "failed",
      publish: "failed",
      sse: "failed",
      websocket: "failed",
      socketio: "failed",
      socketioV1: "failed",
    });
  } finally {
    await server.stop();
  }
});

test("with --allow-origin for its origin, it polls, publishes, streams and connects", async () => {
  const server = await startServer(["--allow-origin", shared.origin]);
  try {
    assert.deepEqual(await fromThePage(server), {
      poll: "epoch 16",
      publish: "status 201",
      sse: "hello",
      websocket: "hello",
      socketio: "hello",
      socketioV1: "你好",
    });
  } finally {
    await server.stop();
  }
});
