/**
 * TensorFlow Datasets' prepared TFRecords as a source: one folder per dataset version
 * (`gs://tfds-data/datasets/<name>/<version>/`) holding `dataset_info.json` and flat shards named
 * `<name>-<split>.tfrecord-00000-of-00016`, with the record count of every shard in `dataset_info.json`.
 *
 * Why it exists: the recipes train and validate on slices TFDS defines (`train[:90%]` / `train[90%:]` for
 * Food-101, CIFAR-10), and a slice is a range of records across shards, not a set of files. We plan which
 * shards a slice touches from the published shard lengths, download each shard once, and write each of our
 * splits as whole shards (hard links) plus, at a slice's edges, a new shard holding just the sliced records
 * (raw record bytes, re-framed; the CRCs of the originals were verified on download).
 *
 * Slices follow TFDS: `split`, `split[a:b]` with record indices (negative from the end) or percentages
 * (`90%`), a percentage boundary being round-half-even(pct · n / 100), as TFDS's default "closest" rounding.
 *
 * @example
 * ```ts
 * const info = parseDatasetInfo(await Deno.readTextFile("cifar10/3.0.2/dataset_info.json"), "dataset_info.json");
 * const plan = planTfdsSplits(info, { train: "train[:90%]", validation: "train[90%:]", test: "test" });
 * ```
 * @module
 */
import { hashFile } from "./download.ts";
import { readTFRecords, TFRecordWriter } from "./tfrecord.ts";

/** What `dataset_info.json` says about the shards. */
export interface TfdsInfo {
  name: string;
  /** `tfrecord` (TFDS's default file format). */
  fileFormat: string;
  splits: Map<string, { shardLengths: number[]; template: string }>;
}

/** A parsed slice: records [from, to) of TFDS split `split` (bounds resolved later against its size). */
export interface TfdsSlice {
  split: string;
  from?: { value: number; percent: boolean };
  to?: { value: number; percent: boolean };
}

/** One piece of an output split: records [from, to) of one TFDS shard (`whole` when it is the entire shard). */
export interface TfdsPart {
  shard: string;
  from: number;
  to: number;
  whole: boolean;
}

/** Which shards to download, and how each of our splits is made of them. */
export interface TfdsPlan {
  shards: string[];
  splits: Record<string, TfdsPart[]>;
}

const DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}";

/** Parses `dataset_info.json` text; `where` names it in errors. */
export function parseDatasetInfo(text: string, where: string): TfdsInfo {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch {
    throw new Error(`${where} is not valid JSON.`);
  }
  const name = j.name;
  if (typeof name !== "string" || name === "") throw new Error(`${where} has no dataset "name".`);
  const fileFormat = typeof j.fileFormat === "string" && j.fileFormat !== "" ? j.fileFormat : "tfrecord";
  if (fileFormat !== "tfrecord") {
    throw new Error(`${where}: file format "${fileFormat}" is not supported (expected tfrecord).`);
  }
  if (!Array.isArray(j.splits) || j.splits.length === 0) throw new Error(`${where} lists no "splits".`);
  const splits = new Map<string, { shardLengths: number[]; template: string }>();
  for (const [i, s] of (j.splits as Record<string, unknown>[]).entries()) {
    const lengths = Array.isArray(s.shardLengths) ? s.shardLengths.map(Number) : [];
    if (
      typeof s.name !== "string" || lengths.length === 0 ||
      lengths.some((n) => !Number.isSafeInteger(n) || n < 0)
    ) {
      throw new Error(`${where}: splits[${i}] needs a "name" and "shardLengths" (a list of record counts).`);
    }
    const template = typeof s.filepathTemplate === "string" && s.filepathTemplate !== ""
      ? s.filepathTemplate
      : DEFAULT_TEMPLATE;
    splits.set(s.name, { shardLengths: lengths, template });
  }
  return { name, fileFormat, splits };
}

/** The file name of shard `i` of `n` of a split. */
export function shardFileName(info: TfdsInfo, split: string, i: number, n: number): string {
  const t = info.splits.get(split)?.template ?? DEFAULT_TEMPLATE;
  const x = `${String(i).padStart(5, "0")}-of-${String(n).padStart(5, "0")}`;
  return t.replaceAll("{DATASET}", info.name).replaceAll("{SPLIT}", split)
    .replaceAll("{FILEFORMAT}", info.fileFormat).replaceAll("{SHARD_X_OF_Y}", x)
    .replaceAll("{SHARD_INDEX}", String(i).padStart(5, "0")).replaceAll(
      "{NUM_SHARDS}",
      String(n).padStart(5, "0"),
    );
}

/** Parses `train`, `train[:90%]`, `train[10:-5]`; `where` names the config key in errors. */
export function parseSlice(spec: string, where: string): TfdsSlice {
  const m = /^\s*([A-Za-z0-9_]+)\s*(?:\[\s*([^:\]]*)\s*:\s*([^\]]*)\s*\])?\s*$/.exec(spec);
  if (!m) {
    throw new Error(
      `${where}: "${spec}" is not a TFDS split (expected e.g. train, train[:90%] or train[100:200]).`,
    );
  }
  const bound = (b: string | undefined) => {
    if (b === undefined || b.trim() === "") return undefined;
    const p = /^(-?\d+)\s*%$/.exec(b.trim());
    const a = /^-?\d+$/.exec(b.trim());
    if (!p && !a) throw new Error(`${where}: bound "${b}" of "${spec}" must be an integer or a percentage.`);
    const value = Number(p ? p[1] : b.trim());
    if (p && Math.abs(value) > 100) {
      throw new Error(`${where}: ${b} in "${spec}" is not between -100 % and 100 %.`);
    }
    return { value, percent: !!p };
  };
  return { split: m[1], from: bound(m[2]), to: bound(m[3]) };
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  if (Math.abs(d - 0.5) < 1e-9) return f % 2 === 0 ? f : f + 1;
  return Math.round(x);
}

