/**
 * Preprocessing written in the config as a big_vision-style pipe of small ops:
 * `"decode|inception_crop(128)|flip_lr|value_range(-1,1)"`.
 *
 * A recipe change (crop, size, range) is then a config change that the runner sees as a params change, and each op is
 * a small function with its own test. Ops work on RGB uint8 HWC images (like big_vision, which casts back to uint8
 * after each resize) and `value_range` produces the float output; without it the output is the raw 0..255 values as
 * float32. All randomness comes from the per-example `Rng` the caller passes, in op order.
 *
 * Ops: `decode`, `inception_crop(size, area_min=5, area_max=100)` (percent of the image area; aspect ratio
 * log-uniform in [3/4, 4/3]; up to `attempts=10` tries, then the whole image), `flip_lr`, `resize(size)` (bilinear,
 * TF2 half-pixel centres, squashes the aspect ratio), `resize_small(size)` (short side to `size`, `method="area"` as in
 * big_vision, or `"bilinear"`), `central_crop(size)`, `random_crop(size)`, `pad_crop(size, pad=4)` (zero padding then a
 * random crop), `value_range(lo, hi)`. Sizes are one integer (square) or two (`h, w`).
 *
 * @example
 * ```ts
 * import { applyPreprocess, parsePreprocess } from "./preprocess.ts";
 * const ops = parsePreprocess("decode|resize_small(160)|central_crop(128)|value_range(-1,1)");
 * const x = await applyPreprocess(ops, jpegBytes, new Rng(0)); // Float32Array of 128*128*3
 * ```
 * @module
 */

import type { Rng } from "../rng.ts";
import { decodeImage, type RgbImage } from "./decode.ts";

/** A parsed op: its name and its arguments resolved against the op's signature. */
export interface PreprocessOp {
  name: string;
  args: Record<string, number | string>;
  /** The op text as written, for error messages. */
  text: string;
}

/** A parsed spec. `outHeight`/`outWidth` are the fixed output size (required for batching). */
export interface PreprocessPlan {
  spec: string;
  ops: PreprocessOp[];
  outHeight: number;
  outWidth: number;
  /** `[lo, hi]` of the final `value_range`, or `[0, 255]` without one. */
  range: [number, number];
}

type Sig = { params: string[]; defaults: Record<string, number | string>; strings?: string[] };

const SIGS: Record<string, Sig> = {
  decode: { params: ["channels"], defaults: { channels: 3 } },
  inception_crop: {
    params: ["size", "area_min", "area_max", "attempts"],
    defaults: { area_min: 5, area_max: 100, attempts: 10 },
  },
  flip_lr: { params: [], defaults: {} },
  resize: { params: ["size"], defaults: {} },
  resize_small: { params: ["size", "method"], defaults: { method: "area" }, strings: ["method"] },
  central_crop: { params: ["size"], defaults: {} },
  random_crop: { params: ["size"], defaults: {} },
  pad_crop: { params: ["size", "pad"], defaults: { pad: 4 } },
  value_range: { params: ["lo", "hi"], defaults: {} },
};

function _err(spec: string, msg: string): Error {
  return new Error(`Preprocess spec "${spec}": ${msg}.`);
}

