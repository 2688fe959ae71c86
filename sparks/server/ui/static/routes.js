// Routes: providers with reachability, aliases with their chains and cooldowns, fallbacks, models.

import { getJSON } from "./api.js";
import { clear, fmtInt, fmtTime, h, statusCell } from "./dom.js";

const $ = (id) => document.getElementById(id);

function reachable(value) {
  if (value === true) return h("td", { class: "ok", text: "yes" });
  if (value === false) return h("td", { class: "err", text: "no" });
  return h("td", { class: "muted", text: "not yet probed" });
}

function cooldown(seconds) {
  return seconds > 0 ? `${Math.ceil(seconds)} s` : "-";
}

function chain(entries) {
  const cell = h("td", { class: "wrap" });
  entries.forEach((entry, i) => {
    if (i) cell.append(" → ");
    cell.append(h("code", { text: entry.id }));
    if (entry.cooldown_s > 0) cell.append(h("span", { class: "badge err", text: `cooling ${Math.ceil(entry.cooldown_s)} s` }));
  });
  return cell;
}

function fill(id, rows, empty) {
  const body = clear($(id).tBodies[0]);
  if (rows.length) body.append(...rows);
  else body.append(h("tr", {}, h("td", { class: "muted", colspan: 10, text: empty })));
}

export async function refreshRoutes() {
  const data = await getJSON("api/routes");
  fill("providers-table", data.providers.map((p) => h("tr", { dataset: { backend: p.name } },
    h("td", { text: p.name }),
    h("td", { text: p.host }),
    h("td", { text: p.local ? "yes" : "no" }),
    h("td", { text: p.key_status }),
    h("td", { class: "num", text: fmtInt(p.model_count) }),
    reachable(p.reachable),
    h("td", { class: "wrap err", text: p.last_error ?? "" }),
    h("td", { class: "num", text: cooldown(p.cooldown_s) }))), "no backends configured");
  fill("aliases-table", data.aliases.map((a) => h("tr", {},
    h("td", { text: a.name }),
    chain(a.chain),
    h("td", { class: "num", text: fmtInt(a.requests) }),
    h("td", { text: a.last_served_by ?? "-" }),
    h("td", { text: fmtTime(a.last_used) }))), "no aliases configured");
  fill("fallbacks-table", data.fallbacks.map((f) => h("tr", {},
    h("td", { text: fmtTime(f.ts) }),
    h("td", { text: f.model ?? "-" }),
    h("td", { text: f.fallback_from }),
    h("td", { text: f.served_model ?? "-" }),
    statusCell(f.outcome, f.status, f.code))), "no fallbacks in the log");
  fill("models-table", data.models.map((m) => h("tr", {},
    h("td", {}, h("code", { text: m.id })),
    h("td", { text: m.kind }),
    h("td", { text: m.backend ?? "-" }),
    h("td", { text: m.upstream_model ?? (m.chain ? m.chain.join(" → ") : "-") }),
    h("td", { class: "num", text: fmtInt(m.context_length) }),
    h("td", { class: "wrap muted", text: m.description ?? "" }))), "no models");
}
