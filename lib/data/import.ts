/**
 * Turns a user's own photos (`<folder>/<class>/…/*.jpg|png`) into a dataset the pipeline can run on: TFRecord shards
 * in the original implementation's layout (`{split}/{split}_<name>-<shard>-<count>.tfrec`, Examples with `image`
 * bytes and `class` int64) under `data/<name>/source/`, and a dataset config `pipeline/datasets/<name>.yaml` whose
 * `source:` points there, so `deno task pipeline <name>` fetches, trains and reports on it like any other dataset.
 *
 * Why it is shaped like this:
 * - The split is stratified per class and drawn from a seeded generator per class name, so the same folder and seed
 *   give byte-identical shards, and adding a class leaves the other classes' splits unchanged.
 * - Records are shuffled across classes inside each split, so `data.take` (the smoke profile) sees every class.
 * - Every image is decoded (or re-encoded) before it is written: a broken photo fails the import naming the file,
 *   not a training run hours later. Everything is written to temporary names and renamed into place at the end.
 * - The config's profiles are sized from the images (the `--image-size`, else the median short side) and the split
 *   sizes, following `pets37.yaml` (photos) or `cifar10.yaml` (tiny images), and are checked with the config
 *   resolver before the file is written.
 * - `source/manifest.json` publishes each shard's sha256, which the fetch stage verifies, so a re-import with
 *   `--force` can never be mistaken for the previous import's shards.
 *
 * @example
 * ```ts
 * import { importFolder } from "./import.ts";
 * const r = await importFolder({ folder: "photos", name: "myphotos", imageSize: 160 });
 * console.log(r.classes, r.splits.train.records, r.yaml);
 * ```
 * @module
 */

import { resolve as resolvePath } from "node:path";
import sharp from "sharp";
import YAML from "yaml";
import { resolveConfig, resolveText } from "../config/mod.ts";
import { Progress } from "../progress.ts";
import { Rng } from "../rng.ts";
import { decodeImage } from "./decode.ts";
import { encodeExample } from "./example.ts";
import { hashFile } from "./download.ts";
import { parsePreprocess } from "./preprocess.ts";
import { TFRecordWriter } from "./tfrecord.ts";

/** The splits an import writes, in this order. */
export const SPLITS = ["train", "validation", "test"] as const;
/** One of {@link SPLITS}. */
export type SplitName = typeof SPLITS[number];

/** The profiles every imported config defines (the base config is the `paper` recipe, like pets37.yaml). */
export const PROFILES = ["smoke", "cpu", "cpu-ablations", "paper"] as const;

/** An import refused or failed: one sentence naming the folder, file or option at fault. */
export class ImportError extends Error {
  override name = "ImportError";
}

/** Options of {@link importFolder}. Fractions are of each class's images. */
export interface ImportOptions {
  /** A folder holding one folder per class. */
  folder: string;
  /** Dataset name: names `pipeline/datasets/<name>.yaml`, `data/<name>/` and the shards. */
  name: string;
  /** Fraction for validation (default 0.1). */
  val?: number;
  /** Fraction for test (default 0.1). */
  test?: number;
  /** Seed of the split and the record order (default 0). */
  seed?: number;
  /** Records per shard (default 128, like the original shards). */
  shardSize?: number;
  /** Re-encode every image as an N×N JPEG (quality 95, aspect squashed like the original shards). */
  imageSize?: number;
  /** Replace an existing `pipeline/datasets/<name>.yaml`. */
  force?: boolean;
  /** Repository root (default: the one holding this file). */
  root?: string;
  /** Show a progress bar / progress lines on stderr. */
  progress?: boolean;
  /** Images decoded or encoded at once (default 4). */
  concurrency?: number;
}

/** One image found under a class folder. */
export interface ImageEntry {
  /** Path as found (the folder joined with `rel`). */
  path: string;
  /** Path relative to the import folder, `/`-separated (`cat/2019/a.jpg`). */
  rel: string;
  label: number;
}

/** What a scan of the import folder found. */
export interface FolderScan {
  folder: string;
  /** Class names in label order (sorted). */
  classes: string[];
  /** Per class (label order), its images sorted by relative path. */
  images: ImageEntry[][];
  /** Files skipped because their extension is not .jpg/.jpeg/.png. */
  skipped: string[];
}