function _parseValue(raw: string, spec: string, op: string): number | string {
  const t = raw.trim();
  if (/^["'].*["']$/.test(t)) return t.slice(1, -1);
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  if (/^[A-Za-z_]\w*$/.test(t)) return t;
  throw _err(spec, `op ${op} has an argument "${t}" that is neither a number nor a string`);
}

/**
 * Parses a spec string into ops, checking names, argument names and values, and that the output has a fixed size.
 * Throws one sentence naming the spec and the offending op.
 */
export function parsePreprocess(spec: string): PreprocessPlan {
  const parts = spec.split("|").map((s) => s.trim());
  if (parts.length === 0 || parts[0] === "") throw _err(spec, "is empty");
  const ops: PreprocessOp[] = [];
  for (const text of parts) {
    const m = /^([A-Za-z_]\w*)\s*(?:\((.*)\))?$/.exec(text);
    if (!m) throw _err(spec, `cannot parse op "${text}" (expected name or name(args))`);
    const name = m[1];
    const sig = SIGS[name];
    if (!sig) throw _err(spec, `unknown op "${name}" (known: ${Object.keys(SIGS).join(", ")})`);
    const args: Record<string, number | string> = {};
    const positional: (number | string)[] = [];
    const argText = (m[2] ?? "").trim();
    let sawKeyword = false;
    // sizes may be written as a tuple "(h, w)": flatten one level of parentheses
    const flat = argText.replace(/[()]/g, " ");
    if (flat.trim() !== "") {
      for (const a of flat.split(",")) {
        const kv = /^\s*([A-Za-z_]\w*)\s*=(.*)$/.exec(a);
        if (kv) {
          sawKeyword = true;
          if (!sig.params.includes(kv[1])) {
            throw _err(
              spec,
              `op ${name} has no argument "${kv[1]}" (arguments: ${sig.params.join(", ") || "none"})`,
            );
          }
          args[kv[1]] = _parseValue(kv[2], spec, name);
        } else {
          if (sawKeyword) throw _err(spec, `op ${name} has a positional argument after a keyword argument`);
          positional.push(_parseValue(a, spec, name));
        }
      }
    }
    // a size given as two positionals (h, w) occupies the "size" slot
    let pi = 0;
    const sizeOp = sig.params[0] === "size";
    for (let k = 0; k < sig.params.length && pi < positional.length; k++) {
      const p = sig.params[k];
      if (
        k === 0 && sizeOp && positional.length >= 2 && name !== "inception_crop" && name !== "pad_crop" &&
        name !== "resize_small"
      ) {
        args.size = `${positional[0]}x${positional[1]}`;
        pi = 2;
        continue;
      }
      if (p in args) throw _err(spec, `op ${name} got argument "${p}" twice`);
      args[p] = positional[pi++];
    }
    if (pi < positional.length) {
      throw _err(spec, `op ${name} takes at most ${sig.params.length} arguments (${sig.params.join(", ")})`);
    }
    for (const [k, v] of Object.entries(sig.defaults)) if (!(k in args)) args[k] = v;
    for (const p of sig.params) {
      if (!(p in args)) throw _err(spec, `op ${name} needs argument "${p}"`);
      const v = args[p];
      if (sig.strings?.includes(p)) {
        if (typeof v !== "string") throw _err(spec, `op ${name} argument ${p} must be a string`);
      } else if (p === "size") {
        const ok = typeof v === "number"
          ? Number.isInteger(v) && v > 0
          : /^\d+x\d+$/.test(v) && !/(^0x|x0$)/.test(v);
        if (!ok) throw _err(spec, `op ${name} size must be a positive integer or two (h, w), got ${v}`);
      } else if (typeof v !== "number") {
        throw _err(spec, `op ${name} argument ${p} must be a number, got "${v}"`);
      }
    }
    ops.push({ name, args, text });
  }
  // semantic checks
  if (ops[0].name !== "decode") throw _err(spec, `must start with decode, not ${ops[0].name}`);
  if (ops.slice(1).some((o) => o.name === "decode")) throw _err(spec, "has decode more than once");
  let h = -1, w = -1;
  let range: [number, number] = [0, 255];
  for (const [i, o] of ops.entries()) {
    const a = o.args;
    if (o.name === "decode" && a.channels !== 3) throw _err(spec, "decode supports channels=3 only");
    if (o.name === "inception_crop") {
      const lo = a.area_min as number, hi = a.area_max as number;
      if (!(lo > 0 && lo <= hi && hi <= 100)) {
        throw _err(spec, `inception_crop needs 0 < area_min <= area_max <= 100 (percent), got ${lo}, ${hi}`);
      }
      if (!Number.isInteger(a.attempts) || (a.attempts as number) < 1) {
        throw _err(spec, "inception_crop attempts must be a positive integer");
      }
    }
    if (o.name === "resize_small" && a.method !== "area" && a.method !== "bilinear") {
      throw _err(spec, `resize_small method must be "area" or "bilinear", got "${a.method}"`);
    }
    if (o.name === "pad_crop" && !(Number.isInteger(a.pad) && (a.pad as number) >= 0)) {
      throw _err(spec, "pad_crop pad must be a non-negative integer");
    }
    if (o.name === "value_range") {
      if (i !== ops.length - 1) throw _err(spec, "value_range must be the last op");
      range = [a.lo as number, a.hi as number];
    }
    if (["inception_crop", "resize", "central_crop", "random_crop", "pad_crop"].includes(o.name)) {
      [h, w] = _size(a.size);
    } else if (o.name === "resize_small") {
      h = w = -1;
    }
  }
  if (h < 0) {
    throw _err(
      spec,
      "does not end with a fixed size (add resize, central_crop, random_crop or inception_crop)",
    );
  }
  return { spec, ops, outHeight: h, outWidth: w, range };
}

function _size(v: number | string): [number, number] {
  if (typeof v === "number") return [v, v];
  const [a, b] = v.split("x").map(Number);
  return [a, b];
}

/** One crop box in pixels. */
export interface CropBox {
  y: number;
  x: number;
  h: number;
  w: number;
}

/**
 * Samples an inception-style crop box: area uniform in [areaMin, areaMax]·H·W, aspect ratio (w/h) log-uniform in
 * [3/4, 4/3]; a box that does not fit is redrawn, up to `attempts` times, then the whole image is used.
 */
export function sampleInceptionCrop(
  height: number,
  width: number,
  rng: Rng,
  areaMin = 0.05,
  areaMax = 1,
  attempts = 10,
): CropBox {
  const area = height * width;
  const logLo = Math.log(3 / 4), logHi = Math.log(4 / 3);
  for (let t = 0; t < attempts; t++) {
    const target = area * (areaMin + (areaMax - areaMin) * rng.next());
    const aspect = Math.exp(logLo + (logHi - logLo) * rng.next());
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w >= 1 && h >= 1 && w <= width && h <= height) {
      const y = rng.int(height - h + 1);
      const x = rng.int(width - w + 1);
      return { y, x, h, w };
    }
  }
  return { y: 0, x: 0, h: height, w: width };
}

/** Bilinear interpolation tables for one axis (TF2 `resize` with half-pixel centres, no antialias). */
function _bilinearAxis(
  inSize: number,
  outSize: number,
  start: number,
): { lo: Int32Array; hi: Int32Array; f: Float32Array } {
  const lo = new Int32Array(outSize), hi = new Int32Array(outSize), f = new Float32Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = (i + 0.5) * scale - 0.5;
    const fl = Math.floor(src);
    lo[i] = start + Math.max(fl, 0);
    hi[i] = start + Math.min(Math.ceil(src), inSize - 1);
    f[i] = src - fl;
  }
  return { lo, hi, f };
}

