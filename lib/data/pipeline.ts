/**
 * The training/evaluation input pipeline: an index of every record of a split, a seeded per-epoch permutation over
 * it, and batches decoded and augmented in Workers with bounded prefetch.
 *
 * Why this shape: exact resume after a crash needs the data order to be a pure function of (seed, epoch, position),
 * so the order is a permutation of the record index (not a shuffle buffer) and each example's augmentation RNG is
 * derived from (seed, epoch, position), independent of which worker ran it or when. Memory is bounded by the
 * prefetch depth, never by the dataset: records are read by (file, offset, length) when a batch is built.
 *
 * Epochs are concatenated when `repeat` is on (like tf.data's shuffle → repeat → batch), so a batch may span two
 * epochs and no example is dropped; `dropRemainder` only matters for the last batch of a non-repeating pipeline.
 *
 * @example
 * ```ts
 * import { InputPipeline, openSplit } from "./pipeline.ts";
 * const keys = { image: "image", label: "class" };
 * const index = await openSplit("data/pets37/tfrecords/train", keys);
 * const p = new InputPipeline({ index, keys, batchSize: 64, seed: 0, shuffle: true, repeat: true,
 *   dropRemainder: true, preprocess: "decode|inception_crop(128)|flip_lr|value_range(-1,1)" });
 * const batch = await p.next();  // { x, shape: [64,128,128,3], labels, ids }
 * const resumeFrom = p.state(); // JSON, goes into the checkpoint
 * await p.close();
 * ```
 * @module
 */

import { cacheDir } from "../cache_dir.ts";
import { hashSeed, Rng } from "../rng.ts";
import { type BatchJob, BatchMaker, type BatchResult } from "./_batch.ts";
import { decodeExample, type ExampleKeys } from "./example.ts";
import { parsePreprocess } from "./preprocess.ts";
import { readTFRecords, RECORD_OVERHEAD } from "./tfrecord.ts";

export type { ExampleKeys } from "./example.ts";

/** A ready batch. `x` is float32 NHWC; `ids` are the global record indices within the split. */
export interface Batch {
  x: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
  ids: Int32Array;
}

/** Where the pipeline is: `position` examples of `epoch` have been consumed (JSON, stored in checkpoints). */
export interface InputState {
  epoch: number;
  position: number;
}

/** The location and label of every record of a split, in shard order. */
export interface SplitIndex {
  dir: string;
  /** Shard paths, in natural sort order. */
  files: string[];
  /** Per record: index into `files`, header byte offset, payload length, label. */
  file: Int32Array;
  offset: Float64Array;
  length: Int32Array;
  labels: Int32Array;
  size: number;
}

const SHARD_RE = /\.(tfrec|tfrecord|tfrecords)(-\d+-of-\d+)?$|\.tfrecord-\d+-of-\d+$/;

/** Natural ordering of file names ("x-2-…" before "x-10-…"), independent of locale. */
export function naturalCompare(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [], tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i], y = tb[i];
    const nx = /^\d/.test(x), ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
      if (x.length !== y.length) return x.length - y.length;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return ta.length - tb.length;
}

/** The TFRecord shards of a split directory, in natural order. Throws if the directory is missing or has none. */
export async function listShards(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile && SHARD_RE.test(e.name)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`Split directory ${dir} does not exist.`);
    throw e;
  }
  if (names.length === 0) {
    throw new Error(`Split directory ${dir} holds no TFRecord files (*.tfrec, *.tfrecord).`);
  }
  return names.sort(naturalCompare).map((n) => `${dir.replace(/\/+$/, "")}/${n}`);
}

const memo = new Map<string, SplitIndex>();

