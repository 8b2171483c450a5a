/**
 * Imports pretrained BiT weights. The published checkpoints are NumPy `.npz` files (a zip of `.npy` arrays):
 * big_vision's (`gs://bit_models/distill/R152x2_T_pet128.npz`, names exactly ours, possibly under a prefix) and
 * the original BiT release's (`BiT-M-R50x1.npz`, names like `resnet/block1/unit01/a/standardized_conv2d/kernel`).
 * Neither tfjs nor Deno reads them, so this module has its own small zip reader (stored and deflated entries,
 * zip64, CRC-32 checked), an .npy parser, and the name mapping from the BiT release to big_vision's names
 * (the same mapping big_vision's `bit_paper.maybe_convert_big_transfer_format` applies).
 */
import { inflateRawSync } from "node:zlib";
import type { Model } from "./bit.ts";
import { assignParams, decodeWeights, type LoadedTensor } from "./weights.ts";
import * as tf from "@tensorflow/tfjs";

// ---------------------------------------------------------------------------------------------------------
// zip

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (zip/PNG polynomial) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One member of a zip archive, decompressed. */
export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

/** Reads every file of a zip archive (methods 0 stored and 8 deflate; zip64 sizes/offsets; CRC-32 checked). */
export function readZip(bytes: Uint8Array, where: string): ZipEntry[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => {
    const v = Number(dv.getBigUint64(o, true));
    if (!Number.isSafeInteger(v)) throw new Error(`${where}: 64-bit zip field at byte ${o} is too large.`);
    return v;
  };
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (u32(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${where}: not a zip/npz file (no end-of-central-directory record).`);
  let count = u16(eocd + 10);
  let cdOffset = u32(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || u32(loc) !== 0x07064b50) {
      throw new Error(`${where}: zip64 end-of-central-directory locator missing before byte ${eocd}.`);
    }
    const z = u64(loc + 8);
    if (z + 56 > bytes.length || u32(z) !== 0x06064b50) {
      throw new Error(`${where}: no zip64 end-of-central-directory record at byte ${z}.`);
    }
    count = u64(z + 32);
    cdOffset = u64(z + 48);
  }
  const out: ZipEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > bytes.length || u32(p) !== 0x02014b50) {
      throw new Error(`${where}: bad central-directory entry ${i} at byte ${p}.`);
    }
    const flags = u16(p + 8);
    const method = u16(p + 10);
    const crc = u32(p + 16);
    let compSize = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32);
    let local = u32(p + 42);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: the 0xffffffff fields, in order size, compressed size, local header offset
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = u16(e), len = u16(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) size = u64(q), q += 8;
        if (compSize === 0xffffffff) compSize = u64(q), q += 8;
        if (local === 0xffffffff) local = u64(q), q += 8;
      }
      e += 4 + len;
    }
    p += 46 + nameLen + extraLen + commentLen;
    if (flags & 1) throw new Error(`${where}: entry "${name}" is encrypted.`);
    if (local + 30 > bytes.length || u32(local) !== 0x04034b50) {
      throw new Error(`${where}: entry "${name}" has no local header at byte ${local}.`);
    }
    const start = local + 30 + u16(local + 26) + u16(local + 28);
    if (start + compSize > bytes.length) {
      throw new Error(
        `${where}: entry "${name}" (${compSize} B at byte ${start}) runs past the end of the file.`,
      );
    }
    const raw = bytes.subarray(start, start + compSize);
    let data: Uint8Array;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        const b = inflateRawSync(raw);
        data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      } catch (e) {
        throw new Error(
          `${where}: entry "${name}" at byte ${start} does not inflate (${(e as Error).message}).`,
        );
      }
    } else {
      throw new Error(
        `${where}: entry "${name}" uses compression method ${method}; only stored (0) and deflate (8).`,
      );
    }
    if (data.length !== size) {
      throw new Error(
        `${where}: entry "${name}" is ${data.length} B after decompression, the directory says ${size}.`,
      );
    }
    if (crc32(data) !== crc) {
      throw new Error(`${where}: entry "${name}" at byte ${start} fails its CRC-32 check.`);
    }
    out.push({ name, data });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// npy

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Parses one `.npy` array (format versions 1–3; little-endian float16/32/64 and integer dtypes, C order) into
 * float32. `where` names the source in errors.
 */
export function parseNpy(bytes: Uint8Array, where: string): LoadedTensor {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((m, i) => bytes[i] !== m)) {
    throw new Error(`${where}: not an .npy array (bad magic at byte 0).`);
  }
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hlen: number, hstart: number;
  if (major === 1) [hlen, hstart] = [dv.getUint16(8, true), 10];
  else if (major === 2 || major === 3) [hlen, hstart] = [dv.getUint32(8, true), 12];
  else throw new Error(`${where}: unsupported .npy format version ${major} at byte 6.`);
  const header = new TextDecoder().decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeStr === undefined) {
    throw new Error(
      `${where}: .npy header at byte ${hstart} lacks descr/fortran_order/shape: ${header.trim()}`,
    );
  }
  if (fortran === "True") throw new Error(`${where}: Fortran-ordered arrays are not supported.`);
  const shape = shapeStr.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${where}: bad .npy shape (${shapeStr}).`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const m = /^([<>|=])([fiu])(\d+)$/.exec(descr);
  if (!m) throw new Error(`${where}: unsupported .npy dtype '${descr}' (need float or integer).`);
  const [, order, kind, sizeStr] = m;
  const size = Number(sizeStr);
  if (order === ">" && size > 1) throw new Error(`${where}: big-endian dtype '${descr}' is not supported.`);
  const start = hstart + hlen;
  if (start + n * size > bytes.length) {
    throw new Error(
      `${where}: .npy data (${n} × ${size} B from byte ${start}) runs past the end (${bytes.length} B).`,
    );
  }
  const data = new Float32Array(n);
  const get = (i: number): number => {
    const o = start + i * size;
    if (kind === "f") {
      if (size === 4) return dv.getFloat32(o, true);
      if (size === 8) return dv.getFloat64(o, true);
      if (size === 2) return halfToFloat(dv.getUint16(o, true));
    } else if (kind === "i") {
      if (size === 1) return dv.getInt8(o);
      if (size === 2) return dv.getInt16(o, true);
      if (size === 4) return dv.getInt32(o, true);
      if (size === 8) return Number(dv.getBigInt64(o, true));
    } else {
      if (size === 1) return dv.getUint8(o);
      if (size === 2) return dv.getUint16(o, true);
      if (size === 4) return dv.getUint32(o, true);
      if (size === 8) return Number(dv.getBigUint64(o, true));
    }
    throw new Error(`${where}: unsupported .npy dtype '${descr}'.`);
  };
  if (kind === "f" && size === 4 && (bytes.byteOffset + start) % 4 === 0) {
    data.set(new Float32Array(bytes.buffer, bytes.byteOffset + start, n));
  } else {
    for (let i = 0; i < n; i++) data[i] = get(i);
  }
  return { shape, data };
}

/** Reads an `.npz` archive: array name (without ".npy") → float32 array. */
export function readNpz(bytes: Uint8Array, where = "npz"): Map<string, LoadedTensor> {
  const out = new Map<string, LoadedTensor>();
  for (const e of readZip(bytes, where)) {
    const name = e.name.endsWith(".npy") ? e.name.slice(0, -4) : e.name;
    out.set(name, parseNpy(e.data, `${where}:${e.name}`));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// BiT names

const ROOT = "root_block/conv_root/kernel";
const RELEASE_ROOT = "resnet/root_block/standardized_conv2d/kernel";

/** [1,1,1,C] (big_vision GN params) → [C]; [1,1,C,K] (BiT release head conv) → [C,K]; others unchanged. */
function squeezeTo(name: string, t: LoadedTensor): LoadedTensor {
  const lead = t.shape.slice(0, -1);
  if ((name.endsWith("/scale") || name.endsWith("/bias")) && lead.every((d) => d === 1)) {
    return { shape: [t.shape[t.shape.length - 1]], data: t.data };
  }
  if (name === "head/kernel" && t.shape.length === 4 && t.shape[0] === 1 && t.shape[1] === 1) {
    return { shape: t.shape.slice(2), data: t.data };
  }
  return t;
}

function releaseName(rest: string): string | null {
  rest = rest.replace(/\/standardized_conv2d_\d+\//, "/standardized_conv2d/");
  const gn = { gamma: "scale", beta: "bias" } as Record<string, string>;
  let m: RegExpExecArray | null;
  if (rest === "resnet/root_block/standardized_conv2d/kernel") return ROOT;
  if ((m = /^resnet\/group_norm\/(gamma|beta)$/.exec(rest))) return `norm-pre-head/${gn[m[1]]}`;
  if ((m = /^(?:resnet\/)?head\/conv2d\/(kernel|bias)$/.exec(rest))) return `head/${m[1]}`;
  if ((m = /^resnet\/(block\d+\/unit\d+)\/a\/proj\/standardized_conv2d\/kernel$/.exec(rest))) {
    return `${m[1]}/conv_proj/kernel`;
  }
  const idx = { a: 1, b: 2, c: 3 } as Record<string, number>;
  if ((m = /^resnet\/(block\d+\/unit\d+)\/([abc])\/standardized_conv2d\/kernel$/.exec(rest))) {
    return `${m[1]}/conv${idx[m[2]]}/kernel`;
  }
  if ((m = /^resnet\/(block\d+\/unit\d+)\/([abc])\/group_norm\/(gamma|beta)$/.exec(rest))) {
    return `${m[1]}/gn${idx[m[2]]}/${gn[m[3]]}`;
  }
  return null;
}

/**
 * Maps the arrays of a BiT checkpoint to our (big_vision `bit_paper`) names and shapes. Recognises big_vision
 * names under any prefix (e.g. `params/`) and the original BiT release names (`resnet/…`, `head/conv2d/…`).
 * Entries outside the model's prefix (e.g. optimizer state) are dropped; entries under it that do not map are
 * returned in `unmapped`.
 */
export function mapBitNames(arrays: Map<string, LoadedTensor>): {
  tensors: Map<string, LoadedTensor>;
  unmapped: string[];
  format: "big_vision" | "bit-release";
} {
  const keys = [...arrays.keys()];
  const tensors = new Map<string, LoadedTensor>();
  const unmapped: string[] = [];
  const norm = (k: string) => k.replace(/\/standardized_conv2d_\d+\//, "/standardized_conv2d/");
  const release = keys.find((k) => norm(k).endsWith(RELEASE_ROOT));
  if (release) {
    const prefix = norm(release).slice(0, -RELEASE_ROOT.length);
    for (const k of keys) {
      if (!k.startsWith(prefix)) continue;
      const ours = releaseName(k.slice(prefix.length));
      if (ours === null) unmapped.push(k);
      else tensors.set(ours, squeezeTo(ours, arrays.get(k)!));
    }
    return { tensors, unmapped, format: "bit-release" };
  }
  const bv = keys.find((k) => k === ROOT || k.endsWith("/" + ROOT));
  if (!bv) {
    throw new Error(
      `not a BiT checkpoint: no "${ROOT}" (big_vision) or "${RELEASE_ROOT}" (BiT release) among ${keys.length} ` +
        `arrays (first: ${keys.slice(0, 3).join(", ")}).`,
    );
  }
  const prefix = bv.slice(0, -ROOT.length);
  for (const k of keys) {
    if (!k.startsWith(prefix)) continue;
    const ours = k.slice(prefix.length);
    if (!/^(root_block|block\d+|norm-pre-head|head)\//.test(ours)) unmapped.push(k);
    else tensors.set(ours, squeezeTo(ours, arrays.get(k)!));
  }
  return { tensors, unmapped, format: "big_vision" };
}

// ---------------------------------------------------------------------------------------------------------
// loading into a model

async function readSource(source: string): Promise<Uint8Array> {
  let url = source;
  if (url.startsWith("gs://")) url = `https://storage.googleapis.com/${url.slice(5)}`;
  if (/^https?:\/\//.test(url)) {
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`${source}: download failed (${(e as Error).message}).`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`${source}: download failed with HTTP ${res.status} ${res.statusText}.`);
    }
    return new Uint8Array(await res.arrayBuffer());
  }
  const path = url.startsWith("file://") ? new URL(url).pathname : url;
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${source}: cannot read the pretrained weights (${(e as Error).message}).`);
  }
}

/** What {@link loadPretrained} did. */
export interface PretrainedReport {
  format: "big_vision" | "bit-release" | "funmatch";
  assigned: string[];
  /** head params left zero-initialised because the checkpoint's head has another class count (or none). */
  skipped: string[];
}

/**
 * Loads pretrained weights into `model` from a path, file:// URL, https:// URL or gs:// URL: a BiT `.npz`
 * (big_vision or original-release names) or one of our weights files. Every parameter must be present with its
 * exact shape, except the head: a head of another class count (or none) is skipped and left zero-initialised,
 * as BiT fine-tuning does. Errors name the source and the offending parameter.
 */
export async function loadPretrained(model: Model, source: string): Promise<PretrainedReport> {
  const bytes = await readSource(source);
  let tensors: Map<string, LoadedTensor>;
  let format: PretrainedReport["format"];
  if (bytes.length >= 8 && new TextDecoder().decode(bytes.subarray(0, 8)) === "FMWEIGHT") {
    tensors = decodeWeights(bytes, source);
    format = "funmatch";
  } else if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b) {
    let mapped;
    try {
      mapped = mapBitNames(readNpz(bytes, source));
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(msg.startsWith(source) ? msg : `${source}: ${msg}`);
    }
    if (mapped.unmapped.length > 0) {
      throw new Error(
        `${source}: ${mapped.unmapped.length} array(s) have no BiT parameter name, e.g. ` +
          `"${mapped.unmapped.slice(0, 3).join('", "')}".`,
      );
    }
    tensors = mapped.tensors;
    format = mapped.format;
  } else {
    throw new Error(
      `${source}: neither an .npz (zip) nor a funmatch weights file (first bytes do not match).`,
    );
  }
  const { assigned, skipped } = assignParams(model.params, tensors, source, {
    skippable: (name) => name.startsWith("head/"),
    ignoreExtra: false,
  });
  for (const name of skipped) {
    const v = model.params.get(name)!;
    tf.tidy(() => v.assign(tf.zerosLike(v)));
  }
  return { format, assigned, skipped };
}