/**
 * Crops `box` out of `img` and resizes it to `outH`×`outW` with bilinear interpolation (TF2 half-pixel centres),
 * rounding back to uint8 like big_vision's resize of a uint8 image.
 */
export function cropResizeBilinear(img: RgbImage, box: CropBox, outH: number, outW: number): RgbImage {
  if (box.h === outH && box.w === outW) return crop(img, box);
  const ys = _bilinearAxis(box.h, outH, box.y);
  const xs = _bilinearAxis(box.w, outW, box.x);
  const src = img.data, W3 = img.width * 3;
  const out = new Uint8Array(outH * outW * 3);
  let o = 0;
  for (let i = 0; i < outH; i++) {
    const r0 = ys.lo[i] * W3, r1 = ys.hi[i] * W3, fy = ys.f[i];
    for (let j = 0; j < outW; j++) {
      const c0 = xs.lo[j] * 3, c1 = xs.hi[j] * 3, fx = xs.f[j];
      for (let c = 0; c < 3; c++) {
        const tl = src[r0 + c0 + c], tr = src[r0 + c1 + c];
        const bl = src[r1 + c0 + c], br = src[r1 + c1 + c];
        const top = tl + (tr - tl) * fx;
        const bot = bl + (br - bl) * fx;
        const v = top + (bot - top) * fy;
        out[o++] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
      }
    }
  }
  return { data: out, height: outH, width: outW };
}

