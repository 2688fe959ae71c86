// Ghost runs: each run's tool steps on a timeline, then as a list.

import { getJSON } from "./api.js";
import { clear, fmtDateTime, fmtMs, h } from "./dom.js";

const $ = (id) => document.getElementById(id);

function timeline(run) {
  const track = h("div", { class: "timeline", title: "tool steps over the run's time" });
  const total = Math.max(run.latency_ms || 0,
    ...run.steps.map((s) => (s.at_ms ?? 0) + (s.duration_ms ?? 0)), 1);
  for (const step of run.steps) {
    const bar = h("div", {
      class: `step${step.ok === false ? " failed" : ""}`,
      title: `${step.step}. ${step.tool} ${step.args_summary ?? ""} (${fmtMs(step.duration_ms)})`,
    });
    bar.style.left = `${(100 * (step.at_ms ?? 0)) / total}%`;
    bar.style.width = `${(100 * (step.duration_ms ?? 0)) / total}%`;
    track.append(bar);
  }
  return track;
}

function runCard(run) {
  const ok = run.outcome === "request.completed";
  const status = run.outcome ? (ok ? `${run.status}` : `${run.status} ${run.code}`) : "running…";
  return h("div", { class: "run", dataset: { requestId: run.request_id } },
    h("div", { class: "run-head" },
      h("strong", { text: `ghost ${run.ghost ?? "?"}` }),
      h("span", { class: "muted", text: fmtDateTime(run.ts) }),
      h("span", { text: run.served_model || run.model || "-" }),
      h("span", { class: run.outcome ? (ok ? "ok" : "err") : "muted", text: status }),
      h("span", { text: fmtMs(run.latency_ms) }),
      h("span", { class: "muted", text: `${run.steps.length} steps` })),
    run.steps.length ? timeline(run) : null,
    h("table", { class: "steps" },
      h("thead", {}, h("tr", {},
        ...["#", "tool", "arguments", "ok", "duration", "at"].map((t) => h("th", { text: t })))),
      h("tbody", {}, ...run.steps.map((step) => h("tr", { class: "step-row" },
        h("td", { class: "num", text: step.step }),
        h("td", {}, h("code", { text: step.tool })),
        h("td", { class: "wrap", text: step.args_summary ?? "" }),
        h("td", { class: step.ok ? "ok" : "err", text: step.ok ? "ok" : "failed" }),
        h("td", { class: "num", text: fmtMs(step.duration_ms) }),
        h("td", { class: "num", text: fmtMs(step.at_ms) }))))));
}

export async function refreshRuns() {
  const data = await getJSON("api/runs?limit=30");
  clear($("runs-list")).append(...data.data.map(runCard));
  $("runs-empty").hidden = data.data.length > 0;
}
