/**
 * What every stage script shares: its command line, the resolved config, the dataset's paths, writing an
 * out atomically, and failing with one sentence. Stage scripts stay thin; this keeps them uniform, so the
 * runner can call any of them the same way and a user can run any of them alone.
 *
 * @example
 * ```ts
 * await runStage("distill", async ({ config, paths }) => {
 *   await writeOutDir(paths.students, async (tmp) => { ... });
 * });
 * ```
 */
import { parseArgs } from "parse-args";
import { type Config, resolveConfig } from "../config/mod.ts";

/** The dataset's folders under the repository. */
export interface DatasetPaths {
  root: string;
  data: string;
  tfrecords: string;
  teacher: string;
  frozen: string;
  students: string;
  eval: string;
  logs: string;
  checkpoints: string;
  downloads: string;
  reportMd: string;
  reportDir: string;
  lock: string;
}

export const repoRoot: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Paths for `dataset` under `root` (the repository by default). */
export function datasetPaths(dataset: string, root = repoRoot): DatasetPaths {
  const data = `${root}/data/${dataset}`;
  return {
    root,
    data,
    tfrecords: `${data}/tfrecords`,
    teacher: `${data}/teacher`,
    frozen: `${data}/frozen`,
    students: `${data}/students`,
    eval: `${data}/eval`,
    logs: `${data}/logs`,
    checkpoints: `${data}/checkpoints`,
    downloads: `${data}/downloads`,
    reportMd: `${root}/reports/${dataset}.md`,
    reportDir: `${root}/reports/${dataset}`,
    lock: `${data}/pipeline.lock`,
  };
}

export interface StageContext {
  dataset: string;
  profile: string;
  config: Config;
  paths: DatasetPaths;
  /** The runner's hash of this stage's deps, code and params; a checkpoint made under another is not resumed. */
  depsHash: string;
  /** The runner's hash of the code and deps alone (no params); undefined when the stage runs standalone. */
  inputsHash: string | undefined;
  /** The file this stage's progress lines also go to; undefined under the runner, which already tees the
   * stage's output into it. */
  logFile: string | undefined;
  args: Record<string, unknown>;
}

/** An error meant for the user: printed as one sentence, exit code 1, no stack trace. */
export class StageError extends Error {}

/**
 * Parse `<dataset> [--profile P] [--source S] [--set k=v]…`, resolve the config and run `body`. Any error
 * ends the process with one line on stderr and a non-zero exit.
 */
export async function runStage(name: string, body: (ctx: StageContext) => Promise<void>): Promise<void> {
  try {
    const { values, positionals } = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        profile: { type: "string" },
        source: { type: "string" },
        set: { type: "string", multiple: true },
        backend: { type: "string" },
      },
    });
    if (positionals.length !== 1) {
      throw new StageError(
        `usage: deno run -A pipeline/<stage>.ts <dataset> [--profile P] [--source S] [--set k=v]`,
      );
    }
    const dataset = positionals[0];
    const set = [...(values.set ?? [])];
    if (values.backend) set.push(`backend=${values.backend}`);
    const resolved = await resolveConfig({
      dataset,
      profile: values.profile,
      source: values.source,
      set,
      gpu: values.profile ? undefined : await gpuProbe(),
    });
    const paths = datasetPaths(dataset);
    await Deno.mkdir(paths.logs, { recursive: true });
    const underRunner = Deno.env.get("FUNMATCH_LOG") !== undefined;
    const logFile = underRunner ? undefined : `${paths.logs}/${name}.log`;
    const ctx: StageContext = {
      dataset,
      profile: resolved.profile,
      config: resolved.config,
      paths,
      depsHash: Deno.env.get("FUNMATCH_DEPS_HASH") ?? `standalone:${stableHash(resolved.config)}`,
      inputsHash: Deno.env.get("FUNMATCH_INPUTS_HASH"),
      logFile,
      args: values,
    };
    if (logFile) {
      const header = `# ${name} ${dataset} profile=${resolved.profile} ${new Date().toISOString()}\n`;
      await Deno.writeTextFile(logFile, header, { append: true });
    }
    await body(ctx);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${name}: ${msg}`);
    if (Deno.env.get("FUNMATCH_DEBUG") && e instanceof Error) console.error(e.stack);
    Deno.exit(1);
  }
}

async function gpuProbe(): Promise<boolean> {
  const { gpuAvailable } = await import("../gpu.ts");
  return await gpuAvailable();
}

/** A short stable hash of a JSON-able value (key order does not matter). */
export function stableHash(value: unknown): string {
  const text = stableJson(value);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** JSON with sorted keys, so equal values give equal text. */
export function stableJson(value: unknown, indent?: number): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      return Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sort((v as never)[k])]));
    }
    return v;
  };
  return JSON.stringify(sort(value), null, indent);
}

/**
 * Build a directory out atomically: `fill` writes into a temporary sibling, which is renamed over `dir`
 * only when `fill` returns. A crash leaves the temporary folder, never a half-written `dir`.
 */
export async function writeOutDir(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, dir);
}

/** Write a file atomically (temporary name, then rename). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}

/** Read a JSON file, or fail with a sentence naming it. */
export async function readJson<T>(path: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new StageError(`${what} is missing: ${path} does not exist (run the stage that writes it first)`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new StageError(`${path} is not valid JSON`);
  }
}
