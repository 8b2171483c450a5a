/**
 * The runner proper: choose stages, decide which are stale, run those in order, record the lock.
 *
 * Why here and not in the CLI: tests and the benchmark drive the runner with a small manifest in a temp dir
 * and a plain config object; the CLI only parses flags, resolves the real config and prints. Everything
 * is parameterised by the repo root, the manifest path and the resolved config.
 *
 * Order of a run: parse + bind the manifest (every manifest error, with its line, before anything runs) →
 * check params keys exist → take the dataset's runner lock → one `deno info` for all selected scripts →
 * for each selected stage in order: hash code/params/deps (pre-run), compare with the lock, and if stale
 * move its old outs aside, run it, check its outs exist (else put the old ones back), hash them and write the
 * lock entry. A stage's staleness is decided only after its upstream ran, so an upstream rerun with
 * byte-identical outs stops the cascade.
 */

import { existsSync } from "../fs.ts";
import { stageCode } from "./codegraph.ts";
import { StatCache } from "./hash.ts";
import { type LastRun, type LockFile, readLock, writeLock } from "./lock.ts";
import {
  ancestors,
  bindManifest,
  type BoundStage,
  descendants,
  findStage,
  ManifestError,
  parseManifest,
  type Pipeline,
} from "./manifest.ts";
import { type Sink, spawnStage, type StageProcess } from "./exec.ts";
import { liveHolder, RunnerLock } from "./pidlock.ts";
import { checkParams, hashOuts, snapshotStage, type StaleContext, staleReasons } from "./stale.ts";

/** Default manifest location, relative to the repo root. */
export const DEFAULT_MANIFEST = "pipeline/manifest.yaml";

/** What to run or check. */
export interface PipelineOptions {
  /** Absolute path of the repo root (stages run with this as cwd; paths in the manifest are relative to it). */
  root: string;
  /** Manifest path, relative to root or absolute (default pipeline/manifest.yaml). */
  manifest?: string;
  dataset: string;
  /** The resolved config; params keys are looked up in it. */
  config: unknown;
  /** The resolved profile, passed to every stage as `--profile` and recorded. */
  profile: string;
  /** Recorded in `last_run.backend` when given. */
  backend?: string;
  /** Extra stage arguments after `<dataset> --profile P` (e.g. `--source S`, `--set k=v`). */
  stageArgs?: string[];
  /** Stage names or number prefixes; none = all stages. */
  targets?: string[];
  /** Only the targets, not their upstream. */
  only?: boolean;
  /** Run the targets (or, with no targets, every selected stage) even when fresh. */
  force?: boolean;
  /** Print what would run, run nothing, write nothing. */
  dryRun?: boolean;
  /** Only this stage and what is downstream of it. */
  from?: string;
  /** Only this stage and what is upstream of it. */
  until?: string;
  /** The runner's own lines (default: stderr). */
  log?: (line: string) => void;
  /** Where stage stdout/stderr go besides the log file (default: this process's stdout/stderr). */
  stdout?: Sink;
  stderr?: Sink;
  /** Forward SIGINT/SIGTERM to the running stage and stop after it (the CLI sets this). */
  handleSignals?: boolean;
}

/** One stage's verdict. */
export interface StageVerdict {
  name: string;
  /** stale: will run; fresh: up to date; waits: fresh now, reruns only if an upstream rerun changes its outs. */
  state: "stale" | "fresh" | "waits";
  reasons: string[];
  /** For "waits": the stale upstream stages it waits on. */
  waitsOn?: string[];
}

/** Result of {@linkcode pipelineStatus}. */
export interface StatusReport {
  verdicts: StageVerdict[];
  /** Printable summary (one line per stage, reasons indented). */
  text: string;
  /** Holder pid when a runner is working on the dataset now. */
  runnerPid?: number;
  /** Stat cache counters of this check: files answered from the cache, files hashed, bytes read. */
  cache: { hits: number; hashed: number; bytes: number };
  /** The profile of the last recorded run, when there is one. */
  lastProfile?: string;
}

/** Result of {@linkcode runPipeline}. */
export interface RunReport {
  ran: string[];
  fresh: string[];
  /** Set when a stage failed (the run stopped there). */
  failed?: { stage: string; message: string };
  /** Set when SIGINT/SIGTERM stopped the run. */
  interrupted?: Deno.Signal;
  /** For --dry-run: the plan. */
  plan?: StageVerdict[];
  /** 0 ok, 1 a stage failed, 130 SIGINT, 143 SIGTERM. */
  exitCode: number;
}

