/**
 * Reads `pipeline/manifest.yaml` and turns it into a checked stage graph.
 *
 * Why: the manifest is the single source of truth for what each stage reads and writes, so every mistake in
 * it (a typo in a dep, two stages writing the same folder, a cycle) must be caught with its YAML line before a
 * single stage runs — a training stage that starts and then finds its out is claimed elsewhere wastes an hour.
 * Parsing keeps node ranges (yaml's Document + LineCounter API) so every error names `file:line`.
 *
 * Two steps: {@linkcode parseManifest} checks the shape (keys, types) from the text alone;
 * {@linkcode bindManifest} fills in `{dataset}`, checks paths against the disk and orders the stages.
 */

import { existsSync } from "../fs.ts";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { posix } from "node:path";

/** One list item of a stage (a dep, a params key or an out) with the YAML line it came from. */
export interface ManifestItem {
  value: string;
  line: number;
}

/** A stage as written in the manifest, before `{dataset}` is filled in. */
export interface StageDef {
  name: string;
  /** Line of the stage's name. */
  line: number;
  script: string;
  scriptLine: number;
  deps: ManifestItem[];
  params: ManifestItem[];
  outs: ManifestItem[];
  desc?: string;
}

/** A parsed manifest: the stages in file order. */
export interface Manifest {
  /** The path used in error messages (relative to the repo root when possible). */
  file: string;
  stages: StageDef[];
}

/** A dep or out with `{dataset}` filled in and normalised (posix, relative to the repo root). */
export interface BoundPath {
  path: string;
  line: number;
  /** Stages whose outs this dep reads (deps only). */
  producers: string[];
}

/** A stage after binding: concrete paths, upstream stages, its number prefix. */
export interface BoundStage {
  name: string;
  line: number;
  script: string;
  scriptLine: number;
  deps: BoundPath[];
  params: ManifestItem[];
  outs: BoundPath[];
  desc?: string;
  /** Digits before the first `_` of the script's file name (`04` for `pipeline/04_distill.ts`). */
  number?: string;
  /** Names of the stages this one reads outs from (direct only). */
  upstream: string[];
}

/** The bound pipeline: stages in a topological order that keeps file order where it can. */
export interface Pipeline {
  file: string;
  dataset: string;
  stages: BoundStage[];
  byName: Map<string, BoundStage>;
}

/** Thrown for any manifest problem; `problems` holds one sentence per problem, each starting `file:line:`. */
export class ManifestError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ManifestError";
  }
}

const DATASET_TOKEN = "__funmatch_dataset__";
const STAGE_KEYS = ["script", "deps", "params", "outs", "desc"];
const STAGE_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const PARAM_KEY = /^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$/;

/**
 * Parses manifest text and checks its shape: a top-level `stages:` mapping of stage name → { script, deps,
 * params, outs, desc }, with unknown keys and wrong types reported with their line.
 *
 * @example
 * ```ts
 * const m = parseManifest("stages:\n  a:\n    script: pipeline/01_a.ts\n    outs: [out/a]\n", "manifest.yaml");
 * console.log(m.stages[0].outs[0]); // { value: "out/a", line: 4 }
 * ```
 */