/** One written split. */
export interface SplitSummary {
  records: number;
  /** Shard paths relative to the source folder (`train/train_x-0-128.tfrec`). */
  shards: string[];
  /** Records per class, in label order. */
  perClass: number[];
}

/** What {@link importFolder} wrote. */
export interface ImportResult {
  name: string;
  classes: string[];
  /** Absolute path of the written source folder (`data/<name>/source`). */
  source: string;
  /** Absolute path of the written config (`pipeline/datasets/<name>.yaml`). */
  yaml: string;
  splits: Record<SplitName, SplitSummary>;
  /** The image size the profiles were sized from (the `--image-size`, else the median short side). */
  referenceSize: number;
  /** Training resolution of each profile. */
  resolution: { paper: number; cpu: number; smoke: number };
  /** Files skipped (not .jpg/.jpeg/.png), relative to the folder. */
  skipped: string[];
  /** Short notes worth telling the user (large originals, tiny classes). */
  notes: string[];
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const defaultRoot = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

function _join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** Code-unit order: locale-independent, so label ids do not depend on the machine. */
function _cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function _isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Lists the class folders of `folder` (sorted; hidden ones skipped) and, in each, every .jpg/.jpeg/.png file at any
 * depth. Refuses a missing folder, fewer than 2 class folders and a class without images.
 */
export async function scanFolder(folder: string): Promise<FolderScan> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(folder);
  } catch {
    throw new ImportError(`The folder ${folder} does not exist.`);
  }
  if (!st.isDirectory) {
    throw new ImportError(`${folder} is not a folder (expected a folder of class folders).`);
  }
  const classes: string[] = [];
  for await (const e of Deno.readDir(folder)) {
    if (e.name.startsWith(".")) continue;
    if (e.isDirectory || (e.isSymlink && await _isDir(_join(folder, e.name)))) classes.push(e.name);
  }
  classes.sort(_cmp);
  if (classes.length < 2) {
    throw new ImportError(
      `The folder ${folder} has ${classes.length} class folder(s)${
        classes.length ? ` (${classes[0]})` : ""
      }; an import needs at least 2, one folder per class holding that class's images.`,
    );
  }
  const images: ImageEntry[][] = [];
  const skipped: string[] = [];
  for (const [label, cls] of classes.entries()) {
    const found: ImageEntry[] = [];
    const other: string[] = [];
    const seen = new Set<string>();
    const walk = async (dir: string, rel: string): Promise<void> => {
      const real = await Deno.realPath(dir);
      if (seen.has(real)) return; // a symlink loop
      seen.add(real);
      const entries: Deno.DirEntry[] = [];
      for await (const e of Deno.readDir(dir)) if (!e.name.startsWith(".")) entries.push(e);
      entries.sort((a, b) => _cmp(a.name, b.name));
      for (const e of entries) {
        const path = _join(dir, e.name), r = `${rel}/${e.name}`;
        let isDir = e.isDirectory, isFile = e.isFile;
        if (e.isSymlink) {
          try {
            const t = await Deno.stat(path);
            isDir = t.isDirectory;
            isFile = t.isFile;
          } catch { /* a dangling link: neither */ }
        }
        if (isDir) await walk(path, r);
        else if (isFile && IMAGE_EXT.test(e.name)) found.push({ path, rel: r, label });
        else if (isFile) other.push(r);
      }
    };
    await walk(_join(folder, cls), cls);
    if (found.length === 0) {
      throw new ImportError(
        `The class folder ${_join(folder, cls)} holds no JPEG or PNG images (*.jpg, *.jpeg, *.png)${
          other.length ? `; it has ${other.length} other file(s), e.g. ${other[0]}` : ""
        }.`,
      );
    }
    found.sort((a, b) => _cmp(a.rel, b.rel));
    images.push(found);
    skipped.push(...other);
  }
  return { folder, classes, images, skipped };
}

/**
 * How many of each class's images go to validation and test: `round(N·val)` and `round(N·test)` images overall (at
 * least 1 each), shared out over the classes in proportion to their size (largest remainder; ties to the lower
 * label), never taking a class's last training image. Throws when there are too few images.
 */
