// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, fmtNum, fmtTime, shortId } from "../dom";
import { api, isBlob, type RunSummary, type Sweep, type FieldInfo } from "../api";
import { href, setCrumbs, datasetTabs } from "../main";
import { barChart } from "../charts";
import { compact, full, imageField, blobImage } from "../render";
import { recordCard } from "./records";

/** The recorded sweeps of a dataset. */
export async function sweepsView(ds: string): Promise<HTMLElement> {
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], "sweeps");
  const { sweeps } = await api.sweeps(ds);
  return h(
    "section",
    null,
    h("h1", null, ds, " ", h("span.muted", null, "sweeps")),
    datasetTabs(ds, "sweeps"),
    sweeps.length === 0 ? h("p.muted", null, "No sweep recorded. Start one with ", h("code", null, `dreamdb sweep init ${ds} NAME --from REF --runs N`), ".") : null,
    h(
      "table",
      { "aria-label": "Sweeps" },
      h("thead", null, h("tr", null, ["Sweep", "Runs", "From", "Metric", "Created"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        sweeps.map((sw) =>
          h(
            "tr",
            null,
            h("td", null, h("a", { href: href(["d", ds, "sweep", sw.sweep]), "data-nav": "" }, sw.sweep)),
            h("td.num", null, sw.runs.length),
            h("td", null, sw.from),
            h("td", null, sw.metric ? `${sw.metric} (${sw.goal ?? "min"})` : h("span.muted", null, "none recorded")),
            h("td.mono", null, fmtTime(sw.created)),
          ),
        ),
      ),
    ),
  );
}

function runMark(r: RunSummary, best: number | undefined, worst: number | undefined): "best" | "worst" | undefined {
  if (r.run === best) return "best";
  if (r.run === worst) return "worst";
  return undefined;
}

/** A run's parameters and the commits it made since the sweep's source. */
async function runDetails(ds: string, sw: Sweep, r: RunSummary): Promise<HTMLElement> {
  const hist = await api.history(ds, { ref: [r.branch], limit: 50 });
  const own: typeof hist.commits = [];
  for (const c of hist.commits) {
    if (c.manifest === sw.source_manifest) break;
    own.push(c);
  }
  return h(
    "div",
    { id: "run-details" },
    h("h2", null, `Run ${r.run}: `, h("code", null, r.branch)),
    h("dl.fields", null, Object.entries(r.params).map(([k, v]) => [h("dt", null, k), h("dd.mono", null, v)]), h("dt", null, "head"), h("dd.id", null, r.head ?? "branch gone")),
    h("h3", null, `${own.length} commit${own.length === 1 ? "" : "s"} since the source`),
    own.length
      ? h(
          "ul",
          null,
          own.map((c) =>
            h("li", null, h("a", { href: href(["d", ds, "records"], { at: c.manifest }) }, c.message || "(no message)"), h("span.muted", null, ` · +${c.added} −${c.deleted} ~${c.replaced} · ${fmtTime(c.time)} · ${shortId(c.manifest, 12)}`)),
          ),
        )
      : h("p.muted", null, "The run has not committed yet: its branch is still the source."),
    h("p", null, h("a", { href: href(["d", ds, "history"], { ref: r.branch }) }, "History of this run →"), " ", h("a", { href: href(["d", ds, "records"], { at: r.branch }) }, "Records of this run →")),
  );
}

/** One sweep: every run's metric side by side, best and worst, parameters and commits. */
export async function sweepView(ds: string, name: string, q: URLSearchParams): Promise<HTMLElement> {
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], [`sweeps`, href(["d", ds, "sweeps"])], name);
  const metric = q.get("metric") ?? undefined;
  const goal = q.get("goal") ?? undefined;
  const { sweep: sw, summary } = await api.sweep(ds, name, metric, goal);
  const best = summary.best?.run;
  const worst = summary.worst?.run;
  const info = await api.dataset(ds, sw.source_manifest);
  const numeric = info.schema.filter((f) => f.type === "int64" || f.type === "float64").map((f) => f.name);
  const paramNames = [...new Set(summary.runs.flatMap((r) => Object.keys(r.params)))];

  const metricBox = h("input", { type: "text", name: "metric", value: summary.metric, "aria-label": "Metric", list: "metric-names" });
  const goalSel = h("select", { "aria-label": "Goal" }, ["min", "max"].map((g) => h("option", { value: g, selected: g === summary.goal }, g)));
  const form = h(
    "form.query",
    null,
    h("label", null, "Metric (a numeric field or a run-level value)", metricBox),
    h("datalist", { id: "metric-names" }, numeric.map((f) => h("option", { value: f }))),
    h("label", null, "Goal", goalSel),
    h("button", { type: "submit" }, "Summarize"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = href(["d", ds, "sweep", name], { metric: metricBox.value.trim(), goal: goalSel.value });
  });

  const details = h("div", { "aria-live": "polite" });
  const showRun = async (r: RunSummary) => {
    details.replaceChildren(h("p.loading", null, "Loading…"));
    try {
      details.replaceChildren(await runDetails(ds, sw, r));
    } catch (e) {
      details.replaceChildren(h("p.error", null, String(e)));
    }
  };

  const table = h(
    "table",
    { id: "runs", "aria-label": "Runs" },
    h("thead", null, h("tr", null, h("th", null, "Rank"), h("th", null, "Run"), h("th", null, "Branch"), paramNames.map((p) => h("th", null, p)), h("th", null, summary.metric), h("th", null, "From"), h("th", null, ""))),
    h(
      "tbody",
      null,
      summary.runs.map((r) => {
        const mark = runMark(r, best, worst);
        const tr = h(
          `tr${mark ? "." + mark : ""}` as "tr",
          { tabindex: 0, "data-nav": "", "data-run": r.run, "aria-label": `run ${r.run}${mark ? ", " + mark : ""}` },
          h("td.num", null, r.rank ?? "—"),
          h("td.num", null, r.run),
          h("td.mono", null, r.branch),
          paramNames.map((p) => h("td.mono", null, r.params[p] ?? "")),
          h("td.num", { title: r.note }, r.value === null ? h("span.muted", null, r.note || "no value") : fmtNum(r.value)),
          h("td.muted", null, r.source === "records" ? `mean of ${fmtNum(r.values)} records${r.nulls ? `, ${r.nulls} null` : ""}` : r.source),
          h("td", null, mark ? h(`span.badge.${mark}` as "span", null, mark) : null),
        );
        tr.addEventListener("click", () => showRun(r));
        tr.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            showRun(r);
          }
        });
        return tr;
      }),
    ),
  );

  // Records to compare across runs: the first page of the best run (or the source).
  const runRef = summary.runs.find((r) => r.run === best)?.head ?? sw.source_manifest;
  const runInfo = await api.dataset(ds, runRef);
  const img = imageField(runInfo.schema);
  const small = runInfo.schema.filter((f) => f.type !== "embedding" && f.type !== "array").slice(0, 4).map((f) => f.name);
  const page = await api.records(ds, { ref: runRef, fields: small.join(","), limit: 12 });
  const cards = page.records.map((rec) => {
    const card = recordCard(ds, page.manifest, rec, small, img);
    card.setAttribute("href", href(["d", ds, "sweep", name, "record", rec.anchor_str], { metric: summary.metric, goal: summary.goal }));
    return card;
  });

  return h(
    "section",
    null,
    h("h1", null, `Sweep ${name}`, " ", h("span.muted", null, `of ${ds}`)),
    datasetTabs(ds, "sweeps"),
    h("p.muted", null, `${sw.runs.length} runs from `, h("code", null, sw.from), ` (${shortId(sw.source_manifest, 14)}), created ${fmtTime(sw.created)}. `, summary.best ? [`Best: run ${summary.best.run} (${fmtNum(summary.best.value)}), worst: run ${summary.worst?.run} (${fmtNum(summary.worst?.value)}). `] : "No run has a value yet. ", h("code", null, `dreamdb sweep merge ${ds} ${name} --best`), " merges the best."),
    form,
    barChart(
      summary.runs.map((r) => ({ label: `run ${r.run}`, value: typeof r.value === "number" ? r.value : null, mark: runMark(r, best, worst) })),
      `${summary.metric} per run (${summary.goal} is best)`,
    ),
    h("h2", null, "Runs ", h("span.muted", null, "(select one for its parameters and commits)")),
    table,
    details,
    h("h2", null, "Records across runs ", h("span.muted", null, "(open one to see its fields and image in every run)")),
    h("div.grid", { id: "sweep-records" }, cards),
  );
}

