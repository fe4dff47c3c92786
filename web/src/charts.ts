// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The charts the dashboard needs are small and categorical (one bar per run, a sparkline
// per embedding, a line or heat map per array), so they are drawn as plain SVG.
import { h, s, fmtNum } from "./dom";

export interface Bar {
  label: string;
  value: number | null;
  mark?: "best" | "worst";
  href?: string;
}

/** Horizontal bars, one per run, best and worst marked in colour and in words. */
export function barChart(bars: Bar[], title: string): HTMLElement {
  const values = bars.map((b) => b.value).filter((v): v is number => v !== null && Number.isFinite(v));
  const max = Math.max(0, ...values);
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const rowH = 26;
  const labelW = 180;
  const width = 640;
  const plotW = width - labelW - 90;
  const height = bars.length * rowH + 8;
  const zeroX = labelW + ((0 - min) / span) * plotW;
  const svg = s(
    "svg",
    { class: "chart bars", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title },
    s("title", null, title),
    bars.map((b, i) => {
      const y = 4 + i * rowH;
      const v = b.value;
      const ok = v !== null && Number.isFinite(v);
      const x0 = ok ? Math.min(zeroX, labelW + ((v! - min) / span) * plotW) : zeroX;
      const w = ok ? Math.max(1, Math.abs(((v! - 0) / span) * plotW)) : 0;
      const label = s("text", { x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "lbl" }, b.label);
      return s(
        "g",
        { class: `bar ${b.mark ?? ""}`, "data-run": b.label },
        b.href ? s("a", { href: b.href }, label) : label,
        s("rect", { x: x0, y: y + 3, width: w, height: rowH - 8, rx: 2 }),
        s(
          "text",
          { x: x0 + w + 6, y: y + rowH / 2 + 4, class: "val" },
          ok ? fmtNum(v) : "no value",
          b.mark ? ` (${b.mark})` : "",
        ),
      );
    }),
  );
  return h("figure.chart-box", null, svg as unknown as Node);
}

/** A sparkline of a vector's components (an embedding, a 1-d array). */
export function sparkline(values: ArrayLike<number>, label: string, width = 240, height = 40): SVGElement {
  const n = values.length;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo)) {
    lo = 0;
    hi = 1;
  }
  const span = hi - lo || 1;
  const step = n > 1 ? width / (n - 1) : 0;
  let d = "";
  for (let i = 0; i < n; i++) {
    const v = Number.isFinite(values[i]) ? values[i] : lo;
    const x = i * step;
    const y = height - 2 - ((v - lo) / span) * (height - 4);
    d += `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }
  const zeroY = height - 2 - ((0 - lo) / span) * (height - 4);
  return s(
    "svg",
    { class: "chart spark", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label },
    s("title", null, label),
    lo < 0 && hi > 0 ? s("line", { x1: 0, x2: width, y1: zeroY, y2: zeroY, class: "zero" }) : null,
    s("path", { d, class: "line" }),
  );
}

/** A 2-d array as a heat map (rows x cols), shaded between its min and max. */
export function heatmap(values: ArrayLike<number>, rows: number, cols: number, label: string): SVGElement {
  const cell = Math.max(2, Math.min(16, Math.floor(240 / Math.max(rows, cols))));
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  const span = hi - lo || 1;
  const rects: SVGElement[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = values[r * cols + c];
      const t = Math.round(((v - lo) / span) * 100);
      rects.push(
        s("rect", { x: c * cell, y: r * cell, width: cell, height: cell, fill: `hsl(215 60% ${95 - t * 0.6}%)` },
          s("title", null, `[${r},${c}] = ${fmtNum(v)}`)),
      );
    }
  }
  return s(
    "svg",
    { class: "chart heat", viewBox: `0 0 ${cols * cell} ${rows * cell}`, width: cols * cell, height: rows * cell, role: "img", "aria-label": label },
    s("title", null, label),
    rects,
  );
}

/** Two stacked bars (shared and unique bytes) for the cost view. */
export function stackBar(parts: { label: string; value: number; cls: string }[], total: number, title: string): SVGElement {
  const width = 320;
  let x = 0;
  return s(
    "svg",
    { class: "chart stack", viewBox: `0 0 ${width} 14`, width, height: 14, role: "img", "aria-label": title },
    s("title", null, title),
    parts.map((p) => {
      const w = total > 0 ? (p.value / total) * width : 0;
      const r = s("rect", { x, y: 0, width: w, height: 14, class: p.cls }, s("title", null, p.label));
      x += w;
      return r;
    }),
  );
}