/**
 * Area resize taps of one axis: output `i` covers input `[i·s, (i+1)·s)` (s = in/out) and takes `idx[k]` with weight
 * `coverage/s` for `k` in `[start[i], start[i+1])`; inputs covered by 1e-9 or less are left out.
 */
function _areaAxis(
  inSize: number,
  outSize: number,
): { start: Int32Array; idx: Int32Array; wts: Float64Array } {
  const s = inSize / outSize;
  const start = new Int32Array(outSize + 1);
  const idx: number[] = [], wts: number[] = [];
  for (let i = 0; i < outSize; i++) {
    const a = i * s, b = (i + 1) * s;
    start[i] = idx.length;
    for (let j = Math.floor(a); j < Math.min(Math.ceil(b), inSize); j++) {
      const cov = Math.min(b, j + 1) - Math.max(a, j);
      if (cov > 1e-9) {
        idx.push(j);
        wts.push(cov / s);
      }
    }
  }
  start[outSize] = idx.length;
  return { start, idx: Int32Array.from(idx), wts: Float64Array.from(wts) };
}

let _tmp = new Float32Array(0);

/** A reused float32 buffer of at least `n` elements (ops are synchronous, so one per thread is enough). */
function _scratch(n: number): Float32Array {
  if (_tmp.length < n) _tmp = new Float32Array(Math.max(n, Math.floor(_tmp.length * 1.5)));
  return _tmp;
}

/**
 * Area (box-filter) resize with fractional coverage, as TF's `resize_area`/`method="area"` without antialias.
 * With `region`, only that box of the `outH`×`outW` result is computed and returned (the same pixels as resizing and
 * then cropping, for a fraction of the work: `resize_small` followed by `central_crop` uses this).
 *
 * Two separable passes: rows to a float32 image, then columns. The sums are float64 in tap order and the
 * intermediate is float32, so the result is exactly that of the straightforward loops (a test keeps them equal);
 * the speed comes from flat typed tap tables, a column pass that streams whole rows into a float64 accumulator, an
 * exact integer rounding instead of `Math.round`, and touching only the input rows and output columns of `region`.
 */
