/**
 * Stage 01: the dataset's TFRecords, from a URL, a `gs://` bucket or a local folder, verified shard by shard
 * (published size and checksums, then both CRCs of every record). Downloads land in `data/<ds>/downloads/`
 * (outside the out, so a broken download resumes) and the verified shards are linked into the out.
 */
import { runStage, stableJson, writeFileAtomic, writeOutDir } from "../lib/stage/mod.ts";
import { fetchDataset } from "../lib/data/download.ts";

await runStage("fetch", async (ctx) => {
  const { config, paths } = ctx;
  const manifest = await fetchDataset({
    source: config.source,
    dest: paths.downloads,
    splits: config.data.splits,
    progress: true,
  });
  await writeOutDir(paths.tfrecords, async (tmp) => {
    const splits: Record<string, unknown[]> = {};
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
  const counts = Object.entries(manifest.splits).map(([k, v]) =>
    `${k} ${v.reduce((a, s) => a + s.records, 0)} records in ${v.length} shard(s)`
  );
  console.error(`fetch: ${counts.join(", ")}`);
});