export function parseManifest(text: string, file: string): Manifest {
  const lc = new LineCounter();
  // `{dataset}` inside a flow list (`outs: [data/{dataset}/x]`) would start a YAML flow mapping; swap it for a
  // plain-scalar token first (same lines, so every line number stays right) and fill it in at bind time.
  const doc = parseDocument(text.replaceAll("{dataset}", DATASET_TOKEN), { lineCounter: lc });
  const problems: string[] = [];
  const lineOf = (node: Node | null | undefined): number => node?.range ? lc.linePos(node.range[0]).line : 1;
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const line = e.linePos?.[0]?.line ?? 1;
      const src = text.split("\n")[line - 1] ?? "";
      const hint = /\[[^\]]*\{/.test(src)
        ? " (a `{` inside a [flow] list starts a YAML mapping: quote the path or use a `- item` block list)"
        : "";
      problems.push(
        `${file}:${line}: YAML syntax error: ${e.message.split("\n")[0].replace(/ at line.*$/, "")}${hint}`,
      );
    }
    throw new ManifestError(problems);
  }
  const top = doc.contents;
  if (!isMap(top)) {
    throw new ManifestError([`${file}:${lineOf(top as Node)}: expected a mapping with a \`stages:\` key`]);
  }
  let stagesNode: Node | null = null;
  for (const pair of top.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    if (key === "stages") stagesNode = pair.value as Node;
    else {problems.push(
        `${file}:${lineOf(pair.key as Node)}: unknown top-level key "${key}" (expected only "stages")`,
      );}
  }
  if (!isMap(stagesNode)) {
    problems.push(
      `${file}:${lineOf(stagesNode ?? top)}: \`stages:\` must be a mapping of stage name → stage`,
    );
    throw new ManifestError(problems);
  }
  const stages: StageDef[] = [];
  for (const pair of stagesNode.items) {
    const keyNode = pair.key as Node;
    const name = isScalar(keyNode) ? String(keyNode.value) : "";
    const line = lineOf(keyNode);
    if (!STAGE_NAME.test(name)) {
      problems.push(
        `${file}:${line}: stage name "${name}" must start with a letter and use only letters, digits, _ and -`,
      );
      continue;
    }
    const body = pair.value as Node;
    if (!isMap(body)) {
      problems.push(`${file}:${line}: stage "${name}" must be a mapping with script, deps, params and outs`);
      continue;
    }
    const stage: StageDef = { name, line, script: "", scriptLine: line, deps: [], params: [], outs: [] };
    for (const p of body.items) {
      const kNode = p.key as Node;
      const k = isScalar(kNode) ? String(kNode.value) : "";
      const kLine = lineOf(kNode);
      const v = p.value as Node | null;
      if (!STAGE_KEYS.includes(k)) {
        problems.push(
          `${file}:${kLine}: stage "${name}" has unknown key "${k}" (expected ${STAGE_KEYS.join(", ")})`,
        );
      } else if (k === "script" || k === "desc") {
        if (!isScalar(v) || typeof v.value !== "string" || v.value === "") {
          problems.push(`${file}:${kLine}: stage "${name}" key "${k}" must be a non-empty string`);
        } else if (k === "script") {
          stage.script = v.value;
          stage.scriptLine = lineOf(v);
        } else stage.desc = v.value;
      } else {
        const items: ManifestItem[] = [];
        if (v === null || (isScalar(v) && v.value === null)) {
          // `deps:` with nothing after it: an empty list.
        } else if (!isSeq(v)) {
          problems.push(`${file}:${kLine}: stage "${name}" key "${k}" must be a list`);
        } else {
          for (const it of v.items as Node[]) {
            if (!isScalar(it) || typeof it.value !== "string" || it.value === "") {
              problems.push(`${file}:${lineOf(it)}: stage "${name}" ${k} entries must be non-empty strings`);
            } else if (k === "params" && !PARAM_KEY.test(it.value)) {
              problems.push(
                `${file}:${
                  lineOf(it)
                }: stage "${name}" params key "${it.value}" is not a dotted key (like data.splits or teacher.*)`,
              );
            } else items.push({ value: it.value.replaceAll(DATASET_TOKEN, "{dataset}"), line: lineOf(it) });
          }
        }
        stage[k as "deps" | "params" | "outs"] = items;
      }
    }
    if (stage.script === "" && !problems.some((p) => p.includes(`stage "${name}" key "script"`))) {
      problems.push(`${file}:${line}: stage "${name}" has no \`script:\``);
    }
    stages.push(stage);
  }
  if (stages.length === 0 && problems.length === 0) {
    problems.push(`${file}:${lineOf(stagesNode)}: \`stages:\` is empty`);
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return { file, stages };
}