export function resizeArea(img: RgbImage, outH: number, outW: number, region?: CropBox): RgbImage {
  const box = region ?? { y: 0, x: 0, h: outH, w: outW };
  if (box.y < 0 || box.x < 0 || box.h < 1 || box.w < 1 || box.y + box.h > outH || box.x + box.w > outW) {
    throw new Error(`resizeArea: region ${JSON.stringify(box)} is not inside the ${outH}×${outW} output.`);
  }
  if (img.height === outH && img.width === outW) return crop(img, box);
  const ax = _areaAxis(img.width, outW), ay = _areaAxis(img.height, outH);
  const src = img.data, inRow = img.width * 3, rowLen = box.w * 3;
  // the input rows the region's output rows cover (taps are in increasing order)
  const r0 = ay.idx[ay.start[box.y]], r1 = ay.idx[ay.start[box.y + box.h] - 1] + 1;
  // horizontal pass: input rows r0..r1-1 to the region's columns, float32
  const tmp = _scratch((r1 - r0) * rowLen);
  const xs = ax.start, xoff = ax.idx.map((j) => j * 3), xw = ax.wts;
  for (let y = r0, row = r0 * inRow, q = 0; y < r1; y++, row += inRow) {
    for (let j = box.x, jEnd = box.x + box.w; j < jEnd; j++, q += 3) {
      let r = 0, g = 0, b = 0;
      for (let k = xs[j], end = xs[j + 1]; k < end; k++) {
        const p = row + xoff[k], wk = xw[k];
        r += src[p] * wk;
        g += src[p + 1] * wk;
        b += src[p + 2] * wk;
      }
      tmp[q] = r;
      tmp[q + 1] = g;
      tmp[q + 2] = b;
    }
  }
  // vertical pass: each output row is a weighted sum of whole tmp rows, accumulated in tap order
  const out = new Uint8Array(box.h * rowLen);
  const acc = new Float64Array(rowLen);
  const ys = ay.start, yi = ay.idx, yw = ay.wts;
  for (let i = box.y, o = 0, iEnd = box.y + box.h; i < iEnd; i++, o += rowLen) {
    acc.fill(0);
    for (let k = ys[i], end = ys[i + 1]; k < end; k++) {
      const base = (yi[k] - r0) * rowLen, wk = yw[k];
      for (let x = 0; x < rowLen; x++) acc[x] += tmp[base + x] * wk;
    }
    // Math.round(v) for v in [0.5, 255) is (v + 0.5) | 0 exactly (the sum is exact there), at a tenth of the cost
    for (let x = 0; x < rowLen; x++) {
      const v = acc[x];
      out[o + x] = v < 0.5 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
    }
  }
  return { data: out, height: box.h, width: box.w };
}

/** Copies a crop box out of an image. */
export function crop(img: RgbImage, box: CropBox): RgbImage {
  if (box.y === 0 && box.x === 0 && box.h === img.height && box.w === img.width) return img;
  const out = new Uint8Array(box.h * box.w * 3);
  const rowLen = box.w * 3;
  for (let i = 0; i < box.h; i++) {
    const s = ((box.y + i) * img.width + box.x) * 3;
    out.set(img.data.subarray(s, s + rowLen), i * rowLen);
  }
  return { data: out, height: box.h, width: box.w };
}

/** Mirrors an image left-right (a new image). */
export function flipLR(img: RgbImage): RgbImage {
  const { height: H, width: W } = img;
  const out = new Uint8Array(H * W * 3);
  const src = img.data;
  for (let y = 0; y < H; y++) {
    const row = y * W * 3;
    for (let x = 0; x < W; x++) {
      const s = row + x * 3, d = row + (W - 1 - x) * 3;
      out[d] = src[s];
      out[d + 1] = src[s + 1];
      out[d + 2] = src[s + 2];
    }
  }
  return { data: out, height: H, width: W };
}

function _need(img: RgbImage, h: number, w: number, op: PreprocessOp, where: string): void {
  if (img.height < h || img.width < w) {
    throw new Error(
      `${where}: ${op.text} needs an image of at least ${h}×${w}, got ${img.height}×${img.width}.`,
    );
  }
}