/** One record in every run of a sweep, side by side, with the fields that differ marked. */
export async function sweepRecordView(ds: string, name: string, anchor: string, q: URLSearchParams): Promise<HTMLElement> {
  setCrumbs(["Datasets", "#/"], [ds, href(["d", ds, "records"])], [`sweep ${name}`, href(["d", ds, "sweep", name], { metric: q.get("metric"), goal: q.get("goal") })], `record ${anchor}`);
  const { sweep: sw, summary } = await api.sweep(ds, name, q.get("metric") ?? undefined, q.get("goal") ?? undefined);
  const versions: { label: string; ref: string; run?: RunSummary }[] = [
    { label: `source (${sw.from})`, ref: sw.source_manifest },
    ...summary.runs.filter((r) => r.head).map((r) => ({ label: `run ${r.run}`, ref: r.head!, run: r })),
  ];
  const results = await Promise.all(
    versions.map(async (v) => {
      try {
        const [info, one] = await Promise.all([api.dataset(ds, v.ref), api.record(ds, anchor, v.ref)]);
        return { ...v, info, one, error: null as string | null };
      } catch (e) {
        return { ...v, info: null, one: null, error: e instanceof Error ? e.message : String(e) };
      }
    }),
  );
  const fields = [...new Set(results.flatMap((r) => r.one?.fields ?? []))];
  const schema = new Map<string, FieldInfo>();
  for (const r of results) for (const f of r.info?.schema ?? []) schema.set(f.name, f);
  const key = (v: unknown) => (isBlob(v) ? v.size + v.mime : JSON.stringify(v));
  const differs = new Set(fields.filter((f) => new Set(results.filter((r) => r.one).map((r) => key(r.one!.record[f]))).size > 1));
  const best = summary.best?.run;
  const worst = summary.worst?.run;
  return h(
    "section",
    null,
    h("h1", null, `Record ${anchor}`, " ", h("span.muted", null, `across the runs of sweep ${name}`)),
    datasetTabs(ds, "sweeps"),
    h("p.muted", null, differs.size ? `Fields that differ between runs: ${[...differs].join(", ")}.` : "Every run holds the same values for this record."),
    h(
      "div.across",
      { id: "across" },
      results.map((r) => {
        const mark = r.run ? runMark(r.run, best, worst) : undefined;
        return h(
          `div.run${mark ? "." + mark : ""}` as "div",
          { "data-label": r.label },
          h("h3", null, r.label, " ", mark ? h(`span.badge.${mark}` as "span", null, mark) : null, r.run?.value !== undefined && r.run?.value !== null ? h("span.muted", null, ` ${summary.metric} ${fmtNum(r.run.value)}`) : null),
          r.error
            ? h("p.muted", null, r.error)
            : h(
                "dl.fields",
                null,
                fields.map((f) => {
                  const v = r.one!.record[f];
                  const f0 = schema.get(f);
                  const shown = isBlob(v) && v.mime.startsWith("image/") ? blobImage(v.url, `${f} in ${r.label}`, "across-img") : f0?.type === "embedding" || Array.isArray(v) ? full(f0, f, v) : compact(v);
                  return [h("dt", null, f, differs.has(f) ? " ≠" : ""), h("dd", null, shown)];
                }),
              ),
          h("a", { href: href(["d", ds, "record", anchor], { at: r.ref }) }, "open"),
        );
      }),
    ),
  );
}
