/**
 * Our weights file: one binary file per model, byte-for-byte deterministic for the same tensors, so stage outs
 * (teacher/weights.bin, students/…/weights.bin, checkpoints) can be content-hashed by the runner and compared
 * across reruns. The layout is simple enough to read from any language:
 *
 *   bytes 0–7    ASCII "FMWEIGHT"
 *   bytes 8–11   u32 LE format version (1)
 *   bytes 12–15  u32 LE length H of the header (JSON, UTF-8, padded with spaces so the data starts at a multiple
 *                of 8)
 *   bytes 16…    header `{"tensors":[{"name","dtype":"float32","shape","offset","length"}, …]}` sorted by name;
 *                offsets are relative to the start of the data section (16 + H), lengths in bytes
 *   then         every tensor's float32 little-endian data, in header order, back to back
 *
 * Files are written to `<path>.tmp-<pid>` and renamed into place, so a reader never sees half a file.
 */
import * as tf from "@tensorflow/tfjs";

const MAGIC = "FMWEIGHT";
const VERSION = 1;

/** A tensor read back from a weights file (data is a view into the file's buffer). */
export interface LoadedTensor {
  shape: number[];
  data: Float32Array;
}

interface HeaderEntry {
  name: string;
  dtype: "float32";
  shape: number[];
  offset: number;
  length: number;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("lib/model/weights.ts: this host is big-endian; the weights format is little-endian only.");
}

function sortedNames(names: Iterable<string>): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function ensureParent(path: string): Promise<void> {
  const i = path.lastIndexOf("/");
  if (i > 0) await Deno.mkdir(path.slice(0, i), { recursive: true });
}

/**
 * Serialises named tensors (any dtype; stored as float32) to bytes in the format above. Deterministic: same
 * names, shapes and values give the same bytes whatever the map's insertion order.
 */
export async function encodeWeights(tensors: Map<string, tf.Tensor>): Promise<Uint8Array> {
  const names = sortedNames(tensors.keys());
  const entries: HeaderEntry[] = [];
  const datas: Float32Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (t.isDisposed) throw new Error(`saveWeights: tensor "${name}" is disposed.`);
    const raw = await t.data();
    const data = raw instanceof Float32Array ? raw : Float32Array.from(raw as ArrayLike<number>);
    entries.push({ name, dtype: "float32", shape: t.shape.slice(), offset, length: data.byteLength });
    datas.push(data);
    offset += data.byteLength;
  }
  const json = JSON.stringify({ tensors: entries });
  const jsonBytes = new TextEncoder().encode(json);
  const headerLen = Math.ceil((16 + jsonBytes.length) / 8) * 8 - 16;
  const out = new Uint8Array(16 + headerLen + offset);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, VERSION, true);
  dv.setUint32(12, headerLen, true);
  out.fill(0x20, 16, 16 + headerLen);
  out.set(jsonBytes, 16);
  let p = 16 + headerLen;
  for (const d of datas) {
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), p);
    p += d.byteLength;
  }
  return out;
}

