/**
 * The bridge from a dataset config to input pipelines: which split folder, which feature keys (resolving
 * `label|class` alternatives against the real records), how many records a profile may use. Trainers and
 * evaluators open data only through here, so a profile's `take` applies everywhere alike.
 */
import { InputPipeline, type InputState, openSplit, type SplitIndex } from "../data/pipeline.ts";
import { readRecordAt } from "../data/tfrecord.ts";
import { decodeExampleAll, type ExampleKeys } from "../data/example.ts";
import type { Config } from "../config/mod.ts";

export interface SplitData {
  split: string;
  index: SplitIndex;
  keys: ExampleKeys;
  /** Records used: the split's count, capped by the profile's `data.take.<split>`. */
  count: number;
  take?: number;
}

/** Open `split` of the fetched dataset under `tfrecordsDir`, with the config's keys and take. */
export async function openData(tfrecordsDir: string, config: Config, split: string): Promise<SplitData> {
  const dir = `${tfrecordsDir}/${split}`;
  const candidates = String(config.data.keys.label).split("|");
  const probeKeys = { image: config.data.keys.image, label: candidates[0] };
  const index = await openSplit(dir, probeKeys);
  const total = index.records.length;
  if (total === 0) throw new Error(`split ${split} has no records in ${dir}`);
  const first = index.records[0];
  const all = decodeExampleAll(await readRecordAt(first.file, first.offset), `${first.file} at byte ${first.offset}`);
  const label = candidates.find((k) => k in all);
  if (!label) {
    throw new Error(
      `${first.file}: the first record has no label feature ${candidates.map((k) => `"${k}"`).join(" or ")} ` +
        `(it has: ${Object.keys(all).join(", ")}); set data.keys.label`,
    );
  }
  if (!(config.data.keys.image in all)) {
    throw new Error(
      `${first.file}: the first record has no image feature "${config.data.keys.image}" ` +
        `(it has: ${Object.keys(all).join(", ")}); set data.keys.image`,
    );
  }
  const keys = { image: config.data.keys.image, label };
  const take = config.data.take?.[split] ?? undefined;
  const finalIndex = label === candidates[0] ? index : await openSplit(dir, keys);
  return { split, index: finalIndex, keys, count: take ? Math.min(take, total) : total, take: take ?? undefined };
}

export interface PipelineOptions {
  batchSize: number;
  preprocess: string;
  seed: number | string;
  train: boolean;
  start?: InputState;
}

/** An input pipeline over `data`: shuffled, repeated and full batches for training; in order otherwise. */
export function pipelineFor(data: SplitData, config: Config, o: PipelineOptions): InputPipeline {
  return new InputPipeline({
    index: data.index,
    keys: data.keys,
    batchSize: o.batchSize,
    preprocess: o.preprocess,
    seed: o.seed,
    shuffle: o.train,
    repeat: o.train,
    dropRemainder: o.train,
    prefetch: config.data.prefetch ?? 4,
    workers: config.data.workers ?? 1,
    take: data.take,
    start: o.start,
  });
}
