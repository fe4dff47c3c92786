// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
import { h, fmtNum, shortId } from "../dom";
import { api } from "../api";
import { href, setCrumbs } from "../main";

/** The store's datasets, each linking to its records, history, sweeps and cost. */
export async function datasetsView(): Promise<HTMLElement> {
  setCrumbs("Datasets");
  const { datasets, truncated } = await api.datasets();
  return h(
    "section",
    null,
    h("h1", null, "Datasets"),
    datasets.length === 0 ? h("p.muted", null, "This store holds no dataset yet.") : null,
    h(
      "table",
      { "aria-label": "Datasets" },
      h("thead", null, h("tr", null, ["Dataset", "Records (main)", "Branches", "Snapshots", "Head of main", ""].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        datasets.map((d) =>
          h(
            "tr",
            null,
            h("td", null, h("a", { href: href(["d", d.name, "records"]), "data-nav": "" }, d.name)),
            h("td.num", null, d.count === null ? "—" : fmtNum(d.count)),
            h("td.num", null, d.branches),
            h("td.num", null, d.snapshots),
            h("td.id", { title: d.head ?? "" }, shortId(d.head ?? undefined, 16)),
            h(
              "td",
              null,
              h("a", { href: href(["d", d.name, "history"]) }, "history"),
              " · ",
              h("a", { href: href(["d", d.name, "sweeps"]) }, "sweeps"),
              " · ",
              h("a", { href: href(["d", d.name, "cost"]) }, "cost"),
            ),
          ),
        ),
      ),
    ),
    truncated ? h("p.muted", null, "Only the first 10,000 datasets are listed.") : null,
  );
}
