/**
 * Which source files each stage runs, from Deno's own module graph.
 *
 * Why: "edit `lib/train/distill.ts` and only distill and what follows rerun" needs the exact set of local
 * modules a stage script imports, transitively. Guessing from folders over- or under-approximates; Deno's
 * resolver (import map included) is the authority. One `deno info --json` call on a throwaway entry module
 * that imports every stage script gives the whole graph at once (~0.1 s); each script's set is then a walk
 * from its node. Modules loaded by URL at run time — `new Worker(new URL("./w.ts", import.meta.url))` or a
 * `.wasm` next to the module — are invisible to `deno info`, so local modules are also scanned for
 * `new URL("<literal>", import.meta.url)` and those files join the set (and, when they are modules, their
 * own imports too). npm packages count as code by name@version, so a version bump in deno.json reruns the
 * stages that use the package.
 */

import { fileURLToPath as fromFileUrl, pathToFileURL as toFileUrl } from "node:url";

/** A stage's code: repo-relative local files, and `npm:name@version` entries. */
export interface StageCode {
  files: string[];
  npm: string[];
}

interface InfoDep {
  specifier: string;
  code?: { specifier: string };
}
interface InfoModule {
  specifier: string;
  kind?: string;
  local?: string;
  error?: string;
  dependencies?: InfoDep[];
  npmPackage?: string;
}
interface InfoJson {
  modules: InfoModule[];
  redirects?: Record<string, string>;
}

const URL_LITERAL = /new\s+URL\(\s*(["'`])([^"'`$]+)\1\s*,\s*import\.meta\.url\s*\)/g;
const MODULE_EXT = /\.(ts|tsx|mts|js|mjs|jsx)$/;

async function denoInfo(root: string, entries: string[]): Promise<InfoJson> {
  const tmp = await Deno.makeTempFile({ prefix: "funmatch-graph-", suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      tmp,
      entries.map((e) => `import ${JSON.stringify(toFileUrl(e).href)};\n`).join(""),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", tmp],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
      throw new Error(`\`deno info --json\` failed on the stage scripts: ${err}`);
    }
    return JSON.parse(new TextDecoder().decode(out.stdout)) as InfoJson;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

function rel(root: string, abs: string): string {
  return abs.startsWith(root + "/") ? abs.slice(root.length + 1) : abs;
}

/**
 * Local code files and npm packages of each script (paths relative to `root`), via one `deno info --json`
 * call (plus one per round of newly found `new URL(..., import.meta.url)` modules). Throws one sentence
 * naming the importing file when a local import cannot be resolved.
 *
 * @example
 * ```ts
 * const code = await stageCode("/repo", ["pipeline/04_distill.ts"]);
 * console.log(code.get("pipeline/04_distill.ts")!.files); // ["lib/train/distill.ts", …, "pipeline/04_distill.ts"]
 * ```
 */
export async function stageCode(root: string, scripts: string[]): Promise<Map<string, StageCode>> {
  const modules = new Map<string, InfoModule>();
  const redirects: Record<string, string> = {};
  const extraEdges = new Map<string, string[]>(); // file url → URL-literal targets (file urls)
  const scanned = new Set<string>();
  let pending = scripts.map((s) => `${root}/${s}`);
  while (pending.length > 0) {
    const info = await denoInfo(root, pending);
    Object.assign(redirects, info.redirects ?? {});
    for (const m of info.modules) if (!modules.has(m.specifier) || m.local) modules.set(m.specifier, m);
    pending = [];
    for (const m of modules.values()) {
      if (!m.local || scanned.has(m.specifier) || !m.specifier.startsWith("file://")) continue;
      scanned.add(m.specifier);
      if (!m.local.startsWith(root + "/")) continue;
      let text: string;
      try {
        text = await Deno.readTextFile(m.local);
      } catch {
        continue;
      }
      const targets: string[] = [];
      for (const hit of text.matchAll(URL_LITERAL)) {
        const target = new URL(hit[2], m.specifier);
        if (target.protocol !== "file:") continue;
        const path = fromFileUrl(target);
        try {
          if (!(await Deno.stat(path)).isFile) continue;
        } catch {
          continue; // computed at run time or not there: the stage will fail on its own
        }
        targets.push(target.href);
        if (MODULE_EXT.test(path) && !modules.has(target.href)) pending.push(path);
      }
      if (targets.length > 0) extraEdges.set(m.specifier, targets);
    }
    pending = [...new Set(pending)];
  }

  const result = new Map<string, StageCode>();
  for (const script of scripts) {
    const files = new Set<string>();
    const npm = new Set<string>();
    const start = toFileUrl(`${root}/${script}`).href;
    const stack: [string, string][] = [[start, script]];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const [spec0, from] = stack.pop()!;
      const spec = redirects[spec0] ?? spec0;
      if (seen.has(spec)) continue;
      seen.add(spec);
      if (spec.startsWith("npm:")) {
        const name = spec0.startsWith("npm:/") ? spec0.slice(5) : spec0.slice(4);
        npm.add(`npm:${name.replace(/^\//, "")}`);
        continue;
      }
      if (!spec.startsWith("file://")) continue; // node:, jsr:, https: — not ours to hash
      const path = fromFileUrl(spec);
      if (!path.startsWith(root + "/")) continue;
      const m = modules.get(spec);
      if (m?.error) {
        throw new Error(`${from} imports ${rel(root, path)}, which cannot be loaded: ${m.error}`);
      }
      files.add(rel(root, path));
      const here = rel(root, path);
      for (const d of m?.dependencies ?? []) if (d.code?.specifier) stack.push([d.code.specifier, here]);
      for (const t of extraEdges.get(spec) ?? []) stack.push([t, here]);
    }
    result.set(script, { files: [...files].sort(), npm: [...npm].sort() });
  }
  return result;
}
