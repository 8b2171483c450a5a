/**
 * `deno task import <folder-of-class-folders> <name> [options]`: the command line over `import.ts`, so a user can
 * run the pipeline on their own photos. Flag parsing and printing live here; everything a test needs is in
 * `import.ts`. Exit codes: 0 imported, 1 refused or failed (one sentence on stderr), 2 bad usage.
 * @module
 */

import { parseArgs } from "parse-args";
import { ImportError, importFolder } from "./import.ts";

const USAGE = `usage: deno task import <folder> <name> [options]
  <folder>          a folder with one folder per class (class names sorted give the label ids), each holding
                    that class's JPEG/PNG photos at any depth
  <name>            the dataset name: writes data/<name>/source/ and pipeline/datasets/<name>.yaml
options:
  --val F           fraction of each class for validation (default 0.1)
  --test F          fraction of each class for test (default 0.1)
  --seed N          seed of the split and the record order (default 0)
  --shard-size N    records per TFRecord shard (default 128)
  --image-size N    re-encode every photo as an N×N JPEG (default: keep the original bytes)
  --force           replace an existing pipeline/datasets/<name>.yaml
  --root DIR        repository root (default: the one holding this file)`;

function number(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new ImportError(`${flag} expects a number, got "${v}".`);
  return n;
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        val: { type: "string" },
        test: { type: "string" },
        seed: { type: "string" },
        "shard-size": { type: "string" },
        "image-size": { type: "string" },
        force: { type: "boolean" },
        root: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`import: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 2) {
    console.error(
      `import: expected a folder and a dataset name, got ${positionals.length} argument(s).\n${USAGE}`,
    );
    return 2;
  }
  const [folder, name] = positionals;
  try {
    const r = await importFolder({
      folder,
      name,
      val: number("--val", v.val),
      test: number("--test", v.test),
      seed: number("--seed", v.seed),
      shardSize: number("--shard-size", v["shard-size"]),
      imageSize: number("--image-size", v["image-size"]),
      force: v.force ?? false,
      root: v.root,
      progress: true,
    });
    const s = r.splits;
    const total = s.train.records + s.validation.records + s.test.records;
    const shards = s.train.shards.length + s.validation.shards.length + s.test.shards.length;
    console.log(
      `imported ${r.name}: ${total} images of ${r.classes.length} classes → train ${s.train.records} / ` +
        `validation ${s.validation.records} / test ${s.test.records} in ${shards} shard(s)\n` +
        `  shards  ${r.source}\n  config  ${r.yaml} (profiles at ${r.resolution.smoke} px smoke, ` +
        `${r.resolution.cpu} px cpu, ${r.resolution.paper} px paper)`,
    );
    for (const n of r.notes) console.log(`note: ${n}`);
    console.log(`next: deno task pipeline ${r.name} --profile smoke`);
    return 0;
  } catch (e) {
    // ImportError, ConfigError and the data modules' errors are all one sentence naming what is at fault
    console.error(`import: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
