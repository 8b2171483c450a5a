// Tests for lib/export/onnx.ts (+ graph.ts, proto.ts, ort.ts): the exported ONNX model computes the same logits
// as the TF.js forward pass of lib/model/bit.ts, for several architectures, input sizes (odd, non-square) and
// both padding modes (explicit per-layer pads, auto_pad), with random weights where GN scale/bias and the head
// matter. Run: deno test -A tests/export_onnx_test.ts
import { sharedDatasets } from "./_repo_copy.ts";
import assert from "assert";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { type BitSpec, bitSpec, buildModel, convLayout, type Model, normLayout } from "../lib/model/bit.ts";
import { Rng } from "../lib/rng.ts";
import { exportOnnx, type ParamValue, samePads, standardizeToOihw } from "../lib/export/onnx.ts";
import { createSession, loadOrt, runLogits } from "../lib/export/ort.ts";
import { decodeModel } from "../lib/export/proto.ts";
import { GraphBuilder } from "../lib/export/graph.ts";
import { readTFRecords } from "../lib/data/tfrecord.ts";
import { decodeExample } from "../lib/data/example.ts";
import { decodeImage } from "../lib/data/decode.ts";
import { argmax, top1 } from "../lib/eval/metrics.ts";

await initBackend({ backend: "wasm", quiet: true });

/** A narrow R-family-like bottleneck net: 7×7/2 root (pad 3), 3×3/2 max-pool (pad 1), symmetric pads. */
const NARROW_R =
  "bit-bottleneck:root=8,widths=16-32,units=1-2,strides=1-2,rootKernel=7,rootStride=2,pool=1,padding=symmetric," +
  "groups=4,wsEps=1e-10";
/** The same with TF "same" padding everywhere (max-pool "same" too). */
const NARROW_SAME =
  "bit-bottleneck:root=8,widths=16-32,units=1-2,strides=1-2,rootKernel=7,rootStride=2,pool=1,groups=4";

/** Build `name` with random conv kernels and randomised GN scale/bias and head (zero-initialised otherwise). */
function randomModel(name: string, seed: string, numClasses = 7): Model {
  const rng = new Rng(seed);
  const m = buildModel(bitSpec(name, numClasses), rng.fork("init"));
  const r = rng.fork("affine");
  for (const [pname, v] of m.params) {
    const d = new Float32Array(v.size);
    if (pname.endsWith("/scale")) { for (let i = 0; i < d.length; i++) d[i] = 1 + 0.5 * r.normal(); }
    else if (pname.endsWith("/bias")) { for (let i = 0; i < d.length; i++) d[i] = 0.5 * r.normal(); }
    else if (pname === "head/kernel") {
      for (let i = 0; i < d.length; i++) d[i] = r.normal() / Math.sqrt(v.shape[0]);
    } else continue;
    v.assign(tf.tensor(d, v.shape));
  }
  return m;
}

function randomInput(n: number, h: number, w: number, seed: string): Float32Array {
  const r = new Rng(seed);
  const x = new Float32Array(n * h * w * 3);
  for (let i = 0; i < x.length; i++) x[i] = r.normal();
  return x;
}

