// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, fmtBytes, fmtNum, shortId } from "../dom";
import { api, ApiError, type Compare } from "../api";
import { href, setCrumbs, datasetTabs } from "../main";
import { stackBar } from "../charts";
import { compact } from "../render";

/** The meta key training runs write: the manifest they read (examples/training_recipe.py). */
const TRAINED_ON = "trained_on";

function changes(cmp: Compare): HTMLElement {
  const sum = cmp.summary;
  return h(
    "div",
    { id: "changes" },
    sum
      ? h("p", null, `${fmtNum(sum.differing)} of ${fmtNum(sum.anchors)} records differ (present: ${sum.present.map(fmtNum).join(" / ")}).`)
      : null,
    sum && sum.stats.length
      ? h(
          "table",
          { "aria-label": "Per-field changes" },
          h("thead", null, h("tr", null, ["Field", "In both", "Only before", "Only after", "Differing", "Agreement", "Mean diff"].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            sum.stats.map((st) =>
              h("tr", null, h("td", null, st.field), h("td.num", null, fmtNum(st.both)), h("td.num", null, fmtNum(st.only_baseline)), h("td.num", null, fmtNum(st.only_ref)), h("td.num", null, fmtNum(st.differing)), h("td.num", null, fmtNum(st.agreement)), h("td.num", null, st.mean_diff !== undefined ? fmtNum(st.mean_diff) : st.mean_cosine !== undefined ? `cos ${fmtNum(st.mean_cosine)}` : "")),
            ),
          ),
        )
      : null,
    cmp.rows.length
      ? h(
          "table",
          { "aria-label": "Records that changed" },
          h("thead", null, h("tr", null, h("th", null, "anchor"), cmp.columns.map((c) => h("th", null, c.name)))),
          h("tbody", null, cmp.rows.map((r) => h("tr", null, h("td.num", null, r.anchor_str), cmp.columns.map((c) => h("td", null, compact(r[c.name])))))),
        )
      : null,
  );
}

/** Lineage and cost: what each training run read, what changed since, bytes per ref. */
export async function costView(ds: string, q: URLSearchParams): Promise<HTMLElement> {
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], "lineage & cost");
  const refs = await api.refs(ds);
  const snapByManifest = new Map(refs.snapshots.map((sn) => [sn.manifest, sn.name]));

  // Lineage: the branches whose metadata records the snapshot a training run read.
  const metas = await Promise.all(
    refs.branches.slice(0, 50).map(async (b) => ({ b, info: await api.dataset(ds, b.manifest).catch(() => null) })),
  );
  const lineage = metas.filter((m) => m.info?.meta?.[TRAINED_ON]);
  const since = q.get("since") ?? refs.snapshots[0]?.name ?? "";
  const to = q.get("to") ?? "main";

  const sinceSel = h("select", { "aria-label": "Since" }, [...refs.snapshots, ...refs.branches].map((r) => h("option", { value: r.name, selected: r.name === since }, r.name)));
  const toSel = h("select", { "aria-label": "Up to" }, [...refs.branches, ...refs.snapshots].map((r) => h("option", { value: r.name, selected: r.name === to }, r.name)));
  const form = h("form.query", null, h("label", null, "Since", sinceSel), h("label", null, "Up to", toSel), h("button", { type: "submit" }, "Show changes"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = href(["d", ds, "cost"], { since: sinceSel.value, to: toSel.value });
  });
  let changed: Node = h("p.muted", null, "The dataset has no snapshot to compare with.");
  if (since && since !== to) {
    try {
      changed = changes(await api.compare(ds, { refs: [since, to], only_differing: true, limit: 20 }));
    } catch (e) {
      changed = h("p.error", null, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
    }
  }

  let costPart: Node;
  try {
    const cost = await api.cost(ds);
    const max = Math.max(1, ...cost.refs.map((r) => r.reachable_bytes));
    costPart = h(
      "div",
      null,
      h("p.muted", null, `${fmtNum(cost.objects)} distinct objects, ${fmtBytes(cost.bytes)} in all; computed in ${cost.elapsed_ms} ms${cost.cached ? " (cached)" : ""}. Shared bytes are stored once and reached from more than one ref (content addressing); unique bytes would be freed if only that ref were deleted.`),
      h(
        "table",
        { id: "cost", "aria-label": "Bytes per ref" },
        h("thead", null, h("tr", null, ["Ref", "Kind", "Reachable", "Unique", "Shared", "", "Objects (unique)"].map((c) => h("th", null, c)))),
        h(
          "tbody",
          null,
          cost.refs.map((r) =>
            h(
              "tr",
              null,
              h("td", null, h("a", { href: href(["d", ds, "records"], { at: r.name }) }, r.name)),
              h("td", null, h(`span.badge.${r.kind}` as "span", null, r.kind)),
              h("td.num", null, fmtBytes(r.reachable_bytes)),
              h("td.num", null, fmtBytes(r.unique_bytes)),
              h("td.num", null, fmtBytes(r.shared_bytes)),
              h("td", null, stackBar([{ label: `shared ${fmtBytes(r.shared_bytes)}`, value: r.shared_bytes, cls: "shared" }, { label: `unique ${fmtBytes(r.unique_bytes)}`, value: r.unique_bytes, cls: "unique" }], max, `${r.name}: shared vs unique bytes`)),
              h("td.num", null, `${fmtNum(r.reachable_objects)} (${fmtNum(r.unique_objects)})`),
            ),
          ),
        ),
      ),
    );
  } catch (e) {
    costPart = h("p.error", null, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
  }

  return h(
    "section",
    null,
    h("h1", null, ds, " ", h("span.muted", null, "lineage & cost")),
    datasetTabs(ds, "cost"),
    h("h2", null, "Lineage: what each training run read"),
    lineage.length
      ? h(
          "table",
          { id: "lineage", "aria-label": "Lineage" },
          h("thead", null, h("tr", null, ["Branch", "Read", "Model", ""].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            lineage.map(({ b, info }) => {
              const m = info!.meta[TRAINED_ON];
              const snap = snapByManifest.get(m);
              return h(
                "tr",
                null,
                h("td", null, b.name),
                h("td", null, snap ? h("span.badge.snapshot", null, snap) : null, " ", h("code", { title: m }, shortId(m, 16))),
                h("td.mono", null, shortId(info!.meta.model, 16)),
                h("td", null, h("a", { href: href(["d", ds, "cost"], { since: snap ?? m, to: b.name }) }, "what changed since")),
              );
            }),
          ),
        )
      : h("p.muted", null, `No branch records a '${TRAINED_ON}' snapshot in its metadata.`),
    h("h2", null, "What changed since"),
    form,
    changed,
    h("h2", null, "Bytes per ref"),
    costPart,
  );
}