async function _sha256Hex(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Indexes a split directory: (file, offset, length, label) of every record. The index is cached in memory and on
 * disk (under `$FUNMATCH_CACHE/index` or `~/.cache/funmatch/index`), keyed by the shard names, sizes and mtimes and
 * the label key, so reopening a split is instant. Set `cache: false` to rebuild.
 */
export async function openSplit(
  dir: string,
  keys: ExampleKeys,
  opts: { cache?: boolean } = {},
): Promise<SplitIndex> {
  const files = await listShards(dir);
  const stats = await Promise.all(files.map((f) => Deno.stat(f)));
  const sig = JSON.stringify({
    v: 1,
    dir: await Deno.realPath(dir),
    label: keys.label,
    image: keys.image,
    files: files.map((
      f,
      i,
    ) => [f.slice(f.lastIndexOf("/") + 1), stats[i].size, stats[i].mtime?.getTime() ?? 0]),
  });
  const useCache = opts.cache ?? true;
  if (useCache && memo.has(sig)) return memo.get(sig)!;
  const key = await _sha256Hex(sig);
  const cdir = useCache ? cacheDir("index") : null;
  if (cdir) {
    try {
      const j = JSON.parse(await Deno.readTextFile(`${cdir}/${key}.json`));
      if (j.sig === sig) {
        const idx: SplitIndex = {
          dir,
          files,
          file: Int32Array.from(j.file),
          offset: Float64Array.from(j.offset),
          length: Int32Array.from(j.length),
          labels: Int32Array.from(j.labels),
          size: j.file.length,
        };
        memo.set(sig, idx);
        return idx;
      }
    } catch { /* no or unreadable cache: rebuild */ }
  }
  const file: number[] = [], offset: number[] = [], length: number[] = [], labels: number[] = [];
  for (const [i, path] of files.entries()) {
    let end = 0;
    for await (const r of readTFRecords(path, { verify: false })) {
      file.push(i);
      offset.push(r.offset);
      length.push(r.data.length);
      labels.push(decodeExample(r.data, keys, `${path} @ ${r.offset}`).label);
      end = r.offset + r.data.length + RECORD_OVERHEAD;
    }
    if (end !== stats[i].size) {
      throw new Error(`${path}: trailing bytes after the last record at byte offset ${end}.`);
    }
  }
  const idx: SplitIndex = {
    dir,
    files,
    file: Int32Array.from(file),
    offset: Float64Array.from(offset),
    length: Int32Array.from(length),
    labels: Int32Array.from(labels),
    size: file.length,
  };
  memo.set(sig, idx);
  if (cdir) {
    try {
      await Deno.mkdir(cdir, { recursive: true });
      const tmp = `${cdir}/${key}.json.tmp-${Deno.pid}`;
      await Deno.writeTextFile(tmp, JSON.stringify({ sig, file, offset, length, labels }));
      await Deno.rename(tmp, `${cdir}/${key}.json`);
    } catch { /* a read-only cache dir only costs a rebuild next time */ }
  }
  return idx;
}

/** Options of `InputPipeline` (see the contract in the module doc). */
export interface InputPipelineOptions {
  index: SplitIndex;
  keys: ExampleKeys;
  batchSize: number;
  preprocess: string;
  seed: number | string;
  shuffle: boolean;
  repeat: boolean;
  dropRemainder: boolean;
  /** Batches built ahead of the consumer (default 2·workers, at least 2). */
  prefetch?: number;
  /** Decode/augment Workers (default 1; 0 = on the calling thread). */
  workers?: number;
  /** Use only the first N records of the index (smoke profiles). */
  take?: number;
  /** Resume point from a previous `state()`. */
  start?: InputState;
  /** Images decoded concurrently inside each worker (default 4; sharp decodes on libuv threads). */
  concurrency?: number;
  /** Decoded pixels each worker keeps for later epochs, in bytes (default 256 MiB; 0 = decode every time). */
  cacheBytes?: number;
}

interface Pending {
  id: number;
  promise: Promise<BatchResult>;
  ids: Int32Array;
  after: InputState;
}

/** Seeded, resumable, prefetching batch iterator over a `SplitIndex`. Call `close()` when done (it stops Workers). */
export class InputPipeline {
  readonly batchSize: number;
  /** Records used per epoch (`take` applied). */
  readonly epochSize: number;
  readonly height: number;
  readonly width: number;
  #o: InputPipelineOptions;
  #seed: number;
  #cursor: InputState; // next example to schedule
  #state: InputState; // after the last batch returned
  #perm = new Map<number, Int32Array>();
  #queue: Pending[] = [];
  #nextId = 0;
  #prefetch: number;
  #workers: Worker[] = [];
  #waiters = new Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void }>();
  #local: BatchMaker | null = null;
  #exhausted = false;
  #closed = false;
  #failure: Error | null = null;

  constructor(opts: InputPipelineOptions) {
    this.#o = opts;
    if (!Number.isInteger(opts.batchSize) || opts.batchSize <= 0) {
      throw new Error(`InputPipeline: batchSize must be a positive integer, got ${opts.batchSize}.`);
    }
    this.batchSize = opts.batchSize;
    const plan = parsePreprocess(opts.preprocess);
    this.height = plan.outHeight;
    this.width = plan.outWidth;
    this.epochSize = Math.min(opts.take ?? opts.index.size, opts.index.size);
    if (this.epochSize <= 0) {
      throw new Error(`InputPipeline: split ${opts.index.dir} has no records to read.`);
    }
    this.#seed = hashSeed("input", opts.seed);
    const start = opts.start ?? { epoch: 0, position: 0 };
    if (
      !Number.isInteger(start.epoch) || start.epoch < 0 || !Number.isInteger(start.position) ||
      start.position < 0 || start.position > this.epochSize
    ) {
      throw new Error(
        `InputPipeline: resume state ${
          JSON.stringify(start)
        } does not fit an epoch of ${this.epochSize} records.`,
      );
    }
    this.#cursor = this.#normalise({ ...start });
    this.#state = { ...this.#cursor };
    const workers = opts.workers ?? 1;
    this.#prefetch = Math.max(1, opts.prefetch ?? Math.max(2, 2 * workers));
    const conc = opts.concurrency ?? 4;
    const cacheBytes = opts.cacheBytes ?? 256 * 2 ** 20;
    if (workers <= 0) {
      this.#local = new BatchMaker(opts.index.files, opts.keys, opts.preprocess, conc, cacheBytes);
    } else {
      for (let i = 0; i < workers; i++) {
        const w = new Worker(new URL("./_pipeline_worker.ts", import.meta.url).href, { type: "module" });
        w.onmessage = (e: MessageEvent) => this.#onMessage(e.data);
        w.onerror = (e: ErrorEvent) => {
          e.preventDefault();
          this.#fail(new Error(`Input pipeline worker crashed: ${e.message}.`));
        };
        w.postMessage({
          type: "init",
          files: opts.index.files,
          keys: opts.keys,
          spec: opts.preprocess,
          concurrency: conc,
          cacheBytes,
        });
        this.#workers.push(w);
      }
    }
    this.#fill();
  }

  /** Steps per epoch for this batch size (rounded up; exact when batches cross epochs with `repeat`). */
  get stepsPerEpoch(): number {
    return this.#o.dropRemainder && !this.#o.repeat
      ? Math.floor(this.epochSize / this.batchSize)
      : Math.ceil(this.epochSize / this.batchSize);
  }

  #normalise(s: InputState): InputState {
    if (s.position >= this.epochSize && this.#o.repeat) return { epoch: s.epoch + 1, position: 0 };
    return s;
  }

  #permutation(epoch: number): Int32Array {
    let p = this.#perm.get(epoch);
    if (p) return p;
    p = new Int32Array(this.epochSize);
    for (let i = 0; i < p.length; i++) p[i] = i;
    if (this.#o.shuffle) {
      const r = new Rng(hashSeed(this.#seed, "permutation", epoch));
      for (let i = p.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        const t = p[i];
        p[i] = p[j];
        p[j] = t;
      }
    }
    this.#perm.set(epoch, p);
    for (const k of this.#perm.keys()) if (k < epoch - 1) this.#perm.delete(k);
    return p;
  }

  /** Schedules the next batch from the cursor; false when the (non-repeating) data is exhausted. */
  #schedule(): boolean {
    if (this.#exhausted) return false;
    const B = this.batchSize;
    const idx = this.#o.index;
    const ids: number[] = [], seeds: number[] = [];
    let c = this.#cursor;
    while (ids.length < B) {
      if (c.position >= this.epochSize) {
        if (!this.#o.repeat) break;
        c = { epoch: c.epoch + 1, position: 0 };
      }
      const perm = this.#permutation(c.epoch);
      ids.push(perm[c.position]);
      seeds.push(hashSeed(this.#seed, c.epoch, c.position));
      c = { epoch: c.epoch, position: c.position + 1 };
    }
    if (ids.length === 0 || (ids.length < B && this.#o.dropRemainder)) {
      this.#exhausted = true;
      return false;
    }
    c = this.#normalise(c);
    this.#cursor = c;
    const job: BatchJob = {
      id: this.#nextId++,
      file: Int32Array.from(ids, (i) => idx.file[i]),
      offset: Float64Array.from(ids, (i) => idx.offset[i]),
      length: Int32Array.from(ids, (i) => idx.length[i]),
      seed: Uint32Array.from(seeds),
    };
    let promise: Promise<BatchResult>;
    if (this.#local) {
      promise = this.#local.make(job);
    } else {
      promise = new Promise<BatchResult>((resolve, reject) => this.#waiters.set(job.id, { resolve, reject }));
      this.#workers[job.id % this.#workers.length].postMessage({ type: "job", job });
    }
    promise.catch(() => {}); // surfaced by next(); avoid an unhandled rejection while it waits in the queue
    this.#queue.push({ id: job.id, promise, ids: Int32Array.from(ids), after: { ...c } });
    return true;
  }

  #fill(): void {
    while (!this.#closed && this.#queue.length < this.#prefetch && this.#schedule()) { /* keep scheduling */ }
  }

  #onMessage(msg: any): void {
    if (msg.type === "batch") {
      const w = this.#waiters.get(msg.id);
      this.#waiters.delete(msg.id);
      w?.resolve({ id: msg.id, x: msg.x, labels: msg.labels });
    } else if (msg.type === "error") {
      if (msg.id < 0) return this.#fail(new Error(msg.message));
      const w = this.#waiters.get(msg.id);
      this.#waiters.delete(msg.id);
      w?.reject(new Error(msg.message));
    }
  }

  #fail(e: Error): void {
    this.#failure = e;
    for (const w of this.#waiters.values()) w.reject(e);
    this.#waiters.clear();
  }

  /** The next batch, or null at the end of a non-repeating pipeline. */
  async next(): Promise<Batch | null> {
    if (this.#closed) throw new Error("InputPipeline.next() called after close().");
    if (this.#failure) throw this.#failure;
    this.#fill();
    const p = this.#queue.shift();
    if (!p) return null;
    const r = await p.promise;
    this.#state = p.after;
    this.#fill();
    const n = p.ids.length;
    return { x: r.x, shape: [n, this.height, this.width, 3], labels: r.labels, ids: p.ids };
  }

  /** The state after the last batch returned; a pipeline started from it continues with exactly the next batch. */
  state(): InputState {
    return { ...this.#state };
  }

  /** Stops the workers and closes files. Pending batches are discarded. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    for (const w of this.#waiters.values()) w.reject(new Error("InputPipeline closed."));
    this.#waiters.clear();
    // let in-flight local batches settle so no file is read after close
    await Promise.allSettled(this.#queue.map((q) => q.promise));
    this.#queue = [];
    this.#local?.close();
  }
}
