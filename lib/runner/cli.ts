/**
 * `deno task pipeline <dataset>` and `deno task status <dataset>`: the command line over lib/runner.
 *
 * Why a separate file: flag parsing, config resolution and printing are the only parts that need the real
 * repo (`lib/config/mod.ts`, `pipeline/manifest.yaml`); the runner itself is driven by tests and the
 * benchmark with a small manifest and a plain config object. `--root`, `--manifest` and
 * `--resolved-config` exist for those: they point the CLI at another tree and skip config resolution.
 *
 * Exit codes: 0 done (status: whether fresh or stale), 1 a stage or the manifest failed, 2 bad usage,
 * 130 interrupted by Ctrl-C, 143 by SIGTERM.
 */

import { parseArgs } from "parse-args";
import { fileURLToPath } from "node:url";
import { ManifestError } from "./manifest.ts";
import { type PipelineOptions, pipelineStatus, runPipeline } from "./pipeline.ts";

const USAGE = `usage:
  deno task pipeline <dataset> [stage…] [options]   run the stale stages (a stage: its name or number, e.g. 04)
  deno task status <dataset> [stage…] [options]     print each stage, fresh or stale with the reasons
options:
  --profile P      config profile (default: paper with a GPU, else cpu)
  --source S       where fetch reads the TFRecords from (URL or folder)
  --set k=v        override a config key (repeatable)
  --backend B      force a TF.js backend: tensorflow, wasm or cpu (same as --set backend=B)
  --only           just the named stages, not their upstream (their inputs must exist)
  --force          run the named stages (or all selected) even when fresh
  --dry-run        say what would run and why; run nothing
  --from X         only X and the stages downstream of it
  --until Y        only Y and the stages upstream of it
  --root DIR       repo root (default: the one holding this file)
  --manifest F     manifest (default: pipeline/manifest.yaml)
  --resolved-config F.json   use this resolved config ({ "config": {…}, "profile"?: "…" }) instead of
                   pipeline/datasets/<dataset>.yaml (tests and benchmarks)`;

interface Resolved {
  config: Record<string, unknown>;
  profile: string;
  /** Why this profile ("--profile", "default: no GPU backend", …), when the config module says. */
  profileReason?: string;
}

async function resolve(
  dataset: string,
  root: string | undefined,
  v: { profile?: string; source?: string; set?: string[]; "resolved-config"?: string },
): Promise<Resolved> {
  if (v["resolved-config"]) {
    const file = v["resolved-config"];
    let parsed: { config?: Record<string, unknown>; profile?: string };
    try {
      parsed = JSON.parse(await Deno.readTextFile(file));
    } catch (e) {
      throw new Error(`cannot read the resolved config ${file}: ${(e as Error).message}`);
    }
    if (!parsed?.config || typeof parsed.config !== "object") {
      throw new Error(`${file} must be JSON of the form { "config": {…}, "profile": "…" }`);
    }
    return { config: parsed.config, profile: v.profile ?? parsed.profile ?? "cpu" };
  }
  // Imported lazily so tests (which pass --resolved-config) load neither the config module nor TF.js.
  const { resolveConfig } = await import("../config/mod.ts");
  // The default profile is "paper" with a usable GPU, else "cpu"; probing loads TF.js, so only when needed.
  const gpu = v.profile === undefined ? await (await import("../gpu.ts")).gpuAvailable() : undefined;
  return await resolveConfig({ dataset, profile: v.profile, source: v.source, set: v.set, root, gpu });
}

/**
 * Runs the CLI with `args` (without the program name); returns the exit code.
 *
 * @example
 * ```ts
 * Deno.exit(await main(["status", "pets37"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        profile: { type: "string" },
        source: { type: "string" },
        set: { type: "string", multiple: true },
        backend: { type: "string" },
        only: { type: "boolean" },
        force: { type: "boolean" },
        "dry-run": { type: "boolean" },
        from: { type: "string" },
        until: { type: "string" },
        root: { type: "string" },
        manifest: { type: "string" },
        "resolved-config": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.backend !== undefined) v.set = [...(v.set ?? []), `backend=${v.backend}`];
  const [command, dataset, ...targets] = positionals;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (command !== "run" && command !== "status") {
    console.error(
      `error: expected "run" or "status", got ${
        command === undefined ? "nothing" : `"${command}"`
      }\n${USAGE}`,
    );
    return 2;
  }
  if (!dataset) {
    console.error(`error: name a dataset (one of pipeline/datasets/*.yaml without .yaml)\n${USAGE}`);
    return 2;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(dataset)) {
    console.error(`error: dataset name "${dataset}" may use only letters, digits, ".", "_" and "-"`);
    return 2;
  }
  for (const s of (v.set ?? []) as string[]) {
    if (!/^[^=]+=/.test(s)) {
      console.error(`error: --set expects key=value, got "${s}"`);
      return 2;
    }
  }
  const root = (v.root ? await Deno.realPath(v.root) : fileURLToPath(new URL("../../", import.meta.url)))
    .replace(/\/+$/, "");
  try {
    const resolved = await resolve(dataset, v.root ? root : undefined, v);
    const stageArgs = [
      ...(v.source !== undefined ? ["--source", v.source] : []),
      ...(v.set ?? []).flatMap((s: string) => ["--set", s]),
    ];
    const why = resolved.profileReason && resolved.profileReason !== "--profile"
      ? ` (${resolved.profileReason})`
      : "";
    const backend = typeof resolved.config.backend === "string" ? resolved.config.backend : undefined;
    const opts: PipelineOptions = {
      root,
      manifest: v.manifest,
      dataset,
      config: resolved.config,
      profile: resolved.profile,
      backend,
      stageArgs,
      targets,
      only: v.only,
      force: v.force,
      dryRun: v["dry-run"],
      from: v.from,
      until: v.until,
    };
    if (command === "status") {
      const t0 = performance.now();
      const r = await pipelineStatus(opts);
      console.log(`${dataset}: profile ${resolved.profile}${why}`);
      if (r.runnerPid !== undefined) {
        console.log(`(a runner, pid ${r.runnerPid}, is working on ${dataset} right now)`);
      }
      console.log(r.text);
      if (r.lastProfile && r.lastProfile !== resolved.profile) {
        console.log(
          `(the last run used --profile ${r.lastProfile}: give status the same --profile and --source to ` +
            `compare with it)`,
        );
      }
      console.log(`(checked in ${((performance.now() - t0) / 1000).toFixed(2)} s)`);
      return 0;
    }
    console.error(`${dataset}: profile ${resolved.profile}${why}${v["dry-run"] ? " (dry run)" : ""}`);
    const r = await runPipeline({ ...opts, handleSignals: true });
    return r.exitCode;
  } catch (e) {
    if (e instanceof ManifestError) {
      for (const p of e.problems) console.error(`error: ${p}`);
    } else console.error(`error: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
