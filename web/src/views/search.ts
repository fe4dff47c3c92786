// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, fmtNum, shortId } from "../dom";
import { api, isBlob } from "../api";
import { href, setCrumbs, datasetTabs } from "../main";
import { compact, embeddingFields, imageField, blobImage } from "../render";

/** Search by example: a record's nearest neighbours by one embedding field, with scores. */
export async function searchView(ds: string, anchor: string, q: URLSearchParams): Promise<HTMLElement> {
  const at = q.get("at") ?? "main";
  const k = Number(q.get("k") ?? 12);
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], [`record ${anchor}`, href(["d", ds, "record", anchor], { at })], "similar");
  const info = await api.dataset(ds, at);
  const embs = embeddingFields(info.schema);
  if (!embs.length) throw new Error(`${ds} has no embedding field to search by`);
  const field = q.get("field") ?? embs[0].name;
  const img = imageField(info.schema);
  // A field named like a key of the hit itself (score, anchor) would collide with it in the
  // hit object (spec/30 §3.10): it is shown on the record's page, not here.
  const HIT_KEYS = new Set(["score", "anchor", "anchor_str"]);
  const shown = info.schema.filter((f) => f.type !== "embedding" && f.type !== "array" && !HIT_KEYS.has(f.name)).map((f) => f.name);
  const t0 = performance.now();
  const [query, res] = await Promise.all([
    api.record(ds, anchor, info.manifest, shown.join(",") || undefined),
    api.searchByAnchor(ds, { field, anchor, ref: info.manifest, k, fields: shown.join(",") || undefined }),
  ]);
  const ms = performance.now() - t0;
  const higherBetter = res.metric !== "l2";
  const idx = info.schema.find((f) => f.name === field)?.index;
  const thumb = (rec: Record<string, unknown>) => {
    const v = img ? rec[img] : undefined;
    return isBlob(v) ? blobImage(v.url, `record ${String(rec.anchor_str)}`, "thumb") : null;
  };
  return h(
    "section",
    null,
    h("h1", null, `Records like ${anchor}`, " ", h("span.muted", null, `by ${field}`)),
    datasetTabs(ds, "records", at),
    h(
      "p.muted",
      null,
      `${res.hits.length} nearest by ${res.metric} (${higherBetter ? "higher" : "lower"} is closer), `,
      res.used_index ? `through the ${idx?.algorithm ?? ""} index` : "by brute force (no index built)",
      `, in ${ms.toFixed(0)} ms, at ${shortId(res.manifest, 14)} `,
      embs.length > 1 ? embs.map((f) => (f.name === field ? null : h("a", { href: href(["d", ds, "search", anchor], { at, field: f.name }) }, `by ${f.name}`))) : null,
    ),
    h("div.split", null,
      h("div", null, h("h2", null, "Query"), h("div.grid", null, h("a.card", { href: href(["d", ds, "record", anchor], { at: info.manifest }) }, thumb(query.record), h("dl", null, h("dt", null, "anchor"), h("dd", null, anchor), shown.filter((f) => f !== img).map((f) => [h("dt", null, f), h("dd", null, compact(query.record[f]))]))))),
      h("div", null),
    ),
    h("h2", null, "Nearest neighbours"),
    h(
      "table",
      { id: "hits", "aria-label": "Nearest neighbours" },
      h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, "Score"), h("th", null, "Record"), img ? h("th", null, img) : null, shown.filter((f) => f !== img).map((f) => h("th", null, f)), h("th", null, ""))),
      h(
        "tbody",
        null,
        res.hits.map((hit, i) =>
          h(
            "tr",
            { "data-anchor": hit.anchor_str },
            h("td.num", null, i + 1),
            h("td.num.score", null, fmtNum(hit.score)),
            h("td", null, h("a", { href: href(["d", ds, "record", hit.anchor_str], { at: res.manifest }), "data-nav": "" }, hit.anchor_str)),
            img ? h("td", null, thumb(hit)) : null,
            shown.filter((f) => f !== img).map((f) => h("td", null, compact(hit[f]))),
            h("td", null, h("a", { href: href(["d", ds, "search", hit.anchor_str], { at: res.manifest, field }) }, "more like this")),
          ),
        ),
      ),
    ),
  );
}
