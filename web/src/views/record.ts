// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, shortId } from "../dom";
import { api } from "../api";
import { href, setCrumbs, datasetTabs } from "../main";
import { full, embeddingFields } from "../render";

/** One record with every field rendered: images shown, embeddings summarised, arrays plotted. */
export async function recordView(ds: string, anchor: string, q: URLSearchParams): Promise<HTMLElement> {
  const at = q.get("at") ?? "main";
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], `record ${anchor}`);
  const [info, one] = await Promise.all([api.dataset(ds, at), api.record(ds, anchor, at)]);
  const byName = new Map(info.schema.map((f) => [f.name, f]));
  const embs = embeddingFields(info.schema);
  return h(
    "section",
    null,
    h("h1", null, `Record ${anchor}`, " ", h("span.muted", null, `of ${ds} @ ${shortId(at, 16)}`)),
    datasetTabs(ds, "records", at),
    h("p.muted", null, "Version read: ", h("code", null, one.manifest)),
    embs.length
      ? h(
          "p",
          null,
          embs.map((f) =>
            h("a", { href: href(["d", ds, "search", anchor], { at: one.manifest, field: f.name }), "data-nav": "", id: `similar-${f.name}` }, `Nearest neighbours by ${f.name} →`),
          ),
        )
      : null,
    h(
      "dl.fields",
      { id: "record-fields" },
      h("dt", null, "anchor"),
      h("dd", null, one.record.anchor_str),
      one.fields.map((name) => [h("dt", null, name), h("dd", { "data-field": name }, full(byName.get(name), name, one.record[name]))]),
    ),
  );
}