/** Runs the ops after `decode` on an already decoded image; returns the uint8 image before `value_range`. */
export function runImageOps(plan: PreprocessPlan, decoded: RgbImage, rng: Rng, where = "image"): RgbImage {
  let img = decoded;
  for (let oi = 0; oi < plan.ops.length; oi++) {
    const op = plan.ops[oi], a = op.args;
    switch (op.name) {
      case "decode":
      case "value_range":
        break;
      case "inception_crop": {
        const [h, w] = _size(a.size);
        const box = sampleInceptionCrop(
          img.height,
          img.width,
          rng,
          (a.area_min as number) / 100,
          (a.area_max as number) / 100,
          a.attempts as number,
        );
        img = cropResizeBilinear(img, box, h, w);
        break;
      }
      case "flip_lr":
        if (rng.next() < 0.5) img = flipLR(img);
        break;
      case "resize": {
        const [h, w] = _size(a.size);
        img = cropResizeBilinear(img, { y: 0, x: 0, h: img.height, w: img.width }, h, w);
        break;
      }
      case "resize_small": {
        const s = a.size as number;
        const r = s / Math.min(img.height, img.width);
        const h = Math.max(1, Math.round(img.height * r)), w = Math.max(1, Math.round(img.width * r));
        const next = plan.ops[oi + 1];
        if (a.method === "area" && next?.name === "central_crop") {
          // resize only the central window: the same pixels as resize then crop, ~half the work at 160 → 128
          const [ch, cw] = _size(next.args.size);
          _need({ data: img.data, height: h, width: w }, ch, cw, next, where);
          img = resizeArea(img, h, w, { y: (h - ch) >> 1, x: (w - cw) >> 1, h: ch, w: cw });
          oi++;
          break;
        }
        img = a.method === "area"
          ? resizeArea(img, h, w)
          : cropResizeBilinear(img, { y: 0, x: 0, h: img.height, w: img.width }, h, w);
        break;
      }
      case "central_crop": {
        const [h, w] = _size(a.size);
        _need(img, h, w, op, where);
        img = crop(img, { y: (img.height - h) >> 1, x: (img.width - w) >> 1, h, w });
        break;
      }
      case "random_crop": {
        const [h, w] = _size(a.size);
        _need(img, h, w, op, where);
        img = crop(img, { y: rng.int(img.height - h + 1), x: rng.int(img.width - w + 1), h, w });
        break;
      }
      case "pad_crop": {
        const [h, w] = _size(a.size);
        const p = a.pad as number;
        const PH = img.height + 2 * p, PW = img.width + 2 * p;
        _need({ data: img.data, height: PH, width: PW }, h, w, op, where);
        // crop from the zero-padded image without materialising it
        const y0 = rng.int(PH - h + 1) - p, x0 = rng.int(PW - w + 1) - p;
        const out = new Uint8Array(h * w * 3);
        for (let i = 0; i < h; i++) {
          const sy = y0 + i;
          if (sy < 0 || sy >= img.height) continue;
          for (let j = 0; j < w; j++) {
            const sx = x0 + j;
            if (sx < 0 || sx >= img.width) continue;
            const s = (sy * img.width + sx) * 3, d = (i * w + j) * 3;
            out[d] = img.data[s];
            out[d + 1] = img.data[s + 1];
            out[d + 2] = img.data[s + 2];
          }
        }
        img = { data: out, height: h, width: w };
        break;
      }
      default:
        throw new Error(`Preprocess spec "${plan.spec}": op ${op.name} is not implemented.`);
    }
  }
  if (img.height !== plan.outHeight || img.width !== plan.outWidth) {
    throw new Error(
      `${where}: preprocess "${plan.spec}" produced ${img.height}×${img.width}, expected ${plan.outHeight}×${plan.outWidth}.`,
    );
  }
  return img;
}

/** Writes the final image as float32 HWC into `out` at `offset`, applying `value_range` (x/255·(hi−lo)+lo). */
export function writeFloat(plan: PreprocessPlan, img: RgbImage, out: Float32Array, offset = 0): void {
  const [lo, hi] = plan.range;
  const s = (hi - lo) / 255;
  const d = img.data;
  for (let i = 0; i < d.length; i++) out[offset + i] = d[i] * s + lo;
}

/**
 * Decodes `bytes` and applies the plan; returns Float32 HWC of `outHeight*outWidth*3`. Accepts a plan or a spec string.
 */
export async function applyPreprocess(
  ops: PreprocessPlan | string,
  bytes: Uint8Array,
  rng: Rng,
  where = "image",
): Promise<Float32Array> {
  const plan = typeof ops === "string" ? parsePreprocess(ops) : ops;
  const img = runImageOps(plan, await decodeImage(bytes, where), rng, where);
  const out = new Float32Array(plan.outHeight * plan.outWidth * 3);
  writeFloat(plan, img, out, 0);
  return out;
}