export function allocateSplits(
  counts: number[],
  val: number,
  test: number,
): { validation: number[]; test: number[] } {
  const n = counts.reduce((a, b) => a + b, 0);
  const room = counts.map((c) => c - 1); // every class keeps one training image
  const share = (frac: number, what: string): number[] => {
    const want = Math.max(1, Math.round(n * frac));
    const free = room.reduce((a, b) => a + b, 0);
    if (want > free) {
      throw new ImportError(
        `${n} images in ${counts.length} classes are too few for ${want} ${what} image(s) while every class keeps ` +
          `a training image; add images or lower --val/--test.`,
      );
    }
    const quota = counts.map((c) => c * frac);
    const got = quota.map((q, i) => Math.min(Math.floor(q), room[i]));
    let left = want - got.reduce((a, b) => a + b, 0);
    while (left > 0) {
      const order = counts.map((_, i) => i).filter((i) => got[i] < room[i])
        .sort((a, b) => (quota[b] - got[b]) - (quota[a] - got[a]) || a - b);
      for (const i of order) {
        if (left === 0) break;
        got[i]++;
        left--;
      }
    }
    for (let i = 0; i < room.length; i++) room[i] -= got[i];
    return got;
  };
  const validation = share(val, "validation");
  const testCounts = share(test, "test");
  return { validation, test: testCounts };
}

function _shuffle<T>(items: T[], rng: Rng): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * The records of each split, in the order they are written: per class a seeded permutation of its images
 * (`Rng(seed).fork("class/<name>")`) gives validation first, then test, then train; each split is then shuffled
 * across classes (`Rng(seed).fork("order/<split>")`).
 */
export function planSplits(
  scan: FolderScan,
  val: number,
  test: number,
  seed: number,
): Record<SplitName, ImageEntry[]> {
  const alloc = allocateSplits(scan.images.map((l) => l.length), val, test);
  const root = new Rng(seed);
  const out: Record<SplitName, ImageEntry[]> = { train: [], validation: [], test: [] };
  for (const [label, list] of scan.images.entries()) {
    const perm = _shuffle(list, root.fork(`class/${scan.classes[label]}`));
    const v = alloc.validation[label], t = alloc.test[label];
    out.validation.push(...perm.slice(0, v));
    out.test.push(...perm.slice(v, v + t));
    out.train.push(...perm.slice(v + t));
  }
  for (const s of SPLITS) out[s] = _shuffle(out[s], root.fork(`order/${s}`));
  return out;
}

function _magic(bytes: Uint8Array): "jpeg" | "png" | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "png";
  }
  return null;
}

/** Reads and checks one image; returns the bytes to store and the stored image's size. */
async function _loadImage(
  path: string,
  imageSize: number | undefined,
): Promise<{ bytes: Uint8Array; height: number; width: number }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ImportError(`The image ${path} could not be read (${(e as Error).message}).`);
  }
  if (bytes.length === 0) throw new ImportError(`The image ${path} is empty (0 bytes).`);
  if (!_magic(bytes)) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new ImportError(`The image ${path} is neither a JPEG nor a PNG (it starts with bytes ${head}).`);
  }
  if (imageSize) {
    try {
      // .rotate() applies the EXIF orientation, so the stored pixels look the way the photo is shown
      const out = await sharp(bytes, { failOn: "error" })
        .rotate()
        .resize(imageSize, imageSize, { fit: "fill" })
        .toColourspace("srgb")
        .removeAlpha()
        .jpeg({ quality: 95 })
        .toBuffer();
      return {
        bytes: new Uint8Array(out.buffer, out.byteOffset, out.length),
        height: imageSize,
        width: imageSize,
      };
    } catch (e) {
      throw new ImportError(`The image ${path} could not be decoded (${(e as Error).message}).`);
    }
  }
  let img;
  try {
    // sharp for every size: the TypeScript decoder used for small JPEGs in training tolerates truncated files
    img = await decodeImage(bytes, path, { sharpOnly: true });
  } catch (e) {
    const msg = (e as Error).message;
    throw new ImportError(msg.startsWith(path) ? msg : `The image ${path} could not be decoded (${msg}).`);
  }
  return { bytes, height: img.height, width: img.width };
}