/** Parses bytes produced by {@link encodeWeights}; `where` (a path) names the source in errors. */
export function decodeWeights(bytes: Uint8Array, where: string): Map<string, LoadedTensor> {
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new Error(`${where}: not a funmatch weights file (expected "${MAGIC}" at byte 0).`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== VERSION) {
    throw new Error(`${where}: weights format version ${version} at byte 8, expected ${VERSION}.`);
  }
  const headerLen = dv.getUint32(12, true);
  const dataStart = 16 + headerLen;
  if (dataStart > bytes.length) {
    throw new Error(
      `${where}: header length ${headerLen} at byte 12 runs past the end of the file (${bytes.length} B).`,
    );
  }
  let header: { tensors: HeaderEntry[] };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, dataStart)));
  } catch (e) {
    throw new Error(`${where}: the JSON header at byte 16 does not parse (${(e as Error).message}).`);
  }
  if (!header || !Array.isArray(header.tensors)) {
    throw new Error(`${where}: the header at byte 16 has no "tensors" list.`);
  }
  // a view needs 4-byte alignment; copy once if the caller handed us an unaligned slice
  const base = (bytes.byteOffset + dataStart) % 4 === 0 ? bytes : bytes.slice();
  const out = new Map<string, LoadedTensor>();
  for (const e of header.tensors) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (e.dtype !== "float32" || e.length !== 4 * n || e.offset % 4 !== 0) {
      throw new Error(
        `${where}: header entry "${e.name}" is inconsistent (dtype ${e.dtype}, shape [${e.shape}], ` +
          `${e.length} B at data offset ${e.offset}).`,
      );
    }
    if (dataStart + e.offset + e.length > bytes.length) {
      throw new Error(
        `${where}: tensor "${e.name}" (byte ${dataStart + e.offset}, ${e.length} B) runs past the end ` +
          `of the file (${bytes.length} B).`,
      );
    }
    if (out.has(e.name)) throw new Error(`${where}: tensor "${e.name}" appears twice in the header.`);
    out.set(e.name, {
      shape: e.shape.slice(),
      data: new Float32Array(base.buffer, base.byteOffset + dataStart + e.offset, n),
    });
  }
  return out;
}

/**
 * Writes named tensors to `path` as one deterministic binary file (format above), atomically: the bytes go to
 * `<path>.tmp-<pid>`, which is then renamed over `path`. Parent folders are created.
 */
export async function saveWeights(path: string, tensors: Map<string, tf.Tensor>): Promise<void> {
  const bytes = await encodeWeights(tensors);
  await ensureParent(path);
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}

/** Reads a file written by {@link saveWeights}: name → { shape, data } in name order. */
export async function loadWeights(path: string): Promise<Map<string, LoadedTensor>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read the weights file (${(e as Error).message}).`);
  }
  return decodeWeights(bytes, path);
}

/** Options of {@link assignParams}. */
export interface AssignOptions {
  /** params for which a missing entry or a shape mismatch is skipped (left as initialised) instead of an error. */
  skippable?: (name: string) => boolean;
  /** do not complain about entries of `loaded` that match no parameter. */
  ignoreExtra?: boolean;
}

/**
 * Copies loaded tensors into model parameters by name. Every parameter must be present with its exact shape,
 * except those `skippable` allows (reported in `skipped`). `where` names the source in errors.
 */
export function assignParams(
  params: Map<string, tf.Variable>,
  loaded: Map<string, LoadedTensor>,
  where: string,
  opts: AssignOptions = {},
): { assigned: string[]; skipped: string[] } {
  const assigned: string[] = [];
  const skipped: string[] = [];
  const missing: string[] = [];
  const todo: [tf.Variable, LoadedTensor][] = [];
  for (const [name, v] of params) {
    const w = loaded.get(name);
    const ok = w !== undefined && w.shape.join() === v.shape.join();
    if (ok) {
      todo.push([v, w!]);
      assigned.push(name);
    } else if (opts.skippable?.(name)) skipped.push(name);
    else if (!w) missing.push(name);
    else throw new Error(`${where}: "${name}" has shape [${w.shape}], the model needs [${v.shape}].`);
  }
  if (missing.length > 0) {
    throw new Error(
      `${where}: ${missing.length} parameter(s) missing, e.g. "${missing.slice(0, 3).join('", "')}".`,
    );
  }
  if (!opts.ignoreExtra) {
    const extra = [...loaded.keys()].filter((k) => !params.has(k));
    if (extra.length > 0) {
      throw new Error(
        `${where}: ${extra.length} entr(ies) match no parameter, e.g. "${extra.slice(0, 3).join('", "')}".`,
      );
    }
  }
  for (const [v, w] of todo) tf.tidy(() => v.assign(tf.tensor(w.data, w.shape, "float32")));
  return { assigned, skipped };
}
