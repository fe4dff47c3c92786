// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// The client of the JSON API of `dreamdb serve` (spec/30-http-api.md). Types list the
// fields the dashboard reads; the API may add others (spec/30 §6).

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public param?: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "dreamdb.token";

/** The bearer token, when the server asks for one (spec/30 §4); kept for this tab only. */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The API root: the page's own origin, or `?api=` for a dashboard opened elsewhere. */
const API_ROOT = (() => {
  const q = new URLSearchParams(location.search).get("api");
  return (q ?? "").replace(/\/$/, "");
})();

export function apiUrl(path: string): string {
  return API_ROOT + path;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function qs(params: Record<string, string | number | boolean | undefined | null | string[]>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.filter((x) => x !== "").forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// At most this many requests in flight. A browser keeps up to 6 connections per host, and
// `dreamdb serve` holds one request thread per open connection while it is kept alive
// (default 4 threads): more parallel requests than threads would wait for an idle
// connection to time out (seconds). A page's thumbnails therefore queue here.
const MAX_IN_FLIGHT = 3;
let inFlight = 0;
const waiting: (() => void)[] = [];

async function limited<T>(run: () => Promise<T>): Promise<T> {
  if (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => waiting.push(resolve));
  inFlight++;
  try {
    return await run();
  } finally {
    inFlight--;
    waiting.shift()?.();
  }
}

let asking: Promise<string | null> | null = null;

/** Asks for the token once, however many requests were refused at the same time. */
function askToken(message: string): Promise<string | null> {
  if (!asking) {
    asking = new Promise<string | null>((resolve) => {
      const entered = window.prompt(`${message}. Token:`)?.trim() || null;
      if (entered) sessionStorage.setItem(TOKEN_KEY, entered);
      resolve(entered);
    }).finally(() => setTimeout(() => (asking = null), 0));
  }
  return asking;
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const used = token();
  if (used) headers.set("Authorization", `Bearer ${used}`);
  let res: Response;
  try {
    res = await limited(() => fetch(apiUrl(path), { ...init, headers }));
  } catch (e) {
    throw new ApiError(0, "unavailable", `the server did not answer (${String(e)})`);
  }
  if (res.status === 401) {
    const body = await res.json().catch(() => null);
    const message = body?.error?.message ?? "This server needs a token";
    // Another request may have got the token meanwhile: retry with it before asking.
    const now = token();
    if (now && now !== used) return request<T>(path, init);
    if (await askToken(message)) return request<T>(path, init);
    throw new ApiError(401, "unauthorized", message);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    // spec/30 §2.6: a streamed body cut short by an error is not valid JSON.
    throw new ApiError(res.status, "io_error", `the answer to ${path} was cut short or is not JSON`);
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string; param?: string } })?.error;
    throw new ApiError(res.status, err?.code ?? "internal", err?.message ?? res.statusText, err?.param);
  }
  return body as T;
}

// ---- types (spec/30 §3) ----

export interface DatasetSummary {
  name: string;
  count: number | null;
  head: string | null;
  branches: number;
  snapshots: number;
}

export interface IndexInfo {
  built: boolean;
  algorithm?: string;
  metric?: string;
  cells?: number;
  live?: number;
  stale?: number;
}

export interface FieldInfo {
  name: string;
  type: string;
  optional: boolean;
  mime?: string;
  dim?: number;
  dtype?: string;
  shape?: number[];
  index?: IndexInfo;
}

export interface DatasetInfo {
  dataset: string;
  ref: string;
  manifest: string;
  count: number;
  schema: FieldInfo[];
  meta: Record<string, string>;
}

export interface RefInfo {
  name: string;
  ref: string;
  manifest: string;
}

export interface Refs {
  branches: RefInfo[];
  snapshots: RefInfo[];
}

export interface Head {
  kind: "branch" | "snapshot";
  name: string;
  manifest: string;
}

export interface Commit {
  manifest: string;
  parents: string[];
  time: string;
  time_ns: string;
  writer: string;
  message: string;
  count: number;
  added: number;
  deleted: number;
  replaced: number;
  fields: string[];
  schema_version: number;
}

export interface History {
  heads: Head[];
  commits: Commit[];
  truncated: boolean;
}

export interface BlobValue {
  size: number;
  mime: string;
  url: string;
}

export interface EmbeddingSummary {
  dim: number;
  norm: number;
  head: number[];
}

export interface TruncatedArray {
  dtype: string;
  shape: number[];
  elements: number;
  truncated: true;
}

export type Value = null | boolean | number | string | number[] | number[][] | BlobValue | EmbeddingSummary | TruncatedArray | unknown;

export interface RecordRow {
  anchor: number;
  anchor_str: string;
  [field: string]: Value;
}

export interface RecordsPage {
  manifest: string;
  fields: string[];
  records: RecordRow[];
  next: string | null;
  scanned: number;
}

export interface OneRecord {
  manifest: string;
  fields: string[];
  record: RecordRow;
}

export interface SearchHit extends RecordRow {
  score: number;
}

export interface SearchResult {
  manifest: string;
  field: string;
  metric: string;
  used_index: boolean;
  query: { anchor?: string; vector?: { dim: number } };
  hits: SearchHit[];
  fields: string[];
}

