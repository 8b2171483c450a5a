/**
 * Writes a rendered report to disk: `reports/<ds>.md` and the folder `reports/<ds>/` of figures.
 *
 * Why this module exists: the report is a stage out, so it must appear whole or not at all. The figures
 * are written to a temporary folder that replaces `reports/<ds>/` in one rename (stale figures from an
 * earlier run go with it), then the markdown is written to `<ds>.md.tmp-<pid>` and renamed.
 *
 * @module
 */
import type { ReportOutput } from "./render.ts";

/** Writes `dir/<dataset>.md` and `dir/<dataset>/<file>` for every figure, atomically per path. */
export async function writeReport(dir: string, dataset: string, out: ReportOutput): Promise<void> {
  const figs = `${dir}/${dataset}`;
  const tmp = `${figs}.tmp-${Deno.pid}`;
  const old = `${figs}.old-${Deno.pid}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  for (const [rel, text] of out.files) {
    if (rel.includes("..") || rel.startsWith("/")) {
      throw new Error(`writeReport: figure path "${rel}" must stay inside ${figs}/.`);
    }
    await Deno.writeTextFile(`${tmp}/${rel}`, text);
  }
  const had = await Deno.stat(figs).then(() => true, () => false);
  if (had) await Deno.rename(figs, old);
  await Deno.rename(tmp, figs);
  if (had) await Deno.remove(old, { recursive: true });
  const md = `${dir}/${dataset}.md`;
  await Deno.writeTextFile(`${md}.tmp-${Deno.pid}`, out.markdown);
  await Deno.rename(`${md}.tmp-${Deno.pid}`, md);
}