function dataDir(o: PipelineOptions): string {
  return `${o.root}/data/${o.dataset}`;
}

/** Reads, parses and binds the manifest (throws {@linkcode ManifestError} with line numbers). */
export async function loadPipeline(root: string, manifest: string, dataset: string): Promise<Pipeline> {
  const abs = manifest.startsWith("/") ? manifest : `${root}/${manifest}`;
  const display = abs.startsWith(root + "/") ? abs.slice(root.length + 1) : abs;
  let text: string;
  try {
    text = await Deno.readTextFile(abs);
  } catch (e) {
    throw new ManifestError([`cannot read the pipeline manifest ${display}: ${(e as Error).message}`]);
  }
  return bindManifest(parseManifest(text, display), { root, dataset });
}

/**
 * The stages a command acts on, in pipeline order, and which of them are forced.
 * targets (+ their upstream unless `only`) ∩ (from and downstream) ∩ (until and upstream).
 */
export function selectStages(
  p: Pipeline,
  o: Pick<PipelineOptions, "targets" | "only" | "force" | "from" | "until">,
): { selected: BoundStage[]; forced: Set<string> } {
  const targets = (o.targets ?? []).map((t) => findStage(p, t).name);
  let sel = new Set(p.stages.map((s) => s.name));
  if (targets.length > 0) {
    sel = new Set(targets);
    if (!o.only) { for (const t of targets) for (const a of ancestors(p, t)) sel.add(a); }
  }
  if (o.from) {
    const f = findStage(p, o.from).name;
    const keep = descendants(p, f).add(f);
    sel = new Set([...sel].filter((s) => keep.has(s)));
  }
  if (o.until) {
    const u = findStage(p, o.until).name;
    const keep = ancestors(p, u).add(u);
    sel = new Set([...sel].filter((s) => keep.has(s)));
  }
  if (sel.size === 0) {
    const what = [o.from && `--from ${o.from}`, o.until && `--until ${o.until}`, ...(o.targets ?? [])].filter(
      Boolean,
    );
    throw new ManifestError([
      `the selection ${what.join(" ")} contains no stages (is --from downstream of --until?)`,
    ]);
  }
  const selected = p.stages.filter((s) => sel.has(s.name));
  const forced = new Set(o.force ? (targets.length > 0 ? targets : selected.map((s) => s.name)) : []);
  return { selected, forced };
}

interface Prepared {
  pipeline: Pipeline;
  selected: BoundStage[];
  forced: Set<string>;
  ctx: StaleContext;
  lock: LockFile;
  lockPath: string;
  lockDisplay: string;
}

type Selection = Pick<Prepared, "pipeline" | "selected" | "forced">;

/** Manifest, params keys and selection: every error these can raise comes before anything else happens. */
async function selectChecked(o: PipelineOptions): Promise<Selection> {
  const pipeline = await loadPipeline(o.root, o.manifest ?? DEFAULT_MANIFEST, o.dataset);
  checkParams(pipeline, o.config);
  return { pipeline, ...selectStages(pipeline, o) };
}

async function prepare(o: PipelineOptions, sel?: Selection): Promise<Prepared> {
  const { pipeline, selected, forced } = sel ?? await selectChecked(o);
  const cache = await StatCache.load(`${dataDir(o)}/.statcache.json`);
  const code = await stageCode(o.root, [...new Set(selected.map((s) => s.script))]);
  const lockDisplay = `data/${o.dataset}/pipeline.lock`;
  const lockPath = `${o.root}/${lockDisplay}`;
  const lock = await readLock(lockPath, o.dataset);
  return {
    pipeline,
    selected,
    forced,
    ctx: { root: o.root, pipeline, config: o.config, cache, code },
    lock,
    lockPath,
    lockDisplay,
  };
}