export interface SweepRun {
  run: number;
  branch: string;
  params: Record<string, string>;
}

export interface Sweep {
  sweep: string;
  record_branch: string;
  from: string;
  source_branch?: string | null;
  source_manifest: string;
  prefix?: string;
  metric?: string | null;
  goal?: string | null;
  created?: string;
  runs: SweepRun[];
}

export interface RunSummary {
  run: number;
  branch: string;
  value: number | string | null;
  rank: number | null;
  source: string;
  values: number;
  nulls: number;
  nans: number;
  note: string;
  head: string | null;
  params: Record<string, string>;
}

export interface SweepSummary {
  sweep: string;
  metric: string;
  goal: string;
  runs: RunSummary[];
  best: { run: number; branch: string; value: number } | null;
  worst: { run: number; branch: string; value: number } | null;
}

export interface CompareStat {
  field: string;
  type: string;
  baseline: string;
  ref: string;
  both: number;
  only_baseline: number;
  only_ref: number;
  differing: number;
  agreement: number;
  numeric_count?: number;
  mean_diff?: number;
  median_diff?: number;
  mean_abs_diff?: number;
  mean_cosine?: number;
  min_cosine?: number;
}

export interface Compare {
  refs: string[];
  manifests: string[];
  columns: { name: string; field: string; ref: string; type: string }[];
  rows: RecordRow[];
  next: string | null;
  summary: null | {
    anchors: number;
    differing: number;
    present: number[];
    complete: boolean;
    stats: CompareStat[];
  };
}

export interface RefCost {
  kind: "branch" | "snapshot";
  name: string;
  manifest: string;
  reachable_objects: number;
  reachable_bytes: number;
  unique_objects: number;
  unique_bytes: number;
  shared_objects: number;
  shared_bytes: number;
}

export interface Cost {
  objects: number;
  bytes: number;
  refs: RefCost[];
  cached: boolean;
  elapsed_ms: number;
}

// ---- endpoints ----

const ds = (name: string) => `/api/v1/datasets/${enc(name)}`;

export const api = {
  datasets: () => request<{ datasets: DatasetSummary[]; truncated: boolean }>("/api/v1/datasets"),
  dataset: (name: string, ref?: string) => request<DatasetInfo>(ds(name) + qs({ ref })),
  refs: (name: string) => request<Refs>(ds(name) + "/refs"),
  history: (name: string, opts: { ref?: string[]; limit?: number } = {}) =>
    request<History>(ds(name) + "/history" + qs({ ref: opts.ref, limit: opts.limit })),
  records: (
    name: string,
    opts: { ref?: string; fields?: string; where?: string[]; after?: string; limit?: number; embeddings?: "summary" | "full" },
  ) => request<RecordsPage>(ds(name) + "/records" + qs({ ...opts })),
  record: (name: string, anchor: string, ref?: string, fields?: string) =>
    request<OneRecord>(ds(name) + `/records/${enc(anchor)}` + qs({ ref, fields })),
  compare: (name: string, opts: { refs: string[]; fields?: string; after?: string; limit?: number; only_differing?: boolean; summary?: boolean }) =>
    request<Compare>(
      ds(name) +
        "/compare" +
        qs({
          refs: opts.refs.join(","),
          fields: opts.fields,
          after: opts.after,
          limit: opts.limit,
          only_differing: opts.only_differing === undefined ? undefined : opts.only_differing ? 1 : 0,
          summary: opts.summary === undefined ? undefined : opts.summary ? 1 : 0,
        }),
    ),
  searchByAnchor: (name: string, opts: { field: string; anchor: string; ref?: string; k?: number; where?: string[]; fields?: string }) =>
    request<SearchResult>(ds(name) + "/search" + qs({ ...opts })),
  sweeps: (name: string) => request<{ sweeps: Sweep[] }>(ds(name) + "/sweeps"),
  sweep: (name: string, sweep: string, metric?: string, goal?: string) =>
    request<{ sweep: Sweep; summary: SweepSummary }>(ds(name) + `/sweeps/${enc(sweep)}` + qs({ metric, goal })),
  cost: (name: string) => request<Cost>(ds(name) + "/cost"),
};

/** An <img> source for a blob: an object URL of its bytes, fetched through the queue above
 * (with the token when the server needs one). */
export async function blobSrc(url: string): Promise<string> {
  const t = token();
  const res = await limited(async () => {
    const r = await fetch(apiUrl(url), t ? { headers: { Authorization: `Bearer ${t}` } } : {});
    return { ok: r.ok, status: r.status, blob: r.ok ? await r.blob() : null };
  });
  if (!res.ok || !res.blob) throw new ApiError(res.status, "not_found", `blob ${url}: HTTP ${res.status}`);
  return URL.createObjectURL(res.blob);
}

export function isBlob(v: unknown): v is BlobValue {
  return typeof v === "object" && v !== null && "url" in v && "mime" in v;
}

export function isEmbeddingSummary(v: unknown): v is EmbeddingSummary {
  return typeof v === "object" && v !== null && "norm" in v && "dim" in v;
}

export function isTruncatedArray(v: unknown): v is TruncatedArray {
  return typeof v === "object" && v !== null && (v as TruncatedArray).truncated === true;
}
