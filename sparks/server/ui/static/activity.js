// Activity: the figures of `sparks activity` over a chosen window, with two charts.

import { getJSON } from "./api.js";
import { breakdown, timeSeries } from "./chart.js";
import { clear, fmtCost, fmtDateTime, fmtInt, fmtMs, h } from "./dom.js";

const $ = (id) => document.getElementById(id);
const BY_LABEL = { model: "model", ghost: "ghost", principal: "client", backend: "backend" };

function errorsText(row) {
  if (!row.errors) return "0";
  const codes = Object.entries(row.errors_by_code).map(([code, n]) => `${code} ${n}`);
  return `${row.errors} (${codes.join(", ")})`;
}

function card(label, value, detail) {
  return h("div", { class: "card" },
    h("div", { class: "label", text: label }),
    h("div", { class: "value", text: value }),
    detail ? h("div", { class: "detail", text: detail }) : null);
}

function tableRow(row, total = false) {
  return h("tr", { class: total ? "total" : "", dataset: { key: row.key } },
    h("td", { text: row.key }),
    h("td", { class: "num", text: fmtInt(row.requests) }),
    h("td", { class: row.errors ? "err" : "", text: errorsText(row) }),
    h("td", { class: "num", text: fmtInt(row.tokens_in) }),
    h("td", { class: "num", text: fmtInt(row.tokens_out) }),
    h("td", { class: "num", text: fmtMs(row.p50_ms) }),
    h("td", { class: "num", text: fmtMs(row.p95_ms) }),
    h("td", { class: "num", text: fmtMs(row.ttft_p50_ms) }),
    h("td", { class: "num", text: fmtMs(row.ttft_p95_ms) }),
    h("td", { class: "num", text: fmtCost(row.cost) }));
}

export async function refreshActivity() {
  const since = $("activity-since").value;
  const by = $("activity-by").value;
  const data = await getJSON(`api/activity?since=${encodeURIComponent(since)}&by=${encodeURIComponent(by)}`);
  const total = data.total;
  $("activity-since-label").textContent = data.since ? `since ${fmtDateTime(data.since)}` : "whole log";
  const view = $("view-activity");
  view.dataset.since = data.since ?? "";
  view.dataset.by = data.by;
  clear($("activity-cards")).append(
    card("requests", fmtInt(total.requests), data.in_flight ? `${data.in_flight} in flight` : null),
    card("errors", fmtInt(total.errors), Object.entries(total.errors_by_code).map(([c, n]) => `${c} ${n}`).join(", ") || null),
    card("tokens in / out", `${fmtInt(total.tokens_in)} / ${fmtInt(total.tokens_out)}`),
    card("cost", fmtCost(total.cost)),
    card("latency p50 / p95", `${fmtMs(total.p50_ms)} / ${fmtMs(total.p95_ms)}`),
    card("TTFT p50 / p95", `${fmtMs(total.ttft_p50_ms)} / ${fmtMs(total.ttft_p95_ms)}`));
  timeSeries($("chart-series"), data.series);
  breakdown($("chart-breakdown"), data.groups);
  $("breakdown-by").textContent = BY_LABEL[data.by];
  $("activity-key").textContent = BY_LABEL[data.by];
  const rows = data.groups.map((row) => tableRow(row));
  if (data.groups.length) rows.push(tableRow(total, true));
  clear($("activity-table").tBodies[0]).append(...rows);
}

export function startActivity(onChange) {
  $("activity-since").addEventListener("change", onChange);
  $("activity-by").addEventListener("change", onChange);
}
