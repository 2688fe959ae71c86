// Two small SVG charts drawn by hand: bars over time and a horizontal breakdown.
// Every bar carries its figures in data-* attributes (the browser tests read them).

import { clear } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

function tickLabel(seconds, bucket) {
  const date = new Date(seconds * 1000);
  if (bucket >= 86400) return date.toLocaleDateString([], { month: "short", day: "numeric" });
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

export function timeSeries(container, series) {
  const width = 640, height = 200, left = 36, bottom = 20, top = 8;
  const points = series.points;
  const max = Math.max(1, ...points.map((p) => p.requests));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "data-chart": "series" });
  root.append(svg("title", {}, "requests per time bucket"));
  const plotW = width - left - 4, plotH = height - top - bottom;
  const step = plotW / Math.max(points.length, 1);
  root.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: width - 4, y2: top + plotH }));
  root.append(svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, max));
  root.append(svg("text", { x: left - 4, y: top + plotH, "text-anchor": "end" }, 0));
  points.forEach((p, i) => {
    const x = left + i * step + step * 0.1, w = Math.max(step * 0.8, 1);
    const hAll = (p.requests / max) * plotH, hErr = (p.errors / max) * plotH;
    const group = svg("g", {
      class: "point", "data-t": p.t, "data-requests": p.requests,
      "data-errors": p.errors, "data-tokens": p.tokens,
    });
    group.append(svg("title", {}, `${tickLabel(p.t, series.bucket_s)}: ${p.requests} requests, ${p.errors} errors, ${p.tokens} tokens`));
    group.append(svg("rect", { class: "bar", x, y: top + plotH - hAll, width: w, height: hAll }));
    if (p.errors) group.append(svg("rect", { class: "bar err", x, y: top + plotH - hErr, width: w, height: hErr }));
    root.append(group);
  });
  const labels = Math.min(points.length, 6);
  for (let k = 0; k < labels; k++) {
    const i = Math.round((k * (points.length - 1)) / Math.max(labels - 1, 1));
    const x = left + i * step + step / 2;
    root.append(svg("text", { x, y: height - 4, "text-anchor": "middle" }, tickLabel(points[i].t, series.bucket_s)));
  }
  clear(container).append(root);
}

export function breakdown(container, rows, field = "requests") {
  const width = 640, rowH = 22, labelW = 210, right = 60;
  const shown = rows.slice(0, 12);
  const height = Math.max(shown.length * rowH + 4, 30);
  const max = Math.max(1, ...shown.map((r) => r[field]));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "data-chart": "breakdown" });
  root.append(svg("title", {}, `${field} by group`));
  if (!shown.length) root.append(svg("text", { x: 8, y: 18 }, "no requests in this window"));
  shown.forEach((row, i) => {
    const y = 2 + i * rowH, w = ((width - labelW - right) * row[field]) / max;
    const errW = ((width - labelW - right) * row.errors) / max;
    const group = svg("g", { class: "point", "data-key": row.key, "data-requests": row.requests, "data-errors": row.errors });
    const label = row.key.length > 32 ? `${row.key.slice(0, 31)}…` : row.key;
    group.append(svg("title", {}, `${row.key}: ${row.requests} requests, ${row.errors} errors`));
    group.append(svg("text", { x: labelW - 6, y: y + 14, "text-anchor": "end" }, label));
    group.append(svg("rect", { class: "bar", x: labelW, y: y + 3, width: Math.max(w, 1), height: rowH - 8 }));
    if (row.errors) group.append(svg("rect", { class: "bar err", x: labelW, y: y + 3, width: errW, height: rowH - 8 }));
    group.append(svg("text", { x: labelW + Math.max(w, 1) + 4, y: y + 14 }, row[field].toLocaleString()));
    root.append(group);
  });
  clear(container).append(root);
}
