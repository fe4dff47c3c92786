// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// How a field's value is shown: compactly in grids and tables, fully on a record's page.
import { h, fmtNum, fmtBytes } from "./dom";
import { blobSrc, isBlob, isEmbeddingSummary, isTruncatedArray, type FieldInfo, type Value } from "./api";
import { sparkline, heatmap } from "./charts";

/** An <img> for an image blob, fetched when it comes near the viewport, or at once when
 * `eager` (the first rows of a grid, so they do not wait for layout). */
export function blobImage(url: string, alt: string, cls: string, eager = false): HTMLImageElement {
  const img = h(`img.${cls}` as "img", { alt, decoding: "async" });
  // Fetched only when the image comes near the viewport, like loading="lazy".
  const load = () =>
    blobSrc(url).then(
      (src) => {
        img.addEventListener("load", () => URL.revokeObjectURL(src), { once: true });
        img.src = src;
      },
      () => img.replaceWith(h("span.error", null, "image unavailable")),
    );
  if (eager) {
    load();
    return img;
  }
  const seen = new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        seen.disconnect();
        load();
      }
    },
    { rootMargin: "100px" },
  );
  seen.observe(img);
  return img;
}

function norm(v: number[]): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

/** A short text for a grid cell or a table. */
export function compact(v: Value): Node | string {
  if (v === null || v === undefined) return h("span.muted", null, "null");
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "string") return v.length > 80 ? v.slice(0, 79) + "…" : v;
  if (typeof v === "boolean") return String(v);
  if (isBlob(v)) return `${v.mime}, ${fmtBytes(v.size)}`;
  if (isEmbeddingSummary(v)) return `‖v‖ ${fmtNum(v.norm)} (${v.dim}-d)`;
  if (isTruncatedArray(v)) return `${v.dtype}[${v.shape.join("×")}]`;
  if (Array.isArray(v)) {
    const flat = (v as unknown[]).flat(8) as number[];
    return flat.length > 6 ? `[${flat.slice(0, 6).map(fmtNum).join(", ")}, … ${flat.length}]` : `[${flat.map(fmtNum).join(", ")}]`;
  }
  return JSON.stringify(v);
}

/** Everything about one value, for a record's page. */
export function full(field: FieldInfo | undefined, name: string, v: Value): Node {
  if (v === null || v === undefined) return h("span.muted", null, "null");
  if (isBlob(v)) {
    const meta = h("div.muted", null, `${v.mime}, ${fmtBytes(v.size)} · `, h("a", { href: v.url, download: "" }, "download"));
    if (v.mime.startsWith("image/")) return h("div", null, blobImage(v.url, `${name} image`, "full"), meta);
    return meta;
  }
  if (field?.type === "embedding" || isEmbeddingSummary(v)) {
    const values = Array.isArray(v) ? (v as number[]) : (v as { head: number[] }).head;
    const n = Array.isArray(v) ? norm(values) : (v as { norm: number }).norm;
    const dim = Array.isArray(v) ? values.length : (v as { dim: number }).dim;
    const min = Math.min(...values);
    const max = Math.max(...values);
    return h(
      "div.embedding",
      null,
      h("div", null, `${dim}-d · norm ${fmtNum(n)} · min ${fmtNum(min)} · max ${fmtNum(max)}`),
      sparkline(values, `${name}: ${values.length} components`),
      h("details", null, h("summary", null, "values"), h("code", null, values.map(fmtNum).join(", "))),
    );
  }
  if (isTruncatedArray(v)) return h("span", null, `${v.dtype}[${v.shape.join("×")}], ${v.elements.toLocaleString("en-US")} elements (too large to show)`);
  if (Array.isArray(v)) {
    const shape = field?.shape ?? (Array.isArray(v[0]) ? [v.length, (v[0] as unknown[]).length] : [v.length]);
    const flat = (v as unknown[]).flat(8) as number[];
    const plot = shape.length === 2 && shape[0] > 1 ? heatmap(flat, shape[0], shape[1], `${name} ${shape.join("×")}`) : sparkline(flat, `${name}: ${flat.length} values`);
    return h(
      "div.array",
      null,
      h("div", null, `${field?.dtype ?? "array"}[${shape.join("×")}]`),
      plot,
      h("details", null, h("summary", null, "values"), h("code", null, JSON.stringify(v))),
    );
  }
  if (typeof v === "string") return h("span", { style: "white-space: pre-wrap" }, v);
  return h("span", null, typeof v === "number" ? fmtNum(v) : JSON.stringify(v));
}

/** The first image blob field of a schema, for thumbnails. */
export function imageField(schema: FieldInfo[]): string | undefined {
  return schema.find((f) => f.type === "blob" && (f.mime ?? "").startsWith("image/"))?.name;
}

export function embeddingFields(schema: FieldInfo[]): FieldInfo[] {
  return schema.filter((f) => f.type === "embedding");
}
