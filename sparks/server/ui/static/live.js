// Live: requests as they happen, from the observer stream; click one for its whole story.

import { getJSON } from "./api.js";
import { clear, fmtInt, fmtMs, fmtTime, h, statusCell } from "./dom.js";

const MAX_ROWS = 500;
const TRACKED = [
  "request.received", "route.resolved", "upstream.attempt", "ghost.step",
  "request.completed", "request.failed", "request.rejected",
];
const requests = new Map(); // request id → summary, newest last
let selected = null;
let source = null;

const $ = (id) => document.getElementById(id);

function isDashboardCall(req) {
  return typeof req.path === "string" && (req.path === "/ui" || req.path.startsWith("/ui/"));
}

function row(req) {
  const tokens = req.tokens_in == null && req.tokens_out == null
    ? "-" : `${fmtInt(req.tokens_in)} / ${fmtInt(req.tokens_out)}`;
  const tr = h("tr", {
    class: `clickable${req.request_id === selected ? " selected" : ""}`,
    dataset: { requestId: req.request_id, outcome: req.outcome || "" },
    onclick: () => showStory(req.request_id),
  },
    h("td", { text: fmtTime(req.ts), title: req.ts }),
    h("td", { text: req.principal ?? "-" }),
    h("td", { text: req.served_model || req.model || "-", title: req.path }),
    h("td", { text: req.route ?? (req.path || "-") }),
    statusCell(req.outcome, req.status, req.code),
    h("td", { class: "num", text: fmtMs(req.latency_ms) }),
    h("td", { class: "num", text: fmtMs(req.ttft_ms) }),
    h("td", { class: "num", text: tokens }));
  if (req.error) tr.title = req.error;
  return tr;
}

function render() {
  const showUi = $("live-show-ui").checked;
  const shown = [...requests.values()].filter((r) => showUi || !isDashboardCall(r)).reverse();
  clear($("live-table").tBodies[0]).append(...shown.map(row));
  $("live-empty").hidden = shown.length > 0;
}

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function apply(event) {
  const rid = event.request_id;
  if (!rid) return;
  let req = requests.get(rid);
  if (event.event === "request.received") {
    req = {
      request_id: rid, ts: event.ts, path: event.path, principal: event.principal,
      model: event.model, api: event.api, outcome: null,
    };
    requests.set(rid, req);
    while (requests.size > MAX_ROWS) requests.delete(requests.keys().next().value);
  }
  if (!req) return;
  if (event.event === "route.resolved") req.route = event.kind ? `${event.kind}:${event.target}` : null;
  if (event.event.startsWith("request.") && event.event !== "request.received") {
    Object.assign(req, {
      outcome: event.event, status: event.status, code: event.code, error: event.error,
      latency_ms: event.latency_ms, ttft_ms: event.ttft_ms, served_model: event.served_model,
      tokens_in: event.usage?.prompt_tokens, tokens_out: event.usage?.completion_tokens,
    });
  }
  if (rid === selected) showStory(rid);
  scheduleRender();
}

async function loadBacklog() {
  const body = await getJSON("api/requests?limit=200");
  for (const req of body.data.reverse()) {
    if (!requests.has(req.request_id)) requests.set(req.request_id, req);
  }
  const sorted = [...requests.values()].sort((a, b) => String(a.ts).localeCompare(String(b.ts)));
  requests.clear();
  for (const req of sorted.slice(-MAX_ROWS)) requests.set(req.request_id, req);
  render();
}

function connect() {
  source = new EventSource("api/events");
  const status = $("connection");
  source.addEventListener("open", () => { status.textContent = "live"; status.className = "ok"; });
  source.addEventListener("error", () => {
    status.textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…";
    status.className = "warn";
  });
  for (const name of TRACKED) {
    source.addEventListener(name, (message) => apply(JSON.parse(message.data)));
  }
}

function fields(event) {
  const skip = new Set(["ts", "event", "level", "request_id"]);
  return Object.entries(event)
    .filter(([key, value]) => !skip.has(key) && value !== null && value !== "")
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("  ");
}

async function showStory(rid) {
  selected = rid;
  const panel = $("story");
  panel.hidden = false;
  $("story-id").textContent = rid;
  const list = $("story-events");
  try {
    const body = await getJSON(`api/requests/${encodeURIComponent(rid)}`);
    if (selected !== rid) return;
    const start = Date.parse(body.events[0]?.ts);
    clear(list).append(...body.events.map((event) => {
      const offset = Date.parse(event.ts) - start;
      return h("li", { dataset: { event: event.event } },
        h("strong", { text: event.event }),
        h("span", { class: "muted", text: `  +${Number.isNaN(offset) ? "?" : offset} ms` }),
        h("div", { class: "fields", text: fields(event) }));
    }));
  } catch (error) {
    clear(list).append(h("li", { class: "muted", text: `not in the log yet (${error.message})` }));
  }
  scheduleRender();
}

export async function startLive() {
  $("live-show-ui").addEventListener("change", render);
  await loadBacklog();
  connect();
}

export function refreshLive() {
  if (source && source.readyState === EventSource.CLOSED) {
    loadBacklog().then(connect).catch(() => {});
  }
}
