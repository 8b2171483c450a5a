/**
 * Training checkpoints for exact resume: parameters, optimizer state (moments and step count, bit for bit),
 * RNG state, input-pipeline position and whatever else the trainer needs (history), plus the hash of the code
 * and params they were made with, so a stale checkpoint is never resumed by accident.
 *
 * Layout of a checkpoint folder `dir`: `params.bin` and `opt.bin` (lib/model/weights.ts format) and
 * `state.json`. Saving writes a complete new folder `<dir>.tmp-<pid>`, moves the old one aside to
 * `<dir>.old-<pid>`, renames the new one into place and deletes the old: at every instant either `dir` or
 * `<dir>.old-*` holds a complete checkpoint, and `loadCheckpoint` recovers from the latter after a crash
 * between the two renames. Only the latest checkpoint is kept.
 */
import type * as tf from "@tensorflow/tfjs";
import { type LoadedTensor, loadWeights, saveWeights } from "../model/weights.ts";

const FORMAT = "funmatch-checkpoint";
const VERSION = 1;

/** What a trainer saves. */
export interface CheckpointInput {
  /** number of updates applied so far. */
  step: number;
  params: Map<string, tf.Tensor>;
  optState: Map<string, tf.Tensor>;
  /** generator state(s) the trainer needs (e.g. `Rng.state()`); may be empty. */
  rng: number[];
  /** input pipeline state (JSON). */
  input: object;
  /** anything else JSON (e.g. the loss history). */
  extra: object;
  /** hash of the code + params the run depends on. */
  depsHash: string;
}

/** What {@link loadCheckpoint} returns. */
export interface Checkpoint {
  step: number;
  params: Map<string, LoadedTensor>;
  optState: Map<string, LoadedTensor>;
  rng: number[];
  input: object;
  extra: object;
  depsHash: string;
}

function split(dir: string): { parent: string; base: string } {
  const d = dir.replace(/\/+$/, "");
  const i = d.lastIndexOf("/");
  return i < 0 ? { parent: ".", base: d } : { parent: d.slice(0, i) || "/", base: d.slice(i + 1) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function siblings(dir: string, kind: "tmp" | "old"): Promise<string[]> {
  const { parent, base } = split(dir);
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(parent)) {
      if (e.isDirectory && e.name.startsWith(`${base}.${kind}-`)) out.push(`${parent}/${e.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/**
 * Saves a checkpoint to `dir` atomically (see the module comment), replacing the previous one. Reads the
 * tensors' values; does not dispose them.
 */
export async function saveCheckpoint(dir: string, c: CheckpointInput): Promise<void> {
  if (!Number.isInteger(c.step) || c.step < 0) throw new Error(`saveCheckpoint ${dir}: bad step ${c.step}.`);
  const d = dir.replace(/\/+$/, "");
  const tmp = `${d}.tmp-${Deno.pid}`;
  const old = `${d}.old-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  await saveWeights(`${tmp}/params.bin`, c.params);
  await saveWeights(`${tmp}/opt.bin`, c.optState);
  const state = {
    format: FORMAT,
    version: VERSION,
    step: c.step,
    depsHash: c.depsHash,
    rng: c.rng,
    input: c.input,
    extra: c.extra,
  };
  await Deno.writeTextFile(`${tmp}/state.json`, JSON.stringify(state) + "\n");
  const had = await exists(d);
  if (had) await Deno.rename(d, old);
  await Deno.rename(tmp, d);
  // keep only the latest: our own old copy and anything a crashed earlier process left behind
  for (const s of [...await siblings(d, "old"), ...await siblings(d, "tmp")]) {
    await Deno.remove(s, { recursive: true }).catch(() => {});
  }
}

async function readFolder(dir: string): Promise<Checkpoint> {
  const where = `${dir}/state.json`;
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(await Deno.readTextFile(where));
  } catch (e) {
    throw new Error(`${where}: cannot read the checkpoint state (${(e as Error).message}).`);
  }
  if (state.format !== FORMAT || state.version !== VERSION) {
    throw new Error(
      `${where}: not a ${FORMAT} v${VERSION} file (format ${state.format}, version ${state.version}).`,
    );
  }
  if (!Number.isInteger(state.step) || typeof state.depsHash !== "string" || !Array.isArray(state.rng)) {
    throw new Error(`${where}: "step", "depsHash" or "rng" is missing or has the wrong type.`);
  }
  return {
    step: state.step as number,
    depsHash: state.depsHash,
    rng: state.rng as number[],
    input: (state.input ?? {}) as object,
    extra: (state.extra ?? {}) as object,
    params: await loadWeights(`${dir}/params.bin`),
    optState: await loadWeights(`${dir}/opt.bin`),
  };
}

/**
 * Loads the checkpoint in `dir`, or the one a crash left in `<dir>.old-*`; `null` when there is none. A folder
 * that exists but is damaged is an error naming the file. With `expectDepsHash`, a checkpoint made for other
 * code/params is treated as absent (null).
 */
export async function loadCheckpoint(
  dir: string,
  opts: { expectDepsHash?: string } = {},
): Promise<Checkpoint | null> {
  const d = dir.replace(/\/+$/, "");
  let found: string | null = null;
  if (await exists(`${d}/state.json`)) found = d;
  else {
    const olds = await siblings(d, "old");
    for (const o of olds.reverse()) {
      if (await exists(`${o}/state.json`)) {
        found = o;
        break;
      }
    }
  }
  if (found === null) return null;
  const c = await readFolder(found);
  if (opts.expectDepsHash !== undefined && c.depsHash !== opts.expectDepsHash) return null;
  return c;
}