/** Verdicts for the selected stages without running anything (status and --dry-run). */
async function plan(pr: Prepared): Promise<StageVerdict[]> {
  const verdicts: StageVerdict[] = [];
  const pending = new Set<string>(); // stages that will or may run
  for (const s of pr.selected) {
    const reasons = pr.forced.has(s.name) ? ["forced (--force)"] : staleReasons(
      s,
      await snapshotStage(pr.ctx, s),
      await hashOuts(pr.ctx, s),
      pr.lock.stages[s.name],
      pr.lockDisplay,
    );
    if (reasons.length > 0) {
      verdicts.push({ name: s.name, state: "stale", reasons });
      pending.add(s.name);
      continue;
    }
    const waitsOn = s.upstream.filter((u) => pending.has(u));
    if (waitsOn.length > 0) {
      verdicts.push({ name: s.name, state: "waits", reasons: [], waitsOn });
      pending.add(s.name);
    } else verdicts.push({ name: s.name, state: "fresh", reasons: [] });
  }
  return verdicts;
}

/** Formats verdicts as the status text (stage names padded, reasons indented below a stale stage). */
export function formatVerdicts(verdicts: StageVerdict[]): string {
  const w = Math.max(...verdicts.map((v) => v.name.length));
  const lines: string[] = [];
  for (const v of verdicts) {
    const name = v.name.padEnd(w);
    if (v.state === "stale") {
      lines.push(`  ${name}  stale`);
      for (const r of v.reasons) lines.push(`  ${" ".repeat(w)}    - ${r}`);
    } else if (v.state === "waits") {
      lines.push(
        `  ${name}  fresh, but reruns if ${v.waitsOn!.join(", ")} rerun${
          v.waitsOn!.length > 1 ? "" : "s"
        } with different outs`,
      );
    } else lines.push(`  ${name}  fresh`);
  }
  const stale = verdicts.filter((v) => v.state === "stale").length;
  lines.push(
    stale === 0 ? `all ${verdicts.length} stages fresh` : `${stale} of ${verdicts.length} stages stale`,
  );
  return lines.join("\n");
}

/**
 * Each selected stage's verdict: fresh, or stale with every reason. Reads only; writes only the stat cache.
 *
 * @example
 * ```ts
 * const r = await pipelineStatus({ root: Deno.cwd(), dataset: "pets37", config, profile: "cpu" });
 * console.log(r.text);
 * ```
 */
export async function pipelineStatus(o: PipelineOptions): Promise<StatusReport> {
  const pr = await prepare(o);
  const verdicts = await plan(pr);
  await pr.ctx.cache.save();
  const holder = liveHolder(`${dataDir(o)}/.runner.pid`);
  return {
    verdicts,
    text: formatVerdicts(verdicts),
    runnerPid: holder?.pid,
    cache: { ...pr.ctx.cache.stats },
    lastProfile: pr.lock.last_run?.profile,
  };
}

/** Throws when a stage that would run reads a missing input whose maker is outside the selection. */
function checkCutInputs(pr: Prepared, o: PipelineOptions): void {
  const sel = new Set(pr.selected.map((s) => s.name));
  const problems: string[] = [];
  for (const s of pr.selected) {
    for (const d of s.deps) {
      if (d.producers.some((p) => sel.has(p))) continue;
      try {
        Deno.statSync(`${o.root}/${d.path}`);
      } catch {
        const by = d.producers.length > 0
          ? `; it is made by ${d.producers.join(", ")}, which this run does not include`
          : "";
        const flag = o.only ? "--only" : o.from ? "--from" : "the selection";
        problems.push(
          `stage "${s.name}" cannot run: its input ${d.path} (${pr.pipeline.file}:${d.line}) is missing${by} (drop ${flag} to build it)`,
        );
      }
    }
  }
  if (problems.length > 0) throw new ManifestError(problems);
}

function runId(started: Date): string {
  return `${started.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}-${Deno.pid}`;
}

/**
 * Runs the stale selected stages in order (or, with `dryRun`, reports what would run).
 *
 * @example
 * ```ts
 * const r = await runPipeline({ root: Deno.cwd(), dataset: "pets37", config, profile: "cpu", handleSignals: true });
 * Deno.exit(r.exitCode);
 * ```
 */