function _checkOptions(
  o: ImportOptions,
): Required<Pick<ImportOptions, "val" | "test" | "seed" | "shardSize">> {
  const val = o.val ?? 0.1, test = o.test ?? 0.1, seed = o.seed ?? 0, shardSize = o.shardSize ?? 128;
  if (!NAME_RE.test(o.name)) {
    throw new ImportError(
      `The dataset name "${o.name}" must be letters, digits, "_" or "-", starting with a letter or digit ` +
        `(it names pipeline/datasets/<name>.yaml and data/<name>/).`,
    );
  }
  for (const [flag, v] of [["--val", val], ["--test", test]] as const) {
    if (!(Number.isFinite(v) && v > 0 && v < 1)) {
      throw new ImportError(`${flag} must be a fraction between 0 and 1 (exclusive), got ${v}.`);
    }
  }
  if (val + test >= 1) throw new ImportError(`--val ${val} and --test ${test} leave nothing for training.`);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new ImportError(`--seed must be a non-negative integer, got ${seed}.`);
  }
  if (!Number.isSafeInteger(shardSize) || shardSize < 1) {
    throw new ImportError(`--shard-size must be a positive integer, got ${shardSize}.`);
  }
  if (
    o.imageSize !== undefined &&
    !(Number.isSafeInteger(o.imageSize) && o.imageSize >= 8 && o.imageSize <= 4096)
  ) {
    throw new ImportError(`--image-size must be an integer from 8 to 4096 (pixels), got ${o.imageSize}.`);
  }
  return { val, test, seed, shardSize };
}

/**
 * Imports `opts.folder` as dataset `opts.name`: writes `data/<name>/source/{train,validation,test}/*.tfrec`,
 * `data/<name>/source/manifest.json` and `classes.txt`, and `pipeline/datasets/<name>.yaml`, all atomically, and
 * removes `data/<name>/tfrecords` (the fetch stage's out) so the pipeline fetches the new shards. An existing config
 * is replaced only with `force`. Throws {@link ImportError} with one sentence on every refusal.
 */
