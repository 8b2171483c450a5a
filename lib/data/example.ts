/**
 * `tf.train.Example` encoding and decoding through protobufjs.
 *
 * Every dataset we read is a TFRecord of Examples whose feature keys differ by origin (`image`/`class` in the seed
 * repo's shards, `image`/`label` in TFDS's), so the keys come from the dataset config. A missing key or a feature of
 * the wrong kind is a data/config mismatch the user must fix, so it fails with one sentence naming the record and the
 * keys that were found.
 *
 * @example
 * ```ts
 * import { decodeExample, encodeExample } from "./example.ts";
 * const bytes = encodeExample({ image: new Uint8Array([255, 216]), class: [3] });
 * decodeExample(bytes, { image: "image", label: "class" }, "demo"); // { image, label: 3 }
 * ```
 * @module
 */

import protobuf from "protobufjs";

const PROTO = `syntax = "proto3"; package tensorflow;
message BytesList { repeated bytes value = 1; }
message FloatList { repeated float value = 1 [packed = true]; }
message Int64List { repeated int64 value = 1 [packed = true]; }
message Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
message Features { map<string, Feature> feature = 1; }
message Example { Features features = 1; }`;

const ExampleType = protobuf.parse(PROTO, { keepCase: true }).root.lookupType("tensorflow.Example");

/** Feature keys of a dataset's Examples (from the config's `keys:`). */
export interface ExampleKeys {
  image: string;
  label: string;
}

/** A value of one feature: bytes → `bytes_list`, `number[]` → `int64_list`, `Float32Array` → `float_list`. */
export type FeatureValue = Uint8Array | Uint8Array[] | number[] | Float32Array;

/**
 * Serialises a `tf.train.Example`. `Uint8Array` (or an array of them) becomes a `bytes_list`, `number[]` an
 * `int64_list` (integers only), `Float32Array` a `float_list`. Keys are written in sorted order so the bytes are
 * deterministic.
 */
export function encodeExample(features: Record<string, FeatureValue>): Uint8Array {
  const feature: Record<string, unknown> = {};
  for (const key of Object.keys(features).sort()) {
    const v = features[key];
    if (v instanceof Float32Array) feature[key] = { float_list: { value: Array.from(v) } };
    else if (v instanceof Uint8Array) feature[key] = { bytes_list: { value: [v] } };
    else if (Array.isArray(v) && v.length > 0 && v[0] instanceof Uint8Array) {
      feature[key] = { bytes_list: { value: v } };
    } else if (Array.isArray(v)) {
      for (const x of v as number[]) {
        if (!Number.isSafeInteger(x)) {
          throw new Error(`encodeExample: feature "${key}" has non-integer value ${x}.`);
        }
      }
      feature[key] = { int64_list: { value: v } };
    } else throw new Error(`encodeExample: feature "${key}" has an unsupported value type.`);
  }
  return ExampleType.encode(ExampleType.fromObject({ features: { feature } })).finish();
}

function _kind(f: any): string {
  if (f?.bytes_list) return "bytes_list";
  if (f?.int64_list) return "int64_list";
  if (f?.float_list) return "float_list";
  return "empty";
}

function _toNumber(v: any): number {
  if (typeof v === "number") return v;
  if (v && typeof v.toNumber === "function") return v.toNumber();
  return Number(v);
}

/** All features of an Example as plain values (bytes → Uint8Array[], int64 → number[], float → number[]). */
export function decodeExampleAll(bytes: Uint8Array, where: string): Record<string, Uint8Array[] | number[]> {
  const msg = _decode(bytes, where);
  const out: Record<string, Uint8Array[] | number[]> = {};
  for (const [k, f] of Object.entries(msg)) {
    const kind = _kind(f);
    if (kind === "bytes_list") out[k] = f.bytes_list.value ?? [];
    else if (kind === "int64_list") out[k] = (f.int64_list.value ?? []).map(_toNumber);
    else if (kind === "float_list") out[k] = Array.from(f.float_list.value ?? [], Number);
    else out[k] = [];
  }
  return out;
}

function _decode(bytes: Uint8Array, where: string): Record<string, any> {
  let msg: any;
  try {
    msg = ExampleType.decode(bytes);
  } catch (e) {
    throw new Error(`${where}: record is not a valid tf.train.Example (${(e as Error).message}).`);
  }
  return msg?.features?.feature ?? {};
}

/**
 * Reads the image bytes and the integer label of one Example. `where` names the record in errors
 * (e.g. `"train_x-0-5000.tfrec @ 1234"`).
 */
export function decodeExample(
  bytes: Uint8Array,
  keys: ExampleKeys,
  where: string,
): { image: Uint8Array; label: number } {
  const feats = _decode(bytes, where);
  const found = () => Object.keys(feats).sort().join(", ") || "none";
  const img = feats[keys.image];
  if (img === undefined) {
    throw new Error(
      `${where}: feature "${keys.image}" (image) is missing; the Example has keys: ${found()}.`,
    );
  }
  if (_kind(img) !== "bytes_list" || !img.bytes_list.value?.length) {
    throw new Error(
      `${where}: feature "${keys.image}" (image) is ${
        _kind(img)
      }, expected a bytes_list holding the encoded image.`,
    );
  }
  const lab = feats[keys.label];
  if (lab === undefined) {
    throw new Error(
      `${where}: feature "${keys.label}" (label) is missing; the Example has keys: ${found()}.`,
    );
  }
  if (_kind(lab) !== "int64_list" || lab.int64_list.value?.length !== 1) {
    const k = _kind(lab);
    throw new Error(
      `${where}: feature "${keys.label}" (label) is ${k}${
        k === "int64_list" ? ` with ${lab.int64_list.value?.length ?? 0} values` : ""
      }, expected an int64_list with exactly one value.`,
    );
  }
  const v = img.bytes_list.value[0] as Uint8Array;
  // protobufjs may hand back a Buffer view into `bytes`; copy into a plain Uint8Array we own.
  const image = new Uint8Array(v.length);
  image.set(v);
  return { image, label: _toNumber(lab.int64_list.value[0]) };
}
