// Building DOM from data: text always goes in as text nodes, never as HTML.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function fmtMs(value) {
  if (typeof value !== "number") return "-";
  return value >= 100 ? `${Math.round(value).toLocaleString()} ms` : `${value.toFixed(1)} ms`;
}

export function fmtInt(value) {
  return typeof value === "number" ? value.toLocaleString() : "-";
}

export function fmtCost(value) {
  if (typeof value !== "number" || value === 0) return "$0";
  if (value >= 0.01) return `$${value.toFixed(4)}`;
  const text = value.toFixed(6).replace(/0+$/, "");
  return text === "0." ? "<$0.000001" : `$${text}`;
}

export function fmtTime(ts) {
  if (!ts) return "-";
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return String(ts);
  const ms = String(date.getMilliseconds()).padStart(3, "0");
  return `${date.toLocaleTimeString([], { hour12: false })}.${ms}`;
}

export function fmtDateTime(ts) {
  if (!ts) return "-";
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? String(ts) : date.toLocaleString([], { hour12: false });
}

export function statusCell(outcome, status, code) {
  if (!outcome) return h("td", { class: "muted", text: "…" });
  const ok = outcome === "request.completed";
  const label = ok ? String(status ?? "") : `${status ?? ""} ${code ?? ""}`.trim();
  return h("td", { class: ok ? "ok" : "err", text: label });
}
