/**
 * Stage 01: the dataset's TFRecords, from a URL, a `gs://` bucket or a local folder, verified shard by shard
 * (published size and checksums, then both CRCs of every record). Downloads land in `data/<ds>/downloads/`
 * (outside the out, so a broken download resumes) and the verified shards are linked into the out. A TFDS
 * dataset folder (it has `dataset_info.json`) is read as TFDS lays it out, and each split is the TFDS slice
 * its `tfds:` key names.
 */
import { runStage, stableJson, StageError, writeFileAtomic, writeOutDir } from "../lib/stage/mod.ts";
import { fetchDataset } from "../lib/data/download.ts";
import { listFlatShards, readSourceFile } from "../lib/data/source.ts";
import { parseDatasetInfo, planTfdsSplits, type SplitFile, writeTfdsSplits } from "../lib/data/tfds.ts";

await runStage("fetch", async (ctx) => {
  const { config, paths } = ctx;
  const specs = config.data.splits as Record<string, { pattern?: string; shards?: string[]; tfds?: string }>;
  const info = await readSourceFile(config.source, "dataset_info.json");
  let splits: Record<string, SplitFile[]>;
  if (info) {
    const missing = Object.keys(specs).filter((s) => !specs[s].tfds);
    if (missing.length > 0) {
      throw new StageError(
        `${info.where} makes ${config.source} a TFDS dataset folder, but data.splits.${missing[0]} in ` +
          `pipeline/datasets/${ctx.dataset}.yaml has no tfds: key naming its TFDS split (e.g. tfds: "train[:90%]").`,
      );
    }
    const tfds = parseDatasetInfo(info.text, info.where);
    const plan = planTfdsSplits(
      tfds,
      Object.fromEntries(Object.entries(specs).map(([k, v]) => [k, v.tfds!])),
      info.where,
    );
    const manifest = await fetchDataset({
      source: config.source,
      dest: paths.downloads,
      splits: { tfds: {} },
      shards: await listFlatShards(config.source, plan.shards, "tfds"),
      progress: true,
    });
    const records = new Map(manifest.splits.tfds.map((s) => [s.file.slice("tfds/".length), s.records]));
    await writeOutDir(paths.tfrecords, async (tmp) => {
      splits = await writeTfdsSplits(plan, `${paths.downloads}/tfds`, tmp, (s) => records.get(s), tfds);
      await writeFileAtomic(`${tmp}/manifest.json`, stableJson({ splits }, 2) + "\n");
    });
  } else {
    const manifest = await fetchDataset({
      source: config.source,
      dest: paths.downloads,
      splits: specs,
      progress: true,
    });
    await writeOutDir(paths.tfrecords, async (tmp) => {
      splits = {};
      for (const [split, shards] of Object.entries(manifest.splits)) {
        await Deno.mkdir(`${tmp}/${split}`, { recursive: true });
        splits[split] = [];
        for (const s of shards) {
          const name = s.file.split("/").pop()!;
          const from = `${paths.downloads}/${s.file}`;
          const to = `${tmp}/${split}/${name}`;
          await Deno.link(from, to).catch(() => Deno.copyFile(from, to));
          splits[split].push({
            file: `${split}/${name}`,
            bytes: s.bytes,
            sha256: s.sha256,
            records: s.records,
          });
        }
      }
      await writeFileAtomic(`${tmp}/manifest.json`, stableJson({ splits }, 2) + "\n");
    });
  }
  const counts = Object.entries(splits!).map(([k, v]) =>
    `${k} ${v.reduce((a, s) => a + s.records, 0)} records in ${v.length} shard(s)`
  );
  console.error(`fetch: ${counts.join(", ")}`);
});
