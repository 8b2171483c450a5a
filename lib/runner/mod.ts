/**
 * The pipeline runner: "make, but by content". Stages are declared in `pipeline/manifest.yaml`; a stage
 * reruns only when its code (script + local imports), declared params, inputs or outs changed since the
 * lock (`data/<dataset>/pipeline.lock`) recorded its last successful run.
 *
 * @example
 * ```ts
 * import { runPipeline } from "./lib/runner/mod.ts";
 * const r = await runPipeline({ root: Deno.cwd(), dataset: "pets37", config, profile: "cpu" });
 * ```
 * @module
 */

export {
  DEFAULT_MANIFEST,
  formatVerdicts,
  loadPipeline,
  type PipelineOptions,
  pipelineStatus,
  runPipeline,
  type RunReport,
  selectStages,
  type StageVerdict,
  type StatusReport,
} from "./pipeline.ts";
export {
  ancestors,
  bindManifest,
  type BoundStage,
  descendants,
  findStage,
  type Manifest,
  ManifestError,
  parseManifest,
  type Pipeline,
} from "./manifest.ts";
export { type LastRun, type LockFile, readLock, type StageLock } from "./lock.ts";
export { type PathHash, StatCache } from "./hash.ts";
export { stageCode } from "./codegraph.ts";
export { stableStringify } from "./params.ts";
export { RunnerBusyError } from "./pidlock.ts";
