// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The dashboard's entry: a hash router (so dist/ works from any path and from file:// too),
// the breadcrumbs, the keyboard shortcuts and the help dialog.
import "./style.css";
import { h, mount, link } from "./dom";
import { ApiError } from "./api";
import { datasetsView } from "./views/datasets";
import { recordsView } from "./views/records";
import { recordView } from "./views/record";
import { historyView } from "./views/history";
import { sweepsView, sweepView, sweepRecordView } from "./views/sweep";
import { searchView } from "./views/search";
import { costView } from "./views/cost";

export interface Route {
  parts: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(qs ?? "") };
}

/** "#/d/pets/records?at=v1": a hash for path parts and query values (empty values left out). */
export function href(parts: (string | number)[], query: Record<string, string | number | undefined | null | string[]> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (Array.isArray(v)) v.filter(Boolean).forEach((x) => q.append(k, x));
    else if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const qs = q.toString();
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/") + (qs ? "?" + qs : "");
}

const main = document.getElementById("main")!;
const crumbs = document.getElementById("crumbs")!;
let generation = 0;

/** The current view; a view that finishes after another navigation does not draw. */
export function isCurrent(gen: number): boolean {
  return gen === generation;
}

export function setCrumbs(...items: (string | [string, string])[]): void {
  const nodes: Node[] = [];
  items.forEach((it, i) => {
    if (i) nodes.push(h("span.sep"));
    nodes.push(typeof it === "string" ? h("span", { "aria-current": "page" }, it) : link(it[1], it[0]));
  });
  mount(crumbs, nodes);
}

/** The tabs of one dataset's pages. */
export function datasetTabs(ds: string, current: string, at?: string): HTMLElement {
  const tabs: [string, string, string][] = [
    ["records", "Records", "r"],
    ["history", "History", "h"],
    ["sweeps", "Sweeps", "s"],
    ["cost", "Lineage & cost", "c"],
  ];
  return h(
    "nav.tabs",
    { "aria-label": "Dataset views" },
    tabs.map(([id, label, key]) =>
      h("a", { href: href(["d", ds, id], { at }), "aria-current": id === current ? "page" : null, title: `g ${key}` }, label),
    ),
  );
}

async function render(): Promise<void> {
  const gen = ++generation;
  const { parts, query } = parseHash(location.hash);
  mount(main, h("p.loading", null, "Loading…"));
  const t0 = performance.now();
  try {
    let view: HTMLElement;
    if (parts.length === 0) {
      view = await datasetsView();
    } else if (parts[0] === "d" && parts.length >= 2) {
      const ds = parts[1];
      const page = parts[2] ?? "records";
      switch (page) {
        case "records":
          view = await recordsView(ds, query);
          break;
        case "record":
          view = await recordView(ds, parts[3], query);
          break;
        case "search":
          view = await searchView(ds, parts[3], query);
          break;
        case "history":
          view = await historyView(ds, query);
          break;
        case "sweeps":
          view = await sweepsView(ds);
          break;
        case "sweep":
          view = parts[4] === "record" ? await sweepRecordView(ds, parts[3], parts[5], query) : await sweepView(ds, parts[3], query);
          break;
        case "cost":
          view = await costView(ds, query);
          break;
        default:
          throw new ApiError(404, "not_found", `no page '${page}'`);
      }
    } else {
      throw new ApiError(404, "not_found", `no page '${parts.join("/")}'`);
    }
    if (!isCurrent(gen)) return;
    mount(main, view);
    document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
    document.body.dataset.route = parts.join("/");
    document.body.dataset.rendered = String(gen);
  } catch (e) {
    if (!isCurrent(gen)) return;
    const msg = e instanceof ApiError ? `${e.code}: ${e.message}` : String(e);
    mount(main, h("h1", null, "Something went wrong"), h("p.error", { role: "alert" }, msg), link("#/", "Back to the datasets"));
    document.body.dataset.route = "error";
    document.body.dataset.rendered = String(gen);
  }
  // A new page moves focus to its content, so keyboard and screen reader users start there.
  if (document.activeElement === document.body || !main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

// ---- keyboard ----

const SHORTCUTS: [string, string][] = [
  ["?", "show this help"],
  ["g d", "datasets"],
  ["g r", "records of this dataset"],
  ["g h", "history graph"],
  ["g s", "sweeps"],
  ["g c", "lineage and cost"],
  ["/", "focus the filter or search box"],
  ["j / k", "next / previous item in a list, grid or graph"],
  ["Enter", "open the focused item"],
  ["n / p", "next / previous page of records"],
  ["Esc", "close this help"],
  ["Tab", "every control is reachable with Tab; focus is outlined"],
];

function showHelp(): void {
  const dlg = document.getElementById("help") as HTMLDialogElement;
  mount(
    dlg,
    h("h2", { id: "help-title" }, "Keyboard shortcuts"),
    h("table", null, h("tbody", null, SHORTCUTS.map(([k, what]) => h("tr", null, h("td", null, k.split(" ").map((x) => (x === "/" && k !== "/" ? " / " : h("kbd", null, x)))), h("td", null, what))))),
    h("form", { method: "dialog" }, h("button", { type: "submit" }, "Close")),
  );
  if (!dlg.open) dlg.showModal();
}

let pendingG = 0;

function moveFocus(delta: number): void {
  const items = Array.from(main.querySelectorAll<HTMLElement>("[data-nav]"));
  if (!items.length) return;
  const i = items.indexOf(document.activeElement as HTMLElement);
  const next = items[Math.max(0, Math.min(items.length - 1, i < 0 ? 0 : i + delta))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
}

function clickIf(selector: string): void {
  const el = main.querySelector<HTMLElement>(selector);
  if (el) el.click();
}

document.addEventListener("keydown", (ev) => {
  const t = ev.target as HTMLElement;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (t.closest("input, textarea, select, [contenteditable]")) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  const { parts } = parseHash(location.hash);
  const ds = parts[0] === "d" ? parts[1] : undefined;
  if (Date.now() - pendingG < 1500) {
    pendingG = 0;
    const target = ({ d: [], r: ["records"], h: ["history"], s: ["sweeps"], c: ["cost"] } as Record<string, string[]>)[ev.key];
    if (target) {
      ev.preventDefault();
      location.hash = target.length && ds ? href(["d", ds, ...target]) : "#/";
    }
    return;
  }
  switch (ev.key) {
    case "?":
      showHelp();
      break;
    case "g":
      pendingG = Date.now();
      break;
    case "/": {
      const box = main.querySelector<HTMLInputElement>("input[data-slash]");
      if (box) {
        ev.preventDefault();
        box.focus();
        box.select();
      }
      break;
    }
    case "j":
      moveFocus(1);
      break;
    case "k":
      moveFocus(-1);
      break;
    case "n":
      clickIf("[data-next]");
      break;
    case "p":
      clickIf("[data-prev]");
      break;
    default:
      return;
  }
});

document.getElementById("help-button")!.addEventListener("click", showHelp);
window.addEventListener("hashchange", render);
render();
