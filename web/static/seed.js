// The original demo's page: join `/test`, emit `my broadcast event` with
// {data} from the form, log every `my response` — and, as the original
// page did, say which transport the library is on as it upgrades.
//
// With `?client=1.3.5` the page has loaded the write-up's own client, a
// classic script that defines `io`, and connects as the write-up's page
// does (`io.connect(origin + namespace)`); otherwise it imports today's
// client.

const io = globalThis.io ?? (await import("./vendor/socket.io.esm.min.js")).io;
const socket = globalThis.io ? io.connect(`${location.protocol}//${location.host}/test`) : io("/test");
const log = document.querySelector("[data-role=log]");
const transport = document.querySelector("[data-role=transport]");

function line(text, kind = "") {
  const item = document.createElement("li");
  if (kind) item.className = kind;
  // Text, never HTML: another visitor typed it.
  item.textContent = text;
  log.prepend(item);
}

socket.on("connect", () => {
  const engine = socket.io.engine;
  transport.textContent = engine.transport.name;
  engine.once("upgrade", () => {
    transport.textContent = engine.transport.name;
  });
  line("Connected", "meta");
});
socket.on("disconnect", (reason) => line(`Disconnected (${reason})`, "meta"));
socket.on("my response", (message) => line(`Received: ${message.data}`));
socket.on("my error", (error) => line(`Refused: ${error.message}`, "meta"));

document.querySelector("#broadcast").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = event.target.elements.data;
  socket.emit("my broadcast event", { data: input.value });
  input.value = "";
});