function tfLogits(m: Model, x: Float32Array, shape: [number, number, number, number]): Float32Array {
  return tf.tidy(() => m.apply(tf.tensor4d(x, shape))).dataSync() as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

async function ortLogits(bytes: Uint8Array, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const s = await createSession(bytes);
  try {
    return await runLogits(s, x, shape);
  } finally {
    await s.release();
  }
}

Deno.test("onnxruntime-node loads (the export tests need it)", async () => {
  assert.ok(await loadOrt(), "loadOrt() returned null: run with -A (needs --allow-ffi)");
});

Deno.test("samePads reproduces TF 'same' padding, extra cell after", () => {
  assert.deepEqual(samePads(32, 3, 1), [1, 1]);
  assert.deepEqual(samePads(32, 3, 2), [0, 1]); // even size, stride 2: asymmetric
  assert.deepEqual(samePads(31, 3, 2), [1, 1]);
  assert.deepEqual(samePads(32, 7, 2), [2, 3]);
  assert.deepEqual(samePads(16, 1, 2), [0, 0]);
  assert.deepEqual(samePads(5, 3, 3), [0, 1]); // out 2: (2-1)*3+3-5 = 1
});

Deno.test("standardizeToOihw: per-output-channel mean 0 / var 1 over H,W,In, HWIO→OIHW layout", () => {
  const [kh, kw, ci, co] = [3, 2, 2, 3];
  const w = new Float32Array(kh * kw * ci * co).map((_, i) => Math.sin(i * 1.7) * (1 + (i % co)));
  const out = standardizeToOihw(w, [kh, kw, ci, co], 1e-10);
  const n = kh * kw * ci;
  for (let o = 0; o < co; o++) {
    const f = out.subarray(o * n, (o + 1) * n);
    const mean = f.reduce((a, b) => a + b, 0) / n;
    const v = f.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    assert.ok(Math.abs(mean) < 1e-6 && Math.abs(v - 1) < 1e-5, `filter ${o}: mean ${mean} var ${v}`);
  }
  // element (o=2, c=1, y=2, x=1) comes from HWIO (y=2, x=1, c=1, o=2), standardised with filter 2's stats
  const src = [] as number[];
  for (let i = 0; i < n; i++) src.push(w[i * co + 2]);
  const m = src.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(src.reduce((a, b) => a + (b - m) ** 2, 0) / n);
  const expect = (w[((2 * kw + 1) * ci + 1) * co + 2] - m) / sd;
  assert.ok(Math.abs(out[((2 * ci + 1) * kh + 2) * kw + 1] - expect) < 1e-5);
});

Deno.test("graph builder: rejects undefined inputs and duplicate names", () => {
  const g = new GraphBuilder("t");
  g.input("x", ["n", 3]);
  assert.throws(() => g.node("Relu", ["nope"]), /Relu reads "nope"/);
  assert.throws(() => g.input("x", [1]), /"x" defined twice/);
  assert.throws(() => g.node("Relu", ["x"], { alpha: 0.5 }), /INT expected an integer/);
});

Deno.test("exported graph: IR 8, opset 17, one Conv per conv, GN as InstanceNormalization, NHWC input", () => {
  const m = randomModel("d10-6s", "graph");
  for (const [size, dims] of [[32, ["n", 32, 32, 3]], [undefined, ["n", "h", "w", 3]]] as const) {
    const model = decodeModel(exportOnnx(m.spec, m.params, size ? { imageSize: size } : {}));
    assert.equal(model.ir_version, 8);
    assert.equal(model.opset_import?.[0].version, 17);
    const hist: Record<string, number> = {};
    for (const n of model.graph!.node!) hist[n.op_type] = (hist[n.op_type] ?? 0) + 1;
    assert.equal(hist.Conv, convLayout(m.spec).length);
    assert.equal(hist.InstanceNormalization, normLayout(m.spec).length);
    assert.equal(hist.GroupNormalization, undefined);
    assert.equal(hist.Transpose, 1);
    assert.equal(hist.Gemm, 1);
    assert.equal(hist.Shape, size ? undefined : normLayout(m.spec).length);
    const inDims = model.graph!.input![0].type!.tensor_type!.shape!.dim!;
    assert.deepEqual(inDims.map((d) => d.dim_param ?? d.dim_value), dims);
    assert.equal(model.graph!.output![0].name, "logits");
    const spec = JSON.parse(model.metadata_props!.find((p) => p.key === "spec")!.value) as BitSpec;
    assert.deepEqual(spec, m.spec);
  }
  m.dispose();
});

// [architecture, H, W, batch, fixed input size?]
const CASES: [string, number, number, number, boolean][] = [
  ["d10-6s", 32, 32, 3, false],
  ["d10-6s", 32, 32, 2, true],
  ["d10-12", 32, 32, 2, true],
  ["d10-12", 31, 27, 2, false], // odd, non-square: symmetric pads at stride 2
  ["reference-s1", 21, 19, 2, true],
  ["reference-s2", 20, 18, 1, false],
  [NARROW_R, 29, 29, 2, true],
  [NARROW_R, 30, 26, 2, false],
  [NARROW_SAME, 30, 30, 2, false],
  [NARROW_SAME, 29, 31, 2, true],
];

Deno.test("ORT logits match TF.js within 1e-4 (architectures × sizes × pad modes)", async (t) => {
  for (const [name, h, w, n, fixed] of CASES) {
    const label = `${name.length > 24 ? name.slice(0, 21) + "…" : name} ${h}×${w} b${n} ${
      fixed ? "pads" : "auto_pad"
    }`;
    await t.step(label, async () => {
      const m = randomModel(name, `case/${name}/${h}/${w}`);
      const x = randomInput(n, h, w, `x/${h}/${w}`);
      const ref = tfLogits(m, x, [n, h, w, 3]);
      const got = await ortLogits(exportOnnx(m.spec, m.params, fixed ? { imageSize: [h, w] } : {}), x, [
        n,
        h,
        w,
        3,
      ]);
      const d = maxAbsDiff(ref, got);
      const scale = Math.max(...ref.map(Math.abs));
      assert.ok(scale > 0.1, `logits should not be trivially small (max |logit| ${scale})`);
      assert.ok(d < 1e-4, `${label}: max |ORT − TF.js| = ${d}`);
      m.dispose();
    });
  }
});

Deno.test("the check is sensitive: one changed GN scale moves the ORT logits by > 1e-3", async () => {
  const m = randomModel(NARROW_SAME, "sensitive");
  const x = randomInput(2, 30, 30, "xs");
  const ref = tfLogits(m, x, [2, 30, 30, 3]);
  const params = new Map<string, ParamValue>(m.params);
  const s = m.params.get("block2/unit02/gn2/scale")!;
  params.set("block2/unit02/gn2/scale", {
    shape: s.shape,
    data: (s.dataSync() as Float32Array).map((v) => v * 1.5),
  });
  assert.ok(maxAbsDiff(ref, await ortLogits(exportOnnx(m.spec, params), x, [2, 30, 30, 3])) > 1e-3);
  m.dispose();
});

Deno.test("exportOnnx names a missing, misshapen or foreign parameter", () => {
  const m = randomModel("d10-6s", "errors");
  const params = new Map<string, ParamValue>(m.params);
  params.delete("block2/unit01/gn1/bias");
  assert.throws(() => exportOnnx(m.spec, params), /"block2\/unit01\/gn1\/bias" is missing/);
  params.set("block2/unit01/gn1/bias", { shape: [3], data: new Float32Array(3) });
  assert.throws(() => exportOnnx(m.spec, params), /"block2\/unit01\/gn1\/bias" has shape \[3\]/);
  const extra = new Map<string, ParamValue>(m.params);
  extra.set("block9/unit01/conv1/kernel", { shape: [1], data: new Float32Array(1) });
  assert.throws(() => exportOnnx(m.spec, extra), /"block9\/unit01\/conv1\/kernel" is not part of this spec/);
  assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff]), "bad.onnx"), /bad\.onnx: not an ONNX/);
  m.dispose();
});

