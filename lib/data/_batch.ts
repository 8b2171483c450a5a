/**
 * Builds one ready batch from a list of record locations: read (CRC-checked) → tf.train.Example → decode →
 * preprocess → float32 HWC written straight into the batch buffer.
 *
 * Private to the input pipeline; it runs either inside a Worker (`_pipeline_worker.ts`) or on the main thread
 * (`workers: 0`), with identical results because every random draw comes from the per-example seed in the job.
 *
 * Decoded images are kept, up to `cacheBytes`, so a record is read and decoded once however many epochs see
 * it: at 32 px decoding is two thirds of the work, and a long schedule reads each image hundreds of times.
 * The augmentations never write into their input, so a cached image serves every later epoch unchanged; the
 * budget bounds the memory whatever the dataset's size (past it, images are decoded each time as before).
 * @module
 */

import { Rng } from "../rng.ts";
import { decodeExample, type ExampleKeys } from "./example.ts";
import { decodeImage, type RgbImage } from "./decode.ts";
import { parsePreprocess, type PreprocessPlan, runImageOps, writeFloat } from "./preprocess.ts";
import { readRecordFromSync } from "./tfrecord.ts";

/** One batch's worth of work: parallel arrays, one entry per example. */
export interface BatchJob {
  id: number;
  file: Int32Array;
  offset: Float64Array;
  length: Int32Array;
  seed: Uint32Array;
}

/** The finished batch (labels read from the records). */
export interface BatchResult {
  id: number;
  x: Float32Array;
  labels: Int32Array;
}

const MAX_OPEN = 64;

/** Turns jobs into batches; keeps a small LRU of open shard files. */
export class BatchMaker {
  readonly plan: PreprocessPlan;
  #open = new Map<number, Deno.FsFile>();

  #cache = new Map<number, { label: number; img: RgbImage }>();
  #cacheLeft: number;

  constructor(
    readonly files: string[],
    readonly keys: ExampleKeys,
    spec: string,
    readonly concurrency = 4,
    cacheBytes = 0,
  ) {
    this.plan = parsePreprocess(spec);
    this.#cacheLeft = cacheBytes;
  }

  /** Bytes of decoded pixels held (tests and the benchmark read it). */
  get cachedBytes(): number {
    let n = 0;
    for (const v of this.#cache.values()) n += v.img.data.byteLength;
    return n;
  }

  #file(i: number): Deno.FsFile {
    let f = this.#open.get(i);
    if (f) {
      this.#open.delete(i);
      this.#open.set(i, f); // most recently used last
      return f;
    }
    if (this.#open.size >= MAX_OPEN) {
      const [k, old] = this.#open.entries().next().value as [number, Deno.FsFile];
      old.close();
      this.#open.delete(k);
    }
    f = Deno.openSync(this.files[i], { read: true });
    this.#open.set(i, f);
    return f;
  }

  /** Builds the batch for `job`. */
  async make(job: BatchJob): Promise<BatchResult> {
    const n = job.file.length;
    const per = this.plan.outHeight * this.plan.outWidth * 3;
    const x = new Float32Array(n * per);
    const labels = new Int32Array(n);
    let next = 0;
    const one = async (k: number) => {
      const path = this.files[job.file[k]];
      const where = `${path} @ ${job.offset[k]}`;
      // offsets stay far below 2^40, so (file, offset) packs into one exact double
      const key = job.file[k] * 2 ** 40 + job.offset[k];
      let hit = this.#cache.get(key);
      if (!hit) {
        const rec = readRecordFromSync(this.#file(job.file[k]), path, job.offset[k], job.length[k]);
        const ex = decodeExample(rec, this.keys, where);
        hit = { label: ex.label, img: await decodeImage(ex.image, where) };
        if (hit.img.data.byteLength <= this.#cacheLeft) {
          this.#cache.set(key, hit);
          this.#cacheLeft -= hit.img.data.byteLength;
        }
      }
      labels[k] = hit.label;
      const out = runImageOps(this.plan, hit.img, new Rng(job.seed[k]), where);
      writeFloat(this.plan, out, x, k * per);
    };
    const lane = async () => {
      while (next < n) await one(next++);
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, n) }, lane));
    return { id: job.id, x, labels };
  }

  /** Closes the open shard files. */
  close(): void {
    for (const f of this.#open.values()) f.close();
    this.#open.clear();
  }
}