export async function importFolder(opts: ImportOptions): Promise<ImportResult> {
  const { val, test, seed, shardSize } = _checkOptions(opts);
  const root = (opts.root ?? defaultRoot).replace(/\/+$/, "");
  const name = opts.name;
  const yamlPath = `${root}/pipeline/datasets/${name}.yaml`;
  if (!opts.force) {
    try {
      await Deno.lstat(yamlPath);
      throw new ImportError(
        `The dataset config ${yamlPath} already exists; choose another name or pass --force to replace it.`,
      );
    } catch (e) {
      if (e instanceof ImportError) throw e;
    }
  }
  const scan = await scanFolder(resolvePath(opts.folder));
  const plan = planSplits(scan, val, test, seed);
  const total = SPLITS.reduce((a, s) => a + plan[s].length, 0);

  const dataDir = `${root}/data/${name}`;
  const source = `${dataDir}/source`;
  const tmp = `${source}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  const progress = opts.progress ? new Progress({ label: `import ${name}`, total, unit: "img" }) : null;
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const shortSides: number[] = [];
  const splits = {} as Record<SplitName, SplitSummary>;
  const manifest: Record<string, { file: string; bytes: number; sha256: string; records: number }[]> = {};
  try {
    for (const split of SPLITS) {
      const list = plan[split];
      await Deno.mkdir(`${tmp}/${split}`);
      const summary: SplitSummary = { records: list.length, shards: [], perClass: scan.classes.map(() => 0) };
      manifest[split] = [];
      for (let start = 0, shard = 0; start < list.length; start += shardSize, shard++) {
        const part = list.slice(start, start + shardSize);
        const rel = `${split}/${split}_${name}-${shard}-${part.length}.tfrec`;
        const w = await TFRecordWriter.create(`${tmp}/${rel}`);
        try {
          for (let i = 0; i < part.length; i += concurrency) {
            const batch = part.slice(i, i + concurrency);
            const loaded = await Promise.all(batch.map((e) => _loadImage(e.path, opts.imageSize)));
            for (const [k, img] of loaded.entries()) {
              await w.write(encodeExample({ image: img.bytes, class: [batch[k].label] }));
              summary.perClass[batch[k].label]++;
              shortSides.push(Math.min(img.height, img.width));
            }
            progress?.tick(batch.length, { split });
          }
        } catch (e) {
          await w.abort();
          throw e;
        }
        await w.close();
        summary.shards.push(rel);
        const bytes = (await Deno.stat(`${tmp}/${rel}`)).size;
        manifest[split].push({
          file: rel,
          bytes,
          sha256: (await hashFile(`${tmp}/${rel}`)).sha256,
          records: part.length,
        });
      }
      splits[split] = summary;
    }
    progress?.done();

    const sorted = shortSides.slice().sort((a, b) => a - b);
    const referenceSize = opts.imageSize ?? sorted[Math.floor((sorted.length - 1) / 2)];
    const info: DatasetInfo = {
      name,
      folder: scan.folder,
      source,
      classes: scan.classes,
      counts: {
        train: splits.train.records,
        validation: splits.validation.records,
        test: splits.test.records,
      },
      referenceSize,
      imageSize: opts.imageSize,
      seed,
      val,
      test,
    };
    const yamlText = datasetYaml(info);
    checkYaml(yamlText, yamlPath, name);
    const notes: string[] = [];
    if (!opts.imageSize && referenceSize > 512) {
      notes.push(
        `the photos are large (median short side ${referenceSize} px) and are decoded at every training step; ` +
          `--image-size ${Math.min(256, referenceSize)} re-encodes them once and trains much faster.`,
      );
    }
    for (const split of ["validation", "test"] as const) {
      const k = info.counts[split];
      if (k < 10 * scan.classes.length && k < 100) {
        notes.push(
          `the ${split} split has only ${k} image${
            k === 1 ? "" : "s"
          } (${scan.classes.length} classes): its accuracies will be coarse (one image is ${
            (100 / Math.max(k, 1)).toFixed(1)
          } points); ` +
            `more photos, or a larger --${split === "test" ? "test" : "val"} fraction, make them meaningful.`,
        );
      }
    }
    if (scan.skipped.length) {
      notes.push(
        `${scan.skipped.length} file(s) that are not .jpg/.jpeg/.png were skipped, e.g. ${scan.skipped[0]}.`,
      );
    }

    await Deno.writeTextFile(`${tmp}/classes.txt`, scan.classes.join("\n") + "\n");
    const published = {
      name,
      classes: scan.classes,
      import: {
        folder: scan.folder,
        seed,
        val,
        test,
        shard_size: shardSize,
        image_size: opts.imageSize ?? null,
      },
      per_class: Object.fromEntries(SPLITS.map((s) => [s, splits[s].perClass])),
      splits: manifest,
    };
    await Deno.writeTextFile(`${tmp}/manifest.json`, JSON.stringify(published, null, 2) + "\n");

    // into place: the source folder, then the config (the config is what makes the dataset exist)
    await Deno.remove(source, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, source);
    // the fetch stage's out is a copy of the old source: removing it makes the runner fetch again (identical
    // shards give identical outs, so a re-import of the same photos reruns nothing downstream)
    await Deno.remove(`${dataDir}/tfrecords`, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${root}/pipeline/datasets`, { recursive: true });
    const yamlTmp = `${yamlPath}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(yamlTmp, yamlText);
    await Deno.rename(yamlTmp, yamlPath);
    await resolveConfig({ dataset: name, root, profile: "smoke" });

    return {
      name,
      classes: scan.classes,
      source,
      yaml: yamlPath,
      splits,
      referenceSize,
      resolution: profileResolutions(referenceSize),
      skipped: scan.skipped,
      notes,
    };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The dataset config

/** What {@link datasetYaml} needs to know about an import. */
export interface DatasetInfo {
  name: string;
  folder: string;
  /** Absolute path of the source folder. */
  source: string;
  classes: string[];
  counts: Record<SplitName, number>;
  /** The size the profiles are sized from (px). */
  referenceSize: number;
  imageSize?: number;
  seed: number;
  val: number;
  test: number;
}

type Obj = Record<string, unknown>;

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
/** A power-of-two batch no larger than the split (at least 8), capped at `max`. */
const batchFor = (max: number, n: number) =>
  Math.min(max, Math.max(8, 2 ** Math.floor(Math.log2(Math.max(1, n)))));
const stepsFor = (epochs: number, n: number, batch: number, lo: number, hi: number) =>
  clamp(Math.ceil((epochs * n) / batch), lo, hi);
const every = (steps: number, cap: number) => {
  const evalEvery = Math.max(1, Math.ceil(steps / 12));
  return { eval_every: evalEvery, checkpoint_every: Math.max(1, Math.min(cap, evalEvery)) };
};

/**
 * Training resolution of each profile for images of `referenceSize` px: a multiple of 8 no larger than the images,
 * at most 128 (paper, as big_vision's pets/flowers recipes), 96 (cpu) and 64 (smoke), like pets37.yaml.
 */
export function profileResolutions(referenceSize: number): { paper: number; cpu: number; smoke: number } {
  const r = (max: number) => Math.min(max, Math.max(8, Math.floor(referenceSize / 8) * 8));
  return { paper: r(128), cpu: r(96), smoke: r(64) };
}

/**
 * One profile's teacher/freeze/student/distill/eval sections for resolution `r`. Tiny images (≤ 48 px) follow
 * cifar10.yaml (basic-block nets at stride 1, pad-and-crop); photos follow pets37.yaml.
 */
function _recipe(kind: "paper" | "cpu" | "smoke", r: number, n: Record<SplitName, number>): Obj {
  const tiny = r <= 48;
  const big = Math.round(r * 1.25), mid = Math.round(r * 1.15);
  const teacherAug = tiny
    ? `decode|resize_small(${r})|pad_crop(${r}, pad=${
      Math.max(1, Math.round(r / 8))
    })|flip_lr|value_range(-1,1)`
    : `decode|resize_small(${mid})|flip_lr|random_crop(${r})|value_range(-1,1)`;
  const distillAug = `decode|inception_crop(${r}, area_min=${tiny ? 25 : 5})|flip_lr|value_range(-1,1)`;
  const evalSpec = tiny
    ? `decode|resize_small(${r})|central_crop(${r})|value_range(-1,1)`
    : `decode|resize_small(${big})|central_crop(${r})|value_range(-1,1)`;
  const sgd = (lr: number) => ({
    name: "sgd",
    lr,
    momentum: 0.9,
    nesterov: true,
    weight_decay: 0.0005,
    clip_norm: null,
  });
  let arch: [string, string];
  let tBatch: number, tSteps: number, dBatch: number, dSteps: number, cap: number;
  if (kind === "smoke") {
    arch = ["d10-12", "d10-6s"];
    tBatch = dBatch = batchFor(32, n.train);
    tSteps = dSteps = 120; // like pets37's smoke: enough for the report to show learning
    cap = 40;
  } else if (kind === "cpu") {
    arch = tiny ? ["d10-12", "d10-6s"] : [
      "bit-basic:root=16,widths=32-64-128,units=1-1-1,strides=2-2-2,rootStride=2",
      "bit-basic:root=8,widths=16-32-64,units=1-1-1,strides=2-2-2,rootStride=2",
    ];
    tBatch = dBatch = batchFor(tiny ? 128 : 64, n.train);
    // never shorter than smoke's 120 steps: "smoke first, then cpu" must mean more training, not less
    tSteps = stepsFor(60, n.train, tBatch, 240, 3000);
    dSteps = stepsFor(60, n.train, dBatch, 240, 3000);
    cap = 100;
  } else {
    arch = tiny ? ["d10-12", "d10-6s"] : ["R50x1", "R26x1"];
    tBatch = batchFor(128, n.train);
    tSteps = stepsFor(100, n.train, tBatch, 200, 1e9);
    dBatch = batchFor(512, n.train);
    dSteps = stepsFor(1000, n.train, dBatch, 500, 1e9);
    cap = 250;
  }
  const tEvery = kind === "smoke" ? { eval_every: 40, checkpoint_every: 40 } : every(tSteps, cap);
  const dEvery = kind === "smoke" ? { eval_every: 40, checkpoint_every: 40 } : every(dSteps, cap);
  const warmup = { kind: "warmup_cosine", warmup_fraction: kind === "smoke" ? 0.1 : 0.05 };
  return {
    teacher: {
      arch: arch[0],
      image_size: r,
      pretrained: null,
      init: null,
      train: {
        preprocess: teacherAug,
        optimizer: sgd(kind === "smoke" ? 0.05 : 0.1),
        schedule: warmup,
        batch_size: tBatch,
        steps: tSteps,
        ...tEvery,
      },
    },
    freeze: {
      consistency_images: Math.min(n.validation, kind === "smoke" ? 64 : 512),
      crop: `decode|inception_crop(${r}${tiny ? ", area_min=25" : ""})|flip_lr|value_range(-1,1)`,
    },
    student: { arch: arch[1], image_size: r },
    distill: {
      modes: ["function_matching"],
      preprocess: distillAug,
      temperature: kind === "paper" && !tiny ? 5 : 2,
      optimizer: { name: "adam", lr: 0.01, weight_decay: tiny ? 0.000001 : 0.001, clip_norm: 1.0 },
      schedule: warmup,
      batch_size: dBatch,
      steps: dSteps,
      ...dEvery,
      teacher_runtime: "auto",
    },
    eval: {
      preprocess: evalSpec,
      batch_size: kind === "paper" ? 128 : 64,
      latency_repeats: kind === "smoke" ? 5 : 20,
    },
  };
}

const PLAIN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const RESERVED = /^(true|false|null|yes|no|on|off|y|n|~)$/i;

function _scalar(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const s = String(v);
  return PLAIN.test(s) && !RESERVED.test(s) ? s : JSON.stringify(s);
}

function _isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function _flow(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(_flow).join(", ")}]`;
  if (_isObj(v)) {
    const parts = Object.entries(v).map(([k, x]) => `${_scalar(k)}: ${_flow(x)}`);
    return parts.length ? `{ ${parts.join(", ")} }` : "{}";
  }
  return _scalar(v);
}