/** True when `a` is `b` or lies inside directory `b` (both normalised relative paths). */
export function isUnder(a: string, b: string): boolean {
  return a === b || b === "." || a.startsWith(b + "/");
}

function fillTemplate(raw: string, dataset: string): string | { unknown: string } {
  let unknown = "";
  const out = raw.replaceAll(DATASET_TOKEN, dataset).replace(/\{([^}]*)\}/g, (_m, name: string) => {
    if (name === "dataset") return dataset;
    unknown ||= name;
    return "";
  });
  return unknown ? { unknown } : out;
}

function normalisePath(p: string): string {
  const n = posix.normalize(p.replaceAll("\\", "/"));
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/**
 * Fills in `{dataset}`, checks every path against the repo at `root`, links deps to the stages whose outs
 * they read and orders the stages. Problems (missing script, a dep nothing provides, an out claimed by two
 * stages, a cycle, an unknown `{placeholder}`) are collected and thrown together as a {@linkcode ManifestError}.
 *
 * @example
 * ```ts
 * const p = bindManifest(parseManifest(text, "pipeline/manifest.yaml"), { root: Deno.cwd(), dataset: "pets37" });
 * console.log(p.stages.map((s) => s.name));
 * ```
 */
export function bindManifest(manifest: Manifest, opts: { root: string; dataset: string }): Pipeline {
  const { file } = manifest;
  const problems: string[] = [];
  const names = new Set<string>();
  const bind = (stage: StageDef, it: ManifestItem, what: string): BoundPath | null => {
    const filled = fillTemplate(it.value, opts.dataset);
    if (typeof filled !== "string") {
      problems.push(
        `${file}:${it.line}: stage "${stage.name}" ${what} "${it.value}" uses unknown placeholder {${filled.unknown}} (only {dataset} is known)`,
      );
      return null;
    }
    const path = normalisePath(filled);
    if (path.startsWith("../") || path === ".." || path.startsWith("/")) {
      problems.push(
        `${file}:${it.line}: stage "${stage.name}" ${what} "${it.value}" points outside the repository (paths are relative to the repo root)`,
      );
      return null;
    }
    return { path, line: it.line, producers: [] };
  };
  const stages: BoundStage[] = [];
  for (const s of manifest.stages) {
    if (names.has(s.name)) problems.push(`${file}:${s.line}: stage "${s.name}" is defined twice`);
    names.add(s.name);
    const script = normalisePath(s.script);
    if (!existsSync(posix.join(opts.root, script))) {
      problems.push(`${file}:${s.scriptLine}: stage "${s.name}" script ${script} does not exist`);
    }
    const number = /^(\d+)_/.exec(posix.basename(script))?.[1];
    stages.push({
      name: s.name,
      line: s.line,
      script,
      scriptLine: s.scriptLine,
      deps: s.deps.map((d) => bind(s, d, "dep")).filter((d): d is BoundPath => d !== null),
      params: s.params,
      outs: s.outs.map((o) => bind(s, o, "out")).filter((o): o is BoundPath => o !== null),
      desc: s.desc,
      number,
      upstream: [],
    });
  }
  // Outs: no two may overlap (equal, or one inside the other), within or across stages.
  const allOuts = stages.flatMap((s) => s.outs.map((o) => ({ stage: s.name, out: o })));
  for (let i = 0; i < allOuts.length; i++) {
    for (let j = i + 1; j < allOuts.length; j++) {
      const a = allOuts[i], b = allOuts[j];
      if (isUnder(a.out.path, b.out.path) || isUnder(b.out.path, a.out.path)) {
        const how = a.out.path === b.out.path ? "is claimed by" : "overlaps";
        problems.push(
          `${file}:${b.out.line}: out ${b.out.path} of stage "${b.stage}" ${how} out ${a.out.path} of stage "${a.stage}" (line ${a.out.line}); each path must have one owner`,
        );
      }
    }
  }
  // Deps: link to producers; a dep nobody makes must already exist.
  for (const s of stages) {
    const up = new Set<string>();
    for (const d of s.deps) {
      for (const o of allOuts) {
        if (isUnder(d.path, o.out.path) || isUnder(o.out.path, d.path)) {
          if (!d.producers.includes(o.stage)) d.producers.push(o.stage);
        }
      }
      if (d.producers.includes(s.name)) {
        problems.push(
          `${file}:${d.line}: stage "${s.name}" dep ${d.path} is its own out; a stage cannot read what it writes`,
        );
      }
      d.producers.forEach((p) => p !== s.name && up.add(p));
      if (d.producers.length === 0 && !existsSync(`${opts.root}/${d.path}`)) {
        problems.push(
          `${file}:${d.line}: stage "${s.name}" dep ${d.path} does not exist and no stage lists it (or a folder above it) in its outs`,
        );
      }
    }
    s.upstream = [...up];
  }
  const byName = new Map(stages.map((s) => [s.name, s]));
  const order = problems.length === 0 ? topoOrder(stages, byName, file, problems) : [];
  if (problems.length > 0) throw new ManifestError(problems);
  return { file, dataset: opts.dataset, stages: order, byName };
}

/** Kahn's algorithm, picking the earliest stage in file order among the ready ones; reports a cycle. */
function topoOrder(
  stages: BoundStage[],
  byName: Map<string, BoundStage>,
  file: string,
  problems: string[],
): BoundStage[] {
  const done = new Set<string>();
  const order: BoundStage[] = [];
  while (order.length < stages.length) {
    const next = stages.find((s) => !done.has(s.name) && s.upstream.every((u) => done.has(u)));
    if (!next) break;
    done.add(next.name);
    order.push(next);
  }
  if (order.length < stages.length) {
    // Walk upstream links from a stuck stage until a name repeats: that loop is the cycle.
    let cur = stages.find((s) => !done.has(s.name))!;
    const seen: string[] = [];
    while (!seen.includes(cur.name)) {
      seen.push(cur.name);
      cur = byName.get(cur.upstream.find((u) => !done.has(u))!)!;
    }
    const loop = seen.slice(seen.indexOf(cur.name)).reverse();
    loop.push(loop[0]);
    const described = loop.map((n) => `${n} (line ${byName.get(n)!.line})`).join(" → ");
    problems.push(`${file}:${byName.get(loop[0])!.line}: stages form a cycle: ${described}`);
  }
  return order;
}

/** Every stage upstream of `name` (transitively), not including it. */
export function ancestors(p: Pipeline, name: string): Set<string> {
  const out = new Set<string>();
  const stack = [...p.byName.get(name)!.upstream];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (out.has(n)) continue;
    out.add(n);
    stack.push(...p.byName.get(n)!.upstream);
  }
  return out;
}

/** Every stage downstream of `name` (transitively), not including it. */
export function descendants(p: Pipeline, name: string): Set<string> {
  const out = new Set<string>();
  for (const s of p.stages) {
    if (s.upstream.some((u) => u === name || out.has(u))) out.add(s.name);
  }
  return out;
}

/**
 * Finds a stage by name or by its script's number prefix (`04`, or `4`); throws a sentence listing the
 * stages when there is no match.
 */
export function findStage(p: Pipeline, target: string): BoundStage {
  const byName = p.byName.get(target);
  if (byName) return byName;
  if (/^\d+$/.test(target)) {
    const hits = p.stages.filter((s) => s.number !== undefined && Number(s.number) === Number(target));
    if (hits.length === 1) return hits[0];
  }
  const known = [...p.byName.values()]
    .sort((a, b) => a.line - b.line)
    .map((s) => `${s.name}${s.number ? ` (${s.number})` : ""} at line ${s.line}`)
    .join(", ");
  throw new ManifestError([`unknown stage "${target}": ${p.file} defines ${known}`]);
}
