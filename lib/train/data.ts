/**
 * The bridge from a dataset config to input pipelines: which split folder, which feature keys (resolving
 * `label|class` alternatives against the real records), how many records a profile may use. Trainers and
 * evaluators open data only through here, so a profile's `take` applies everywhere alike.
 */
import { InputPipeline, type InputState, listShards, openSplit, type SplitIndex } from "../data/pipeline.ts";
import { readTFRecords } from "../data/tfrecord.ts";
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
  const files = await listShards(dir);
  if (files.length === 0) throw new Error(`split ${split} has no TFRecord shards in ${dir}`);
  let all: Record<string, unknown> | null = null;
  for await (const r of readTFRecords(files[0])) {
    all = decodeExampleAll(r.data, `${files[0]} at byte ${r.offset}`);
    break;
  }
  if (!all) throw new Error(`${files[0]} holds no record`);
  const label = candidates.find((k) => k in all);
  if (!label) {
    throw new Error(
      `${files[0]}: the first record has no label feature ${candidates.map((k) => `"${k}"`).join(" or ")} ` +
        `(it has: ${Object.keys(all).join(", ")}); set data.keys.label`,
    );
  }
  if (!(config.data.keys.image in all)) {
    throw new Error(
      `${files[0]}: the first record has no image feature "${config.data.keys.image}" ` +
        `(it has: ${Object.keys(all).join(", ")}); set data.keys.image`,
    );
  }
  const keys = { image: config.data.keys.image, label };
  const index = await openSplit(dir, keys);
  const take = config.data.take?.[split] ?? undefined;
  return {
    split,
    index,
    keys,
    count: take ? Math.min(take, index.size) : index.size,
    take: take ?? undefined,
  };
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
    cacheBytes: (config.data.cache_mb ?? 256) * 2 ** 20,
    take: data.take,
    start: o.start,
  });
}