/** Block YAML for mappings, flow style for any value that fits on its line; comments before keys by dotted path. */
function _emit(
  obj: Obj,
  indent: string,
  path: string,
  comments: Record<string, string[]>,
  out: string[],
): void {
  for (const [k, v] of Object.entries(obj)) {
    const p = path ? `${path}.${k}` : k;
    for (const c of comments[p] ?? []) out.push(`${indent}# ${c}`);
    const key = `${indent}${_scalar(k)}:`;
    const flat = `${key} ${_flow(v)}`;
    const fits = flat.length <= 110;
    if (_isObj(v) && Object.keys(v).length > 0 && (!fits || Object.values(v).some(_isObj))) {
      out.push(key);
      _emit(v, indent + "  ", p, comments, out);
    } else if (Array.isArray(v) && v.length > 0 && !fits) {
      out.push(key);
      for (const x of v) out.push(`${indent}  - ${_flow(x)}`);
    } else out.push(flat);
  }
}

/** Splits `text` into lines of at most `width` characters at spaces (a longer word stays whole). */
function _wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = "";
  for (const word of text.split(" ")) {
    if (cur && cur.length + 1 + word.length > width) {
      lines.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) lines.push(cur);
  return lines;
}

function _oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ");
}

/**
 * The dataset config of an import, as YAML text: the base is the `paper` recipe (GPU), overlaid by `smoke`, `cpu`
 * and `cpu-ablations`, with the structure of pets37.yaml. Deterministic: the same import gives the same bytes.
 */
