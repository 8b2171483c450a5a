/** Test helpers: a copy of the repository's code (not its data) with node_modules linked, for edits and a private data/; where the shared datasets are. */
import assert from "assert";

export const repo = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

export async function copyRepo(prefix = "funmatch-e2e-"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  for (const p of ["deno.json", "deno.lock"]) await Deno.copyFile(`${repo}/${p}`, `${dir}/${p}`);
  for (const p of ["lib", "pipeline"]) {
    const r = await new Deno.Command("cp", { args: ["-r", `${repo}/${p}`, `${dir}/${p}`] }).output();
    assert.equal(r.code, 0);
  }
  await Deno.symlink(`${repo}/node_modules`, `${dir}/node_modules`);
  return dir;
}

/** The shared real datasets beside the checkout (`../shared/datasets`, as CI has them); override with FUNMATCH_SHARED_DATASETS. */
export const sharedDatasets = Deno.env.get("FUNMATCH_SHARED_DATASETS") ?? `${repo}/../shared/datasets`;
