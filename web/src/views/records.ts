// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, fmtNum, shortId } from "../dom";
import { api, isBlob, type RecordRow } from "../api";
import { href, setCrumbs, datasetTabs } from "../main";
import { compact, blobImage } from "../render";

/** A <select> of the dataset's branches and snapshots (plus the current value if it is neither). */
export async function refPicker(ds: string, current: string, onPick: (ref: string) => void, label = "Version"): Promise<HTMLElement> {
  const refs = await api.refs(ds);
  const names = [...refs.branches.map((b) => b.name), ...refs.snapshots.map((s) => s.name)];
  const sel = h(
    "select",
    { "aria-label": label },
    h("optgroup", { label: "Branches" }, refs.branches.map((b) => h("option", { value: b.name, selected: b.name === current }, b.name))),
    h("optgroup", { label: "Snapshots" }, refs.snapshots.map((s) => h("option", { value: s.name, selected: s.name === current }, s.name))),
    names.includes(current) ? null : h("option", { value: current, selected: true }, shortId(current, 16)),
  );
  sel.addEventListener("change", () => onPick(sel.value));
  return h("label", null, label, sel);
}

/** One card of the record grid: thumbnail (first image field) and the projected fields. */
export function recordCard(ds: string, at: string, rec: RecordRow, fields: string[], img: string | undefined, eager = false): HTMLElement {
  const image = img ? rec[img] : undefined;
  return h(
    "a.card",
    { href: href(["d", ds, "record", rec.anchor_str], { at }), "data-nav": "", "data-anchor": rec.anchor_str },
    isBlob(image) ? blobImage(image.url, `record ${rec.anchor_str}`, "thumb", eager) : null,
    h(
      "dl",
      null,
      h("dt", null, "anchor"),
      h("dd", null, rec.anchor_str),
      fields.filter((f) => f !== img).map((f) => [h("dt", null, f), h("dd", null, compact(rec[f]))]),
    ),
  );
}

/** The record grid of one version: thumbnails and fields, a filter (where) and a projection. */
export async function recordsView(ds: string, q: URLSearchParams): Promise<HTMLElement> {
  const at = q.get("at") ?? "main";
  const where = q.getAll("where").filter(Boolean);
  const fieldsParam = q.get("fields") ?? "";
  const after = q.get("after") ?? undefined;
  const trail = (q.get("trail") ?? "").split(",").filter(Boolean);
  // Later pages read the manifest the first page read (spec/30 §2.3).
  const pinned = q.get("m") ?? undefined;
  setCrumbs(["Datasets", "#/"], ds, "records");
  const go = (patch: Record<string, string | string[] | undefined>) => {
    const cur: Record<string, string | string[] | undefined> = { at, fields: fieldsParam, where, after, trail: trail.join(","), m: pinned };
    location.hash = href(["d", ds, "records"], { ...cur, ...patch });
  };

  const t0 = performance.now();
  // The first page must show fast on a large dataset: the grid needs only the records
  // request (and the refs for the picker); the dataset's description (count, schema) fills
  // in when it arrives.
  const infoP = api.dataset(ds, pinned ?? at);
  infoP.catch(() => undefined);
  const [page, picker] = await Promise.all([
    api.records(ds, { ref: pinned ?? at, fields: fieldsParam || undefined, where, after, limit: 60 }),
    refPicker(ds, at, (r) => go({ at: r, after: undefined, trail: undefined, m: undefined })),
  ]);
  const loadMs = performance.now() - t0;
  const img = page.fields.find((f) => page.records.some((r) => isBlob(r[f]) && (r[f] as { mime: string }).mime.startsWith("image/")));
  const whereBox = h("input", { type: "text", name: "where", value: where.join(" AND "), placeholder: "label == 1", "data-slash": "", "aria-label": "Filter (where)" });
  const fieldsBox = h("input", { type: "text", name: "fields", value: fieldsParam, placeholder: page.fields.join(","), "aria-label": "Fields (projection)" });
  const form = h(
    "form.query",
    { role: "search" },
    picker,
    h("label", null, "Filter (where)", whereBox),
    h("label", null, "Fields", fieldsBox),
    h("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    // "a AND b" is two predicates, all of which must hold (spec/30 §3.6).
    go({ where: whereBox.value.split(/\s+and\s+/i).map((w) => w.trim()).filter(Boolean), fields: fieldsBox.value.replace(/\s+/g, "") || undefined, after: undefined, trail: undefined, m: undefined });
  });

  const countEl = h("span", { id: "record-count" }, "…");
  infoP.then(
    (info) => (countEl.textContent = fmtNum(info.count)),
    () => (countEl.textContent = "?"),
  );
  const prev = trail.length || after !== undefined;
  const pager = h(
    "div.pager",
    null,
    h("button", { type: "button", disabled: !prev, "data-prev": "", title: "p" }, "← Previous"),
    h("button", { type: "button", disabled: !page.next, "data-next": "", title: "n" }, "Next →"),
    h("span.muted", null, `${page.records.length} records on this page of `, countEl, where.length ? `; ${fmtNum(page.scanned)} scanned` : "", ` · read ${shortId(page.manifest, 14)} in ${loadMs.toFixed(0)} ms`),
  );
  const [prevBtn, nextBtn] = pager.querySelectorAll("button");
  prevBtn.addEventListener("click", () => {
    const t = trail.slice();
    const back = t.pop();
    go({ after: back === "-" ? undefined : back, trail: t.join(",") || undefined, m: t.length || back !== "-" ? page.manifest : undefined });
  });
  nextBtn.addEventListener("click", () => go({ after: page.next ?? undefined, trail: [...trail, after ?? "-"].join(","), m: page.manifest }));

  return h(
    "section",
    null,
    h("h1", null, ds, " ", h("span.muted", null, `@ ${at}`)),
    datasetTabs(ds, "records", at),
    form,
    page.records.length === 0 ? h("p.muted", null, "No record matches.") : null,
    h("div.grid", { id: "record-grid", "aria-label": "Records" }, page.records.map((r, i) => recordCard(ds, page.manifest, r, page.fields, img, i < 21))),
    pager,
  );
}
