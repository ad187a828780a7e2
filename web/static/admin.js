// The admin page: publish through POST /api/notifications with the bearer
// token, and show the created id or the API's own error message.

const TOKEN_KEY = "notify-admin-token";
const form = document.querySelector("#publish");
const result = document.querySelector("[data-role=result]");

form.token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";

// The limit is in bytes of UTF-8 after trimming, as the server counts;
// nothing is cut here: a text over it is sent, and the server's answer says
// by how much.
const bytes = document.querySelector("[data-role=bytes]");
const maxBytes = Number(form.text.dataset.maxBytes);
function countBytes() {
  const used = new TextEncoder().encode(form.text.value.trim()).length;
  bytes.textContent = `${used.toLocaleString("en")} of ${maxBytes.toLocaleString("en")} bytes`;
  bytes.dataset.state = used > maxBytes ? "over" : "";
}
form.text.addEventListener("input", countBytes);
countBytes();

function show(state, text) {
  result.dataset.state = state;
  result.textContent = text;
}

/** One publish; answers {ok, id} or {ok: false, status, message, retryAfter}. */
async function publish(token, text) {
  sessionStorage.setItem(TOKEN_KEY, token);
  const response = await fetch("/api/notifications", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok) return { ok: true, id: body.id };
  return {
    ok: false,
    status: response.status,
    message: body.message ?? response.statusText,
    retryAfter: Number(response.headers.get("Retry-After") ?? 1),
  };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await publish(form.token.value, form.text.value);
  if (answer.ok) {
    show("ok", `Published notification #${answer.id}`);
    form.text.value = "";
    countBytes();
  } else {
    show("error", `${answer.status}: ${answer.message}`);
  }
});

form.querySelector("[data-action=burst]").addEventListener("click", async () => {
  const count = Math.max(1, Math.min(1000, Number(form.burst.value) || 1));
  const base = form.text.value.trim() || "Burst notification";
  const ids = [];
  while (ids.length < count) {
    const answer = await publish(form.token.value, `${base} (${ids.length + 1}/${count})`);
    if (answer.ok) {
      ids.push(answer.id);
      show("ok", `Burst: ${ids.length}/${count} published`);
    } else if (answer.status === 429) {
      show("ok", `Burst: ${ids.length}/${count} published; rate limited, waiting ${answer.retryAfter} s`);
      await new Promise((resolve) => setTimeout(resolve, answer.retryAfter * 1000));
    } else {
      show("error", `${answer.status}: ${answer.message} (after ${ids.length} of ${count})`);
      return;
    }
  }
  show("ok", `Published ${count} notifications (#${ids[0]}–#${ids[ids.length - 1]})`);
});