export function datasetYaml(info: DatasetInfo): string {
  const n = info.counts;
  const total = n.train + n.validation + n.test;
  const S = info.referenceSize;
  const res = profileResolutions(S);
  const base: Obj = {
    name: info.name,
    description: `${info.name}: ${total} photos of ${info.classes.length} classes from ${
      _oneLine(info.folder)
    }, train ${n.train} / validation ${n.validation} / test ${n.test}`,
    source: info.source,
    num_classes: info.classes.length,
    classes: info.classes,
    seed: 0,
    backend: "auto",
    threads: 1,
    native: "auto",
    data: {
      keys: { image: "image", label: "class" },
      // patterns name the shards inside each split's folder (lib/data/source.ts matches file names)
      splits: Object.fromEntries(SPLITS.map((s) => [s, { pattern: `${s}_${info.name}-*.tfrec` }])),
      workers: 1,
      prefetch: 4,
    },
    ..._recipe("paper", res.paper, n),
    published: null,
  };
  const smoke = _recipe("smoke", res.smoke, n);
  const take: Obj = {};
  for (const [s, cap] of [["train", 1024], ["validation", 256], ["test", 512]] as const) {
    if (n[s] > cap) take[s] = cap;
  }
  if (Object.keys(take).length) smoke.data = { take };
  const cpu = _recipe("cpu", res.cpu, n);
  const cpuDistill = cpu.distill as Obj;
  const profiles: Obj = {
    smoke,
    cpu,
    "cpu-ablations": {
      extends: "cpu",
      distill: {
        modes: ["function_matching", "fixed_teacher", "labels"],
        steps: Math.max(50, Math.round((cpuDistill.steps as number) / 3)),
      },
    },
    paper: {},
  };
  const sized = info.imageSize
    ? `every image re-encoded as a ${info.imageSize}×${info.imageSize} JPEG (aspect squashed, like the original shards)`
    : `original image bytes; median short side ${S} px`;
  const header = [
    `${info.name}: imported by \`deno task import ${
      _oneLine(info.folder)
    } ${info.name} --val ${info.val} --test ${info.test}` +
    ` --seed ${info.seed}${info.imageSize ? ` --image-size ${info.imageSize}` : ""}\`.`,
    `${total} photos, ${info.classes.length} classes (label id = position in \`classes:\`), split per class from seed ` +
    `${info.seed}: train ${n.train} / validation ${n.validation} / test ${n.test}; ${sized}.`,
    `Shards in the original implementation's layout: {split}/{split}_${info.name}-{shard}-{count}.tfrec, keys image/class.`,
    `Recipes follow ${
      res.paper <= 48 ? "cifar10.yaml (tiny images)" : "pets37.yaml (photos)"
    }; step counts are set from ` +
    `the train split (paper: teacher 100 / distill 1000 epochs; cpu: 60 epochs, 240 to 3000 steps).`,
  ];
  const comments: Record<string, string[]> = {
    source: ["The folder `deno task import` wrote; the fetch stage copies and verifies it."],
    teacher: [
      `No pretrained teacher exists for these classes, so it is trained on the labels from scratch at ${res.paper} px`,
      "(set `pretrained:` to a funmatch weights file or a BiT .npz of the same arch to import one).",
    ],
    distill: [
      "Function matching as in big_vision: inception crop, flip, mixup; teacher and student see the same image.",
    ],
    profiles: [
      `smoke: minutes, at ${res.smoke} px. cpu: a 2-core machine, at ${res.cpu} px. paper: the base recipe (a GPU), ` +
      `at ${res.paper} px.`,
    ],
  };
  const out = header.flatMap((l) => _wrap(l, 108).map((w) => `# ${w}`));
  _emit({ ...base, profiles }, "", "", comments, out);
  const text = out.join("\n") + "\n";
  // the emitter is small; make sure the text means exactly the object it was made from
  const back = YAML.parse(text);
  if (JSON.stringify(back) !== JSON.stringify({ ...base, profiles })) {
    throw new Error(
      `datasetYaml: the YAML written for ${info.name} does not read back as its config (a bug).`,
    );
  }
  return text;
}

/**
 * Checks a dataset config's text: every profile resolves (schema, required keys) and every preprocess spec parses.
 * Throws the resolver's or the parser's sentence.
 */
export function checkYaml(text: string, file: string, name: string): void {
  for (const profile of PROFILES) {
    const { config } = resolveText(text, file, { dataset: name, profile });
    for (
      const spec of [
        config.teacher?.train?.preprocess,
        config.freeze?.crop,
        config.distill?.preprocess,
        config.eval?.preprocess,
      ]
    ) {
      if (typeof spec === "string") parsePreprocess(spec);
    }
  }
}