Deno.test("a d10-6s student exported to ONNX gives the same predictions on 96 real CIFAR-10 test images", async () => {
  const file = `${sharedDatasets}/cifar10/test/test_cifar10-0-5000.tfrec`;
  const n = 96;
  const x = new Float32Array(n * 32 * 32 * 3);
  const labels = new Int32Array(n);
  let i = 0;
  for await (const rec of readTFRecords(file)) {
    const ex = decodeExample(rec.data, { image: "image", label: "class" }, `${file} @ ${rec.offset}`);
    const img = await decodeImage(ex.image, `${file} @ ${rec.offset}`);
    assert.equal(img.data.length, 32 * 32 * 3);
    for (let k = 0; k < img.data.length; k++) x[i * 3072 + k] = img.data[k] / 127.5 - 1; // value_range(-1, 1)
    labels[i] = ex.label;
    if (++i === n) break;
  }
  const m = randomModel("d10-6s", "student", 10);
  const ref = tfLogits(m, x, [n, 32, 32, 3]);
  const got = await ortLogits(exportOnnx(m.spec, m.params, { imageSize: 32 }), x, [n, 32, 32, 3]);
  assert.ok(maxAbsDiff(ref, got) < 1e-4);
  // predictions: identical except where TF.js' own top-2 margin is below the numerical difference
  const a = argmax(ref, 10), b = argmax(got, 10);
  let differ = 0;
  for (let k = 0; k < n; k++) {
    if (a[k] === b[k]) continue;
    const row = Array.from(ref.subarray(k * 10, k * 10 + 10)).sort((p, q) => q - p);
    assert.ok(
      row[0] - row[1] < 1e-4,
      `image ${k}: TF.js says ${a[k]}, ORT ${b[k]} with margin ${row[0] - row[1]}`,
    );
    differ++;
  }
  assert.ok(differ <= 1, `${differ} predictions differ`);
  assert.equal(top1(got, labels, 10), top1(ref, labels, 10));
  m.dispose();
});
