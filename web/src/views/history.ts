// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, s, fmtNum, fmtTime, shortId } from "../dom";
import { api, type Commit, type Head } from "../api";
import { href, setCrumbs, datasetTabs } from "../main";

const ROW = 30;
const LANE = 18;

export interface Layout {
  lane: Map<string, number>;
  row: Map<string, number>;
  lanes: number;
}

/**
 * Lanes for a commit DAG listed newest first, as `git log --graph` does: a commit takes
 * the lane that expects it (or a new one), its first parent inherits that lane, other
 * parents get a lane of their own unless one already expects them.
 */
export function layoutDag(commits: Commit[]): Layout {
  const lanes: (string | null)[] = [];
  const lane = new Map<string, number>();
  const row = new Map<string, number>();
  let width = 0;
  commits.forEach((c, i) => {
    row.set(c.manifest, i);
    let l = lanes.indexOf(c.manifest);
    if (l < 0) {
      l = lanes.indexOf(null);
      if (l < 0) l = lanes.push(null) - 1;
    }
    // Other lanes that also waited for this commit (a merge base) end here.
    for (let j = 0; j < lanes.length; j++) if (j !== l && lanes[j] === c.manifest) lanes[j] = null;
    lane.set(c.manifest, l);
    lanes[l] = c.parents[0] ?? null;
    for (const p of c.parents.slice(1)) {
      if (lanes.includes(p)) continue;
      let free = lanes.indexOf(null);
      if (free < 0) free = lanes.push(null) - 1;
      lanes[free] = p;
    }
    width = Math.max(width, lanes.length);
  });
  return { lane, row, lanes: Math.max(1, width) };
}

const COLORS = ["#0b5cad", "#1a7f37", "#8250df", "#bc4c00", "#bf3989", "#0a7d8c", "#6e7781"];

/** The history graph (branches, merges, snapshots) with each commit's delta. */
export async function historyView(ds: string, q: URLSearchParams): Promise<HTMLElement> {
  const refFilter = q.getAll("ref").filter(Boolean);
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], "history");
  const [hist, refs] = await Promise.all([api.history(ds, { ref: refFilter.length ? refFilter : undefined, limit: 500 }), api.refs(ds)]);
  const { commits } = hist;
  const lay = layoutDag(commits);
  const headsAt = new Map<string, Head[]>();
  for (const hd of hist.heads) headsAt.set(hd.manifest, [...(headsAt.get(hd.manifest) ?? []), hd]);
  const x = (m: string) => 10 + (lay.lane.get(m) ?? 0) * LANE;
  const y = (m: string) => ROW / 2 + (lay.row.get(m) ?? 0) * ROW;
  const gw = 20 + lay.lanes * LANE;
  const gh = Math.max(ROW, commits.length * ROW);

  const edges: SVGElement[] = [];
  for (const c of commits) {
    c.parents.forEach((p, pi) => {
      const x1 = x(c.manifest);
      const y1 = y(c.manifest);
      if (!lay.row.has(p)) {
        // A parent left out (history truncated): a short dashed stub.
        edges.push(s("path", { d: `M${x1},${y1} L${x1},${y1 + ROW / 2}`, class: "edge", "stroke-dasharray": "3 3" }));
        return;
      }
      const x2 = x(p);
      const y2 = y(p);
      const col = COLORS[(pi ? lay.lane.get(c.manifest)! + pi : lay.lane.get(p)!) % COLORS.length];
      const d = x1 === x2 ? `M${x1},${y1} L${x2},${y2}` : `M${x1},${y1} C${x1},${y1 + ROW * 0.8} ${x2},${y1 + ROW * 0.2} ${x2},${Math.min(y2, y1 + ROW)} L${x2},${y2}`;
      edges.push(s("path", { d, class: "edge", stroke: col }));
    });
  }
  const nodes = commits.map((c) => {
    const heads = headsAt.get(c.manifest) ?? [];
    const snap = heads.some((hd) => hd.kind === "snapshot");
    return s(
      "circle",
      { cx: x(c.manifest), cy: y(c.manifest), r: snap ? 7 : 5, fill: snap ? "#8250df" : COLORS[lay.lane.get(c.manifest)! % COLORS.length], "data-manifest": c.manifest },
      s("title", null, `${c.manifest}${c.parents.length > 1 ? " (merge)" : ""}`),
    );
  });
  const graph = s("svg", { class: "dag", width: gw, height: gh, viewBox: `0 0 ${gw} ${gh}`, role: "img", "aria-label": `History graph of ${commits.length} commits` }, edges, nodes);

  const rows = commits.map((c) => {
    const heads = headsAt.get(c.manifest) ?? [];
    const delta = [c.added ? `+${fmtNum(c.added)}` : "", c.deleted ? `−${fmtNum(c.deleted)}` : "", c.replaced ? `~${fmtNum(c.replaced)}` : ""].filter(Boolean).join(" ") || "±0";
    return h(
      "a.commit",
      {
        href: href(["d", ds, "records"], { at: c.manifest }),
        "data-nav": "",
        "data-manifest": c.manifest,
        style: `height:${ROW}px`,
        title: `open the records of ${c.manifest}`,
      },
      h("span.heads", null, heads.map((hd) => h(`span.badge.${hd.kind}` as "span", null, hd.name))),
      h("span.msg", null, c.message || h("span.muted", null, "(no message)"), c.parents.length > 1 ? h("span.muted", null, " · merge") : null),
      h("span.delta.mono", { title: "added − deleted ~ replaced" }, delta),
      h("span.count.mono", { title: "records in this version" }, fmtNum(c.count)),
      h("span.fields.muted", null, c.fields.length ? c.fields.join(", ") : ""),
      h("span.time.muted.mono", null, fmtTime(c.time)),
      h("span.id.muted", null, shortId(c.manifest, 12)),
    );
  });

  const refSel = h(
    "select",
    { "aria-label": "Show the history of", multiple: false },
    h("option", { value: "" }, "every branch and snapshot"),
    [...refs.branches.map((b) => b.name), ...refs.snapshots.map((sn) => sn.name)].map((n) => h("option", { value: n, selected: refFilter[0] === n }, n)),
  );
  refSel.addEventListener("change", () => (location.hash = href(["d", ds, "history"], { ref: refSel.value })));

  return h(
    "section",
    null,
    h("h1", null, ds, " ", h("span.muted", null, "history")),
    datasetTabs(ds, "history"),
    h("form.query", null, h("label", null, "History of", refSel)),
    h("p.muted", null, `${commits.length} commits${hist.truncated ? " (the oldest left out)" : ""}. Each row is one version: its branches and snapshots, message, delta (+added −deleted ~replaced), record count, fields written, time. Open a row to browse that version.`),
    h("div.dag-wrap", null, h("div.dag-grid", { style: `display:grid;grid-template-columns:${gw}px 1fr` }, graph as unknown as Node, h("div.commits", { id: "commits" }, rows))),
  );
}
