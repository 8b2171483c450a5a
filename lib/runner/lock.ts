/**
 * `data/<dataset>/pipeline.lock`: what every stage was last run against, and what it made.
 *
 * Why: staleness is a comparison between the world now and the world when a stage last succeeded; this
 * file is the second half. It is pretty JSON (readable in a diff, readable by the report stage, which shows
 * `last_run` — what this run ran and what it found fresh) and always replaced atomically, so a killed runner
 * leaves either the old lock or the new one, never half of one.
 */

import type { PathHash } from "./hash.ts";
import type { ParamValue } from "./params.ts";

/** One stage's record: written only after the stage succeeded and all its outs were found. */
export interface StageLock {
  script: string;
  /** Code files (repo-relative) → sha256; npm packages as `npm:name@version` → "npm". */
  code: Record<string, string>;
  /** Declared params keys → value and short hash. */
  params: Record<string, ParamValue>;
  /** Deps (paths with {dataset} filled in) → hash, taken before the stage ran. */
  deps: Record<string, PathHash>;
  /** Outs → hash, taken after the stage finished. */
  outs: Record<string, PathHash>;
  /** Combined hash of code + params + deps before the run (the `FUNMATCH_DEPS_HASH` the stage saw). */
  deps_hash: string;
  ran_at: string;
  duration_s: number;
  profile: string;
}

/** Summary of the latest `run` (not written by `status` or `--dry-run`). */
export interface LastRun {
  id: string;
  started: string;
  finished?: string;
  profile: string;
  backend?: string;
  /** Stages this run considered, in order: "ran" (ran and succeeded) or "fresh" (up to date, skipped). */
  stages: Record<string, "ran" | "fresh">;
  /** The stage that failed, when the run failed. */
  failed?: string;
  /** True when the run was stopped by Ctrl-C / SIGTERM. */
  interrupted?: boolean;
}

/** The whole lock file. */
export interface LockFile {
  version: 1;
  dataset: string;
  stages: Record<string, StageLock>;
  last_run?: LastRun;
}

/** Reads a lock file; a missing file is an empty lock, an unreadable one an error naming the file. */
export async function readLock(path: string, dataset: string): Promise<LockFile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { version: 1, dataset, stages: {} };
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const lock = JSON.parse(text) as LockFile;
    if (lock?.version !== 1 || typeof lock.stages !== "object" || lock.stages === null) {
      throw new Error("expected { version: 1, stages: {…} }");
    }
    return lock;
  } catch (e) {
    throw new Error(
      `${path} is not a valid pipeline lock (${
        (e as Error).message
      }); delete it to treat every stage as never run`,
    );
  }
}

/** Writes the lock as pretty JSON via `<path>.tmp-<pid>` + rename. */
export async function writeLock(path: string, lock: LockFile): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(lock, null, 2) + "\n");
  await Deno.rename(tmp, path);
}
