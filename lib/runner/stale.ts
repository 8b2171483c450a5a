/**
 * Staleness: compare what a stage would run against now with what the lock says it last ran against.
 *
 * Why: this is the heart of "make, but by content". A stage is stale when it has no lock entry, when any
 * of its code (script + local imports), its declared params values, its input files or its outs differ
 * from the lock. Upstream stages need no special case: their outs are this stage's deps, so an upstream
 * rerun that produced byte-identical outs leaves this stage fresh. Every reason is a sentence a user can
 * act on, naming the file or key and the old → new short hash or value.
 */

import type { StageCode } from "./codegraph.ts";
import { type PathHash, sha256Text, type StatCache } from "./hash.ts";
import type { StageLock } from "./lock.ts";
import { type BoundStage, ManifestError, type Pipeline } from "./manifest.ts";
import { diffValues, type ParamValue, paramValue, stableStringify } from "./params.ts";

/** What a stage would run against right now (taken just before it runs, and recorded in the lock). */
export interface StageSnapshot {
  code: Record<string, string>;
  params: Record<string, ParamValue>;
  /** null = missing. */
  deps: Record<string, PathHash | null>;
  /** Combined hash of code + params + deps, passed to the stage as FUNMATCH_DEPS_HASH. */
  depsHash: string;
  /** Hash of code + deps without the params, passed as FUNMATCH_INPUTS_HASH: a stage that makes several
   * independent outputs (distill's modes) keys each by it plus the params that output depends on. */
  inputsHash: string;
}

/** Everything staleness needs to look at. */
export interface StaleContext {
  root: string;
  pipeline: Pipeline;
  config: unknown;
  cache: StatCache;
  code: Map<string, StageCode>;
}

const short = (h: string | undefined) => (h ? h.slice(0, 8) : "none");
const MAX_FILE_REASONS = 5;

/** Throws a {@linkcode ManifestError} listing every declared params key the resolved config lacks. */
export function checkParams(p: Pipeline, config: unknown): void {
  const problems: string[] = [];
  for (const s of p.stages) {
    for (const k of s.params) {
      if (!paramValue(config, k.value).found) {
        problems.push(
          `${p.file}:${k.line}: stage "${s.name}" declares params key "${k.value}" but the resolved config has no such key`,
        );
      }
    }
  }
  if (problems.length > 0) throw new ManifestError(problems);
}

/** Hashes a stage's code, params and deps as they are now. */
export async function snapshotStage(ctx: StaleContext, stage: BoundStage): Promise<StageSnapshot> {
  const code: Record<string, string> = {};
  const sc = ctx.code.get(stage.script) ?? { files: [stage.script], npm: [] };
  for (const f of sc.files) code[f] = await ctx.cache.hashFile(f.startsWith("/") ? f : `${ctx.root}/${f}`);
  for (const n of sc.npm) code[n] = "npm";
  const params: Record<string, ParamValue> = {};
  for (const k of stage.params) {
    const { value, hash } = paramValue(ctx.config, k.value);
    params[k.value] = { value, hash };
  }
  const deps: Record<string, PathHash | null> = {};
  for (const d of stage.deps) deps[d.path] = await ctx.cache.hashPath(ctx.root, d.path);
  const depsHash = sha256Text(stableStringify({
    code,
    params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.hash])),
    deps: Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, v?.hash ?? null])),
  }));
  const inputsHash = sha256Text(stableStringify({
    code,
    deps: Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, v?.hash ?? null])),
  }));
  return { code, params, deps, depsHash, inputsHash };
}

/** Hashes a stage's outs as they are now (null = missing). */
export async function hashOuts(
  ctx: StaleContext,
  stage: BoundStage,
): Promise<Record<string, PathHash | null>> {
  const outs: Record<string, PathHash | null> = {};
  for (const o of stage.outs) outs[o.path] = await ctx.cache.hashPath(ctx.root, o.path);
  return outs;
}

function capped(lines: string[], noun = "files"): string[] {
  if (lines.length <= MAX_FILE_REASONS) return lines;
  return [...lines.slice(0, MAX_FILE_REASONS), `… and ${lines.length - MAX_FILE_REASONS} more ${noun}`];
}

