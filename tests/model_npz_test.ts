// .npz import: a zip/npy writer of our own (stored and deflated members, npy v1/v2, float16/32/64) produces
// checkpoints in big_vision and BiT-release naming; loadPretrained must map them onto a model exactly.
import * as tf from "@tensorflow/tfjs";
import assert from "assert";
import * as zlib from "node:zlib";
import { bitSpec, buildModel, type Model } from "../lib/model/bit.ts";
import { loadPretrained, mapBitNames, parseNpy, readNpz } from "../lib/model/npz.ts";
import { saveWeights } from "../lib/model/weights.ts";
import { Rng } from "../lib/rng.ts";

await tf.setBackend("cpu");

const zcrc = (zlib as unknown as { crc32(b: Uint8Array): number }).crc32;

function npy(
  shape: number[],
  values: Float32Array,
  dtype: "<f4" | "<f8" | "<f2" = "<f4",
  version = 1,
): Uint8Array {
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': (${shape.join(", ")}${
    shape.length === 1 ? "," : ""
  }), }`;
  const pre = version === 1 ? 10 : 12;
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const header = dict.padEnd(total - pre - 1, " ") + "\n";
  const size = Number(dtype.slice(2));
  const out = new Uint8Array(total + values.length * size);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), pre);
  for (let i = 0; i < values.length; i++) {
    const o = total + i * size;
    if (size === 4) dv.setFloat32(o, values[i], true);
    else if (size === 8) dv.setFloat64(o, values[i], true);
    else dv.setUint16(o, toHalf(values[i]), true);
  }
  return out;
}

/** float → IEEE half for values that are exactly representable (the test only uses such values). */
function toHalf(v: number): number {
  if (v === 0) return 0;
  const s = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return s | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

function zip(files: { name: string; data: Uint8Array; deflate?: boolean }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = new TextEncoder().encode(f.name);
    const body = f.deflate ? new Uint8Array(zlib.deflateRawSync(f.data)) : f.data;
    const crc = zcrc(f.data) >>> 0;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, f.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, f.data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const c = new Uint8Array(46 + name.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(10, f.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, f.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    c.set(name, 46);
    parts.push(local, body);
    central.push(c);
    offset += local.length + body.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, end];
  const out = new Uint8Array(all.reduce((a, p) => a + p.length, 0));
  let p = 0;
  for (const x of all) out.set(x, p), p += x.length;
  return out;
}

const ARCH = "bit-bottleneck:root=8,widths=16-32,units=2-1,strides=1-2,pool=1,groups=2,padding=symmetric";

/** A model whose every parameter is distinct and exactly representable in float16 (k/64, |k| < 512). */
function sourceModel(classes: number): Model {
  const m = buildModel(bitSpec(ARCH, classes), new Rng("npz/src"));
  const rng = new Rng(11);
  for (const v of m.params.values()) {
    v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => (rng.int(1023) - 511) / 64), v.shape));
  }
  return m;
}

function releaseNameOf(ours: string): string {
  const gn = { scale: "gamma", bias: "beta" } as Record<string, string>;
  const abc = ["", "a", "b", "c"];
  let m: RegExpExecArray | null;
  if (ours === "root_block/conv_root/kernel") return "resnet/root_block/standardized_conv2d/kernel";
  if ((m = /^norm-pre-head\/(scale|bias)$/.exec(ours))) return `resnet/group_norm/${gn[m[1]]}`;
  if ((m = /^head\/(kernel|bias)$/.exec(ours))) return `resnet/head/conv2d/${m[1]}`;
  if ((m = /^(.*)\/conv_proj\/kernel$/.exec(ours))) return `resnet/${m[1]}/a/proj/standardized_conv2d/kernel`;
  if ((m = /^(.*)\/conv(\d)\/kernel$/.exec(ours))) {
    return `resnet/${m[1]}/${abc[+m[2]]}/standardized_conv2d/kernel`;
  }
  if ((m = /^(.*)\/gn(\d)\/(scale|bias)$/.exec(ours))) {
    return `resnet/${m[1]}/${abc[+m[2]]}/group_norm/${gn[m[3]]}`;
  }
  throw new Error(ours);
}

function assertSameParams(a: Model, b: Model, skip: RegExp | null = null) {
  for (const [name, v] of a.params) {
    if (skip?.test(name)) continue;
    assert.deepEqual(Array.from(b.params.get(name)!.dataSync()), Array.from(v.dataSync()), name);
  }
}

Deno.test("big_vision naming under a prefix, GN [1,1,1,C], deflated + float64 + float16 + npy v2 members", async () => {
  const dir = await Deno.makeTempDir();
  const src = sourceModel(5);
  const files = [...src.params].map(([name, v], i) => {
    const gnShape = /\/(scale|bias)$/.test(name) && !name.startsWith("head/") ? [1, 1, 1, v.size] : v.shape;
    const dtype = i % 4 === 1 ? "<f8" : i % 4 === 2 ? "<f2" : "<f4";
    return {
      name: `params/${name}.npy`,
      data: npy(gnShape, v.dataSync() as Float32Array, dtype, i % 5 === 3 ? 2 : 1),
      deflate: i % 3 === 0,
    };
  });
  files.push({ name: "opt/some/moment.npy", data: npy([2], new Float32Array([1, 2])), deflate: false });
  await Deno.writeFile(`${dir}/bv.npz`, zip(files));
  const dst = buildModel(bitSpec(ARCH, 5), new Rng("npz/dst"));
  const report = await loadPretrained(dst, `${dir}/bv.npz`);
  assert.equal(report.format, "big_vision");
  assert.deepEqual(report.skipped, []);
  assert.equal(report.assigned.length, src.params.size);
  assertSameParams(src, dst);
  src.dispose();
  dst.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("BiT-release naming maps to ours; a head of another class count is skipped and left zero", async () => {
  const dir = await Deno.makeTempDir();
  const src = sourceModel(21);
  const files = [...src.params].map(([name, v], i) => {
    const shape = name === "head/kernel" ? [1, 1, ...v.shape] : v.shape;
    return {
      name: `${releaseNameOf(name)}.npy`,
      data: npy(shape, v.dataSync() as Float32Array),
      deflate: i % 2 === 0,
    };
  });
  await Deno.writeFile(`${dir}/BiT-M.npz`, zip(files));
  const mapped = mapBitNames(readNpz(await Deno.readFile(`${dir}/BiT-M.npz`), "BiT-M.npz"));
  assert.equal(mapped.format, "bit-release");
  assert.deepEqual(mapped.unmapped, []);
  assert.deepEqual([...mapped.tensors.keys()].sort(), [...src.params.keys()].sort());
  assert.deepEqual(mapped.tensors.get("head/kernel")!.shape, [32, 21]);
  const dst = buildModel(bitSpec(ARCH, 7), new Rng("npz/dst"));
  dst.params.get("head/bias")!.assign(tf.ones([7]));
  const report = await loadPretrained(dst, `file://${dir}/BiT-M.npz`);
  assert.deepEqual(report.skipped, ["head/kernel", "head/bias"]);
  assertSameParams(src, dst, /^head\//);
  assert.ok(dst.params.get("head/bias")!.dataSync().every((x) => x === 0));
  // same class count: the head is loaded too
  const dst21 = buildModel(bitSpec(ARCH, 21), new Rng("npz/dst"));
  await loadPretrained(dst21, `${dir}/BiT-M.npz`);
  assertSameParams(src, dst21);
  for (const m of [src, dst, dst21]) m.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadPretrained: clear errors for missing names, wrong shapes, non-BiT and damaged files; our .bin", async () => {
  const dir = await Deno.makeTempDir();
  const src = sourceModel(5);
  const entries = [...src.params].map(([name, v]) => ({ name, v }));
  const write = async (file: string, list: { name: string; v: tf.Tensor; shape?: number[] }[]) =>
    await Deno.writeFile(
      `${dir}/${file}`,
      zip(
        list.map((e) => ({
          name: `${e.name}.npy`,
          data: npy(e.shape ?? e.v.shape, e.v.dataSync() as Float32Array),
        })),
      ),
    );
  const dst = buildModel(bitSpec(ARCH, 5), new Rng("npz/dst"));
  await write("missing.npz", entries.filter((e) => e.name !== "block2/unit01/conv2/kernel"));
  await assert.rejects(
    loadPretrained(dst, `${dir}/missing.npz`),
    /missing\.npz: 1 parameter\(s\) missing, e\.g\. "block2\/unit01\/conv2\/kernel"/,
  );
  await write(
    "shape.npz",
    entries.map((e) => e.name === "block1/unit01/conv1/kernel" ? { ...e, shape: [1, 1, 4, 8] } : e),
  );
  await assert.rejects(
    loadPretrained(dst, `${dir}/shape.npz`),
    /"block1\/unit01\/conv1\/kernel" has shape \[1,1,4,8\], the model needs \[1,1,8,4\]/,
  );
  await write("other.npz", [{ name: "dense/kernel", v: src.params.get("head/kernel")! }]);
  await assert.rejects(loadPretrained(dst, `${dir}/other.npz`), /other\.npz: not a BiT checkpoint/);
  const good = zip([{
    name: "root_block/conv_root/kernel.npy",
    data: npy([2], new Float32Array([1, 2])),
    deflate: true,
  }]);
  const bad = good.slice();
  bad[30 + "root_block/conv_root/kernel.npy".length + 3] ^= 0xff; // inside the deflated member
  await Deno.writeFile(`${dir}/bad.npz`, bad);
  await assert.rejects(
    loadPretrained(dst, `${dir}/bad.npz`),
    /bad\.npz: entry "root_block\/conv_root\/kernel\.npy" .*(inflate|CRC-32)/,
  );
  await Deno.writeFile(`${dir}/junk.npz`, new TextEncoder().encode("hello"));
  await assert.rejects(loadPretrained(dst, `${dir}/junk.npz`), /junk\.npz: neither an \.npz/);
  await assert.rejects(loadPretrained(dst, `${dir}/absent.npz`), /absent\.npz: cannot read/);
  // our own weights files load the same way
  await saveWeights(`${dir}/w.bin`, src.params);
  assert.equal((await loadPretrained(dst, `${dir}/w.bin`)).format, "funmatch");
  assertSameParams(src, dst);
  src.dispose();
  dst.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("parseNpy: float16/64 conversion, scalar shape, refuses Fortran order and big-endian", () => {
  const v = new Float32Array([0.5, -2, 1024, 0.0009765625]);
  for (const dt of ["<f2", "<f4", "<f8"] as const) {
    assert.deepEqual(Array.from(parseNpy(npy([2, 2], v, dt), "x").data), Array.from(v));
  }
  assert.deepEqual(parseNpy(npy([], new Float32Array([3])), "s").shape, []);
  const edit = (from: string, to: string) => {
    const text = Array.from(npy([2], new Float32Array(2)), (b) => String.fromCharCode(b)).join("").replace(
      from,
      to,
    );
    return Uint8Array.from(text, (c) => c.charCodeAt(0));
  };
  assert.throws(() => parseNpy(edit("False", "True "), "f.npy"), /f\.npy: Fortran/);
  assert.throws(() => parseNpy(edit("<f4", ">f4"), "b.npy"), /b\.npy: big-endian/);
});