/** The record range [from, to) a slice selects from a split of `n` records. */
export function sliceRange(s: TfdsSlice, n: number): [number, number] {
  const abs = (b: { value: number; percent: boolean } | undefined, dflt: number) => {
    if (!b) return dflt;
    let v = b.percent ? roundHalfEven((b.value * n) / 100) : b.value;
    if (v < 0) v += n;
    return Math.min(Math.max(v, 0), n);
  };
  const from = abs(s.from, 0), to = abs(s.to, n);
  return [from, Math.max(from, to)];
}

/**
 * Plans our splits (`{ train: "train[:90%]", … }`) over the shards `info` publishes. `where` (the
 * dataset_info.json location) names the source in errors.
 */
export function planTfdsSplits(
  info: TfdsInfo,
  specs: Record<string, string>,
  where = "dataset_info.json",
): TfdsPlan {
  const shards = new Set<string>();
  const splits: Record<string, TfdsPart[]> = {};
  for (const [ours, spec] of Object.entries(specs)) {
    const s = parseSlice(spec, `data.splits.${ours}.tfds`);
    const split = info.splits.get(s.split);
    if (!split) {
      throw new Error(
        `data.splits.${ours}.tfds: ${where} has no split "${s.split}" (it has ${
          [...info.splits.keys()].join(", ")
        }).`,
      );
    }
    const total = split.shardLengths.reduce((a, b) => a + b, 0);
    const [from, to] = sliceRange(s, total);
    if (to <= from) throw new Error(`data.splits.${ours}.tfds: "${spec}" selects no records of ${total}.`);
    const parts: TfdsPart[] = [];
    let start = 0;
    for (const [i, len] of split.shardLengths.entries()) {
      const a = Math.max(from, start), b = Math.min(to, start + len);
      if (a < b) {
        const shard = shardFileName(info, s.split, i, split.shardLengths.length);
        shards.add(shard);
        parts.push({ shard, from: a - start, to: b - start, whole: a === start && b === start + len });
      }
      start += len;
    }
    splits[ours] = parts;
  }
  return { shards: [...shards].sort(), splits };
}

/** One shard of an output split, as `tfrecords/manifest.json` records it. */
export interface SplitFile {
  file: string;
  bytes: number;
  sha256: string;
  records: number;
}

/**
 * Writes each planned split into `outDir/<split>/` from the downloaded shards in `shardDir`: whole shards as
 * hard links (copies across file systems), partial ones as new shards named `<shard>.records-<a>-<b>.tfrec`.
 * `recordsOf` gives the verified record count of each downloaded shard, to catch a shard that does not hold
 * what `dataset_info.json` says.
 */
export async function writeTfdsSplits(
  plan: TfdsPlan,
  shardDir: string,
  outDir: string,
  recordsOf: (shard: string) => number | undefined,
  info: TfdsInfo,
): Promise<Record<string, SplitFile[]>> {
  const out: Record<string, SplitFile[]> = {};
  for (const [split, parts] of Object.entries(plan.splits)) {
    await Deno.mkdir(`${outDir}/${split}`, { recursive: true });
    out[split] = [];
    for (const p of parts) {
      const src = `${shardDir}/${p.shard}`;
      const expected = _publishedLength(info, p.shard);
      const got = recordsOf(p.shard);
      if (expected !== undefined && got !== undefined && got !== expected) {
        throw new Error(`${src} holds ${got} records but dataset_info.json says ${expected}.`);
      }
      let name: string;
      if (p.whole) {
        name = p.shard;
        await Deno.link(src, `${outDir}/${split}/${name}`).catch(() =>
          Deno.copyFile(src, `${outDir}/${split}/${name}`)
        );
      } else {
        name = `${p.shard}.records-${p.from}-${p.to}.tfrec`;
        const w = await TFRecordWriter.create(`${outDir}/${split}/${name}`);
        try {
          let i = 0;
          for await (const r of readTFRecords(src)) {
            if (i >= p.from && i < p.to) await w.write(r.data);
            if (++i >= p.to) break;
          }
        } catch (e) {
          await w.abort();
          throw e;
        }
        await w.close();
      }
      const h = await hashFile(`${outDir}/${split}/${name}`);
      out[split].push({ file: `${split}/${name}`, bytes: h.bytes, sha256: h.sha256, records: p.to - p.from });
    }
  }
  return out;
}

function _publishedLength(info: TfdsInfo, shard: string): number | undefined {
  for (const [split, s] of info.splits) {
    for (let i = 0; i < s.shardLengths.length; i++) {
      if (shardFileName(info, split, i, s.shardLengths.length) === shard) return s.shardLengths[i];
    }
  }
  return undefined;
}
