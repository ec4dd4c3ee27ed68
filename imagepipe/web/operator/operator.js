"use strict";
// The operator page: the node at a glance from /status (every 2 s), and a URL builder.

const $ = (id) => document.getElementById(id);

function text(id, value) { $(id).textContent = value; }

// With auth = token the browser cannot send the token itself: the page asks for it once
// (kept for this tab only) and sends it with every request for the node's data.
const TOKEN = "imagepipe-token";

class NeedsToken extends Error {}

async function call(url) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN);
  if (token) { headers.Authorization = `Bearer ${token}`; }
  const answer = await fetch(url, { headers });
  if (answer.status === 401 && answer.headers.get("WWW-Authenticate")?.startsWith("Bearer")) {
    $("login").hidden = false;
    text("login-error", token ? "That token was refused." : "");
    throw new NeedsToken(url);
  }
  return answer.json();
}

function quietly(work) {
  return work().catch((error) => { if (!(error instanceof NeedsToken)) { throw error; } });
}

function meter(id, value, max) { $(id).max = Math.max(max, 1); $(id).value = value; }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function showPeers(peers) {
  const body = document.querySelector("#peers tbody");
  body.replaceChildren();
  for (const peer of peers) {
    const row = document.createElement("tr");
    row.className = peer.up ? "up" : "down";
    const heard = peer.last_heartbeat_seconds_ago, lag = peer.lag_seconds;
    for (const cell of [peer.endpoint, peer.up ? "up" : "DOWN",
                        heard === null ? "never" : `${heard.toFixed(1)} s ago`,
                        lag === null ? "unknown" : `${lag.toFixed(1)} s`, peer.behind]) {
      const td = document.createElement("td");
      td.textContent = cell;
      row.append(td);
    }
    body.append(row);
  }
  $("peers").hidden = peers.length === 0;
  $("no-peers").hidden = peers.length > 0;
}

async function refresh() {
  const status = await call("/status");
  text("node", status.node || "");
  text("version", status.version);
  text("engine", `${status.engine} (${status.backend})`);
  text("formats", (status.formats || []).join(", "));
  text("calls", `${status.in_flight} of ${status.capacity}`);
  meter("calls-meter", status.in_flight, status.capacity);
  text("renders", `${status.renders.in_flight} of ${status.renders.capacity}`);
  meter("renders-meter", status.renders.in_flight, status.renders.capacity);
  const answered = status.calls_answered || {};
  text("answered", Object.keys(answered).sort().map((m) => `${m} ${answered[m]}`).join(", ")
                   || "none yet");
  const rpc = status.replication ? status.replication.published_sequence : null;
  text("stored", rpc === null ? "(replication off)" : `${rpc} changes`);
  if (status.cache) {
    const seen = status.on_the_fly.cache_hits + status.on_the_fly.renders;
    const ratio = seen ? Math.round(100 * status.on_the_fly.cache_hits / seen) : 0;
    text("cache", `${bytes(status.cache.bytes)} of ${bytes(status.cache.budget)}, ` +
                  `${status.cache.entries} results, ${ratio} % hits`);
    meter("cache-meter", status.cache.bytes, status.cache.budget);
  } else {
    text("cache", "off");
  }
  showPeers(status.replication && status.replication.peers ? status.replication.peers : []);
}

let after = "";

async function moreImages() {
  const page = await call(`/operator/images?after=${encodeURIComponent(after)}`);
  for (const path of page.paths) {
    const option = document.createElement("option");
    option.textContent = path;
    $("path").append(option);
  }
  after = page.next;
  $("more").disabled = !after;
  await build();
}

async function build() {
  const query = new URLSearchParams({ path: $("path").value });
  for (const id of ["w", "h", "mode", "gravity", "format", "quality"]) {
    if ($(id).value) { query.set(id, $(id).value); }
  }
  if ($("enlarge").checked) { query.set("enlarge", "1"); }
  if (!$("path").value) { return; }
  const found = await call(`/operator/urls?${query}`);
  $("urls").replaceChildren();
  text("url-error", found.error || "");
  if (found.error) { return; }
  for (const [dialect, url] of Object.entries(found.urls)) {
    const item = document.createElement("li");
    item.textContent = `${dialect}: ${url}`;
    item.dataset.dialect = dialect;
    $("urls").append(item);
  }
  $("preview").src = found.urls.native;
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN, $("token").value);
  $("login").hidden = true;
  after = "";
  $("path").replaceChildren();
  quietly(refresh);
  quietly(moreImages);
});
document.querySelector("#options").addEventListener("change", () => quietly(build));
$("more").addEventListener("click", () => quietly(moreImages));
quietly(refresh);
setInterval(() => quietly(refresh), 2000);
quietly(moreImages);