export async function runPipeline(o: PipelineOptions): Promise<RunReport> {
  const log = o.log ?? ((line: string) => console.error(line));
  if (o.dryRun) {
    const pr = await prepare(o);
    const verdicts = await plan(pr);
    await pr.ctx.cache.save();
    const stale = verdicts.filter((v) => v.state === "stale");
    if (stale.length === 0) log(`all ${verdicts.length} stages fresh, nothing to run`);
    else log(`dry run: would run ${stale.map((v) => v.name).join(", ")}\n${formatVerdicts(verdicts)}`);
    return {
      ran: [],
      fresh: verdicts.filter((v) => v.state === "fresh").map((v) => v.name),
      plan: verdicts,
      exitCode: 0,
    };
  }
  // Manifest and params errors come before the runner lock, so they never wait on another runner.
  const selection = await selectChecked(o);
  await Deno.mkdir(dataDir(o), { recursive: true });
  const runnerLock = RunnerLock.acquire(`${dataDir(o)}/.runner.pid`);
  let current: StageProcess | null = null;
  let interrupted: Deno.Signal | undefined;
  let sigints = 0;
  const onSignal = (sig: Deno.Signal) => () => {
    interrupted ??= sig;
    if (sig === "SIGINT") sigints++;
    if (current) {
      if (sigints >= 2) {
        log(`second Ctrl-C: killing stage (pid ${current.pid})`);
        current.kill("SIGKILL");
      } else {
        log(`${sig}: stopping stage (pid ${current.pid}); Ctrl-C again to kill it`);
        current.kill(sig);
      }
    }
  };
  const handlers: [Deno.Signal, () => void][] = o.handleSignals
    ? [["SIGINT", onSignal("SIGINT")], ["SIGTERM", onSignal("SIGTERM")]]
    : [];
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  let pr: Prepared | null = null;
  try {
    pr = await prepare(o, selection);
    if (o.only || o.from) checkCutInputs(pr, o);
    const started = new Date();
    const lastRun: LastRun = {
      id: runId(started),
      started: started.toISOString(),
      profile: o.profile,
      ...(o.backend ? { backend: o.backend } : {}),
      stages: {},
    };
    pr.lock.last_run = lastRun;
    const report: RunReport = { ran: [], fresh: [], exitCode: 0 };
    const logDir = `${dataDir(o)}/logs`;
    for (const s of pr.selected) {
      if (interrupted) break;
      const snap = await snapshotStage(pr.ctx, s);
      const reasons = pr.forced.has(s.name)
        ? ["forced (--force)"]
        : staleReasons(s, snap, await hashOuts(pr.ctx, s), pr.lock.stages[s.name], pr.lockDisplay);
      if (reasons.length === 0) {
        report.fresh.push(s.name);
        lastRun.stages[s.name] = "fresh";
        log(`fresh  ${s.name}`);
        continue;
      }
      log(`run    ${s.name}: ${reasons[0]}`);
      for (const r of reasons.slice(1)) log(`       ${" ".repeat(s.name.length)}  ${r}`);
      // The stage sees itself as "ran" in last_run (the report stage reads it while it runs).
      lastRun.stages[s.name] = "ran";
      await writeLock(pr.lockPath, pr.lock);
      // The old outs move aside (a name hashing ignores) rather than being deleted: a stage that fails, say on
      // a mistyped --source, gets them back instead of losing a good download.
      const aside = new Map<string, string>();
      for (const out of s.outs) {
        const path = `${o.root}/${out.path}`;
        await removeAside(path);
        const to = `${path}${ASIDE}${lastRun.id}`;
        try {
          await Deno.rename(path, to);
          aside.set(path, to);
        } catch { /* no previous out */ }
      }
      const restoreAside = async () => {
        for (const [path, to] of aside) {
          if (existsSync(path)) await Deno.remove(to, { recursive: true }).catch(() => {});
          else await Deno.rename(to, path).catch(() => {});
        }
      };
      const dropAside = async () => {
        for (const to of aside.values()) await Deno.remove(to, { recursive: true }).catch(() => {});
      };
      await Deno.mkdir(logDir, { recursive: true });
      const args = ["run", "-A", s.script, o.dataset, "--profile", o.profile, ...(o.stageArgs ?? [])];
      const t0 = performance.now();
      current = await spawnStage({
        args,
        cwd: o.root,
        env: {
          FUNMATCH_DEPS_HASH: snap.depsHash,
          FUNMATCH_INPUTS_HASH: snap.inputsHash,
          FUNMATCH_RUNNER: "1",
          FUNMATCH_STAGE: s.name,
          FUNMATCH_LOG: `${logDir}/${s.name}.log`,
          // The stage's stderr is a pipe (teed), so it cannot see the user's terminal itself.
          FUNMATCH_TTY: Deno.stderr.isTerminal() ? "1" : "0",
        },
        logPath: `${logDir}/${s.name}.log`,
        header: `\n=== ${new Date().toISOString()} run ${lastRun.id}: deno ${args.join(" ")} ===\n`,
        stdout: o.stdout,
        stderr: o.stderr,
      });
      runnerLock.noteChild(current.pid, s.name);
      const st = await current.status;
      current = null;
      runnerLock.noteChild(null);
      const duration = (performance.now() - t0) / 1000;
      let failure: string | null = null;
      const missing = st.success ? s.outs.filter((out) => !existsSync(`${o.root}/${out.path}`)) : [];
      if (interrupted || !st.success || missing.length > 0) await restoreAside();
      else await dropAside();
      if (interrupted) {
        delete lastRun.stages[s.name];
        lastRun.interrupted = true;
        log(
          `stage ${s.name} stopped by ${interrupted} after ${
            duration.toFixed(1)
          } s; the lock keeps its previous entry, the next run reruns it`,
        );
        break;
      } else if (!st.success) {
        const how = st.signal ? `was killed by ${st.signal}` : `exited with code ${st.code}`;
        failure = `stage ${s.name} (${s.script}) ${how} after ${
          duration.toFixed(1)
        } s; see data/${o.dataset}/logs/${s.name}.log`;
      } else {
        if (missing.length > 0) {
          failure = `stage ${s.name} (${s.script}) exited 0 but did not write its out ${
            missing.map((m) => `${m.path} (${pr!.pipeline.file}:${m.line})`).join(", ")
          }`;
        }
      }
      if (failure !== null) {
        delete lastRun.stages[s.name];
        lastRun.failed = s.name;
        lastRun.finished = new Date().toISOString();
        await writeLock(pr.lockPath, pr.lock);
        log(`error: ${failure}`);
        return { ...report, failed: { stage: s.name, message: failure }, exitCode: 1 };
      }
      const outs = await hashOuts(pr.ctx, s);
      pr.lock.stages[s.name] = {
        script: s.script,
        code: snap.code,
        params: snap.params,
        deps: Object.fromEntries(
          Object.entries(snap.deps).filter(([, v]) => v !== null),
        ) as LockFile["stages"][string]["deps"],
        outs: outs as LockFile["stages"][string]["outs"],
        deps_hash: snap.depsHash,
        ran_at: new Date().toISOString(),
        duration_s: Math.round(duration * 1000) / 1000,
        profile: o.profile,
      };
      await writeLock(pr.lockPath, pr.lock);
      report.ran.push(s.name);
      log(`done   ${s.name}  ${duration.toFixed(1)} s`);
    }
    lastRun.finished = new Date().toISOString();
    if (interrupted) lastRun.interrupted = true;
    // Keep stage entries in pipeline order so the lock reads like the manifest.
    const ordered: LockFile["stages"] = {};
    for (const st of pr.pipeline.stages) {
      if (pr.lock.stages[st.name]) ordered[st.name] = pr.lock.stages[st.name];
    }
    for (const [k, v] of Object.entries(pr.lock.stages)) ordered[k] ??= v;
    pr.lock.stages = ordered;
    await writeLock(pr.lockPath, pr.lock);
    if (interrupted) return { ...report, interrupted, exitCode: interrupted === "SIGINT" ? 130 : 143 };
    if (report.ran.length === 0) log(`all ${pr.selected.length} stages fresh, nothing to run`);
    return report;
  } finally {
    if (current) (current as StageProcess).kill("SIGTERM");
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
    await pr?.ctx.cache.save().catch(() => {});
    runnerLock.release();
  }
}

/** Suffix of an out moved aside while its stage reruns (contains ".tmp-", so hashing ignores it). */
const ASIDE = ".tmp-prev-";

/** Removes outs a killed runner left moved aside next to `path`. */
async function removeAside(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash), base = path.slice(slash + 1) + ASIDE;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(base)) await Deno.remove(`${dir}/${e.name}`, { recursive: true }).catch(() => {});
    }
  } catch { /* no folder yet */ }
}