/** Sentences describing how `cur` differs from `old` for one path (empty when identical). */
function pathReasons(
  kind: "input" | "out",
  path: string,
  old: PathHash | undefined,
  cur: PathHash | null,
  note: string,
): string[] {
  if (cur === null) return [`${kind} ${path} is missing${note}`];
  if (old === undefined) return [`${kind} ${path} is newly declared${note}`];
  if (old.hash === cur.hash) return [];
  const verb = kind === "out" ? "changed since the stage wrote it" : "changed";
  if (old.files && cur.files) {
    const lines: string[] = [];
    for (const [f, h] of Object.entries(cur.files)) {
      const was = old.files[f];
      if (was === undefined) lines.push(`${kind} ${path}/${f} was added${note}`);
      else if (was !== h) lines.push(`${kind} ${path}/${f} ${verb} (${short(was)} → ${short(h)})${note}`);
    }
    for (const f of Object.keys(old.files)) {
      if (!(f in cur.files)) lines.push(`${kind} ${path}/${f} was removed${note}`);
    }
    if (lines.length > 0) return capped(lines);
  }
  const what = old.files && !cur.files
    ? " (was a folder, now a file)"
    : !old.files && cur.files
    ? " (was a file, now a folder)"
    : "";
  return [`${kind} ${path} ${verb}${what} (${short(old.hash)} → ${short(cur.hash)})${note}`];
}

/**
 * Why `stage` must run, given its snapshot, its current outs and its lock entry; empty when it is fresh.
 *
 * @example
 * ```ts
 * const why = staleReasons(stage, await snapshotStage(ctx, stage), await hashOuts(ctx, stage), lock.stages[stage.name], "data/pets37/pipeline.lock");
 * ```
 */
export function staleReasons(
  stage: BoundStage,
  snap: StageSnapshot,
  outs: Record<string, PathHash | null>,
  entry: StageLock | undefined,
  lockPath: string,
): string[] {
  if (!entry) return [`never run (no entry in ${lockPath})`];
  const reasons: string[] = [];
  // Code.
  const codeLines: string[] = [];
  for (const [f, h] of Object.entries(snap.code)) {
    const was = entry.code?.[f];
    if (was === undefined) {
      codeLines.push(f.startsWith("npm:") ? `code now uses ${f}` : `code ${f} is newly imported`);
    } else if (was !== h) codeLines.push(`code ${f} changed (${short(was)} → ${short(h)})`);
  }
  for (const f of Object.keys(entry.code ?? {})) {
    if (!(f in snap.code)) {
      codeLines.push(f.startsWith("npm:") ? `code no longer uses ${f}` : `code ${f} is no longer imported`);
    }
  }
  reasons.push(...capped(codeLines));
  // Params.
  for (const [k, v] of Object.entries(snap.params)) {
    const was = entry.params?.[k];
    if (was === undefined) reasons.push(`params key ${k} is newly declared`);
    else if (was.hash !== v.hash) {
      const prefix = k === "*" ? "" : k.endsWith(".*") ? k.slice(0, -2) : k;
      const diffs = diffValues(prefix, was.value, v.value);
      reasons.push(
        ...capped(diffs.length > 0 ? diffs.map((d) => `params ${d}`) : [`params ${k} changed`], "params"),
      );
    }
  }
  for (const k of Object.keys(entry.params ?? {})) {
    if (!(k in snap.params)) reasons.push(`params key ${k} is no longer declared`);
  }
  // Inputs.
  for (const d of stage.deps) {
    const note = d.producers.length > 0 ? ` (made by ${d.producers.join(", ")})` : "";
    reasons.push(...pathReasons("input", d.path, entry.deps?.[d.path], snap.deps[d.path] ?? null, note));
  }
  for (const d of Object.keys(entry.deps ?? {})) {
    if (!(d in snap.deps)) reasons.push(`input ${d} is no longer declared`);
  }
  // Outs.
  for (const o of stage.outs) {
    reasons.push(...pathReasons("out", o.path, entry.outs?.[o.path], outs[o.path] ?? null, ""));
  }
  return reasons;
}
