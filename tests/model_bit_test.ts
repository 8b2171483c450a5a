// BiT ResNetV2 family: parameter and FLOP counts against the published/measured figures, forward shapes,
// a cross-check of the forward pass against an independent textbook implementation (moments-based GN/WS,
// explicit tf.pad), gradients reaching every parameter, and deterministic init.
import * as tf from "@tensorflow/tfjs";
import assert from "assert";
import {
  bitSpec,
  buildModel,
  convLayout,
  countParams,
  flops,
  groupsFor,
  paramShapes,
} from "../lib/model/bit.ts";
import { Rng } from "../lib/rng.ts";
import { initBackend } from "../lib/backend.ts";

await initBackend({ backend: "wasm", quiet: true });

Deno.test("parameter counts: R50x1@37 = 23,576,165 (seed repo), d10-12 = 171,334, d10-6s = 39,008", () => {
  assert.equal(countParams(bitSpec("R50x1", 37)), 23_576_165);
  assert.equal(countParams(bitSpec("d10-12", 10)), 171_334);
  assert.equal(countParams(bitSpec("d10-6s", 10)), 39_008);
  assert.equal(countParams(bitSpec("d10-16", 10)), 303_706);
  assert.equal(countParams(bitSpec("r8-16", 10)), 77_850);
  assert.equal(countParams(bitSpec("reference-s1", 10)), 308_378);
  // the parametric form describes the same net as the name
  const p = bitSpec("bit-basic:root=12,widths=24-48-96,units=1-1-1,strides=2-2-2", 10);
  assert.deepEqual(paramShapes(p), paramShapes(bitSpec("d10-12", 10)));
});

Deno.test("FLOPs: d10-12 13.05 M @32, d10-6s 3.29 M @32, reference-s1 129.4 M @64, R50x1 8.18 G @224", () => {
  assert.equal(flops(bitSpec("d10-12", 10), 32), 13_051_776);
  assert.equal(Math.round(flops(bitSpec("d10-6s", 10), 32) / 1e4), 329);
  assert.equal(Math.round(flops(bitSpec("reference-s1", 10), 64) / 1e5), 1294);
  assert.equal(Math.round(flops(bitSpec("reference-s2", 10), 64) / 1e5), 323);
  assert.equal(Math.round(flops(bitSpec("d10-16", 10), 32) / 1e4), 2291);
  assert.equal(Math.round(flops(bitSpec("R50x1", 1000), 224) / 1e7), 818);
});

Deno.test("specs: R-family layout, GN groups, and clear errors", () => {
  const r = bitSpec("R152x2", 37);
  assert.deepEqual(r.units, [3, 8, 36, 3]);
  assert.deepEqual(r.widths, [512, 1024, 2048, 4096]);
  assert.equal(r.root.width, 128);
  assert.deepEqual(bitSpec("R101x3", 5).units, [3, 4, 23, 3]);
  assert.equal(groupsFor(r, 128), 32);
  const d = bitSpec("d10-6s", 10);
  assert.deepEqual([6, 12, 24, 44, 256].map((c) => groupsFor(d, c)), [1, 3, 6, 11, 32]);
  const conv2 = convLayout(r).find((c) => c.name === "block2/unit01/conv2")!;
  assert.deepEqual([conv2.kernel, conv2.stride, conv2.pad], [3, 2, 1]);
  assert.throws(() => bitSpec("R34x1", 10), /unknown depth 34/);
  assert.throws(() => bitSpec("resnet", 10), /unknown architecture "resnet"/);
  assert.throws(() => bitSpec("bit-basic:root=8,widths=8,colour=red", 10), /unknown key "colour"/);
  assert.throws(() => bitSpec("bit-basic:widths=8", 10), /needs "root=…"/);
});

/** Textbook forward pass (moments GN/WS, explicit tf.pad, -inf pool padding, reduce-mean pool). */
function referenceForward(spec: ReturnType<typeof bitSpec>, p: Map<string, tf.Tensor>, x: tf.Tensor4D) {
  const ws = (w: tf.Tensor) => {
    const { mean, variance } = tf.moments(w, [0, 1, 2], true);
    return tf.div(tf.sub(w, mean), tf.sqrt(tf.add(variance, spec.wsEps!))) as tf.Tensor4D;
  };
  const gn = (h: tf.Tensor4D, name: string) => {
    const [b, hh, ww, c] = h.shape;
    const g = groupsFor(spec, c);
    const h5 = tf.reshape(h, [b, hh, ww, g, c / g]);
    const { mean, variance } = tf.moments(h5, [1, 2, 4], true);
    const n = tf.reshape(tf.div(tf.sub(h5, mean), tf.sqrt(tf.add(variance, 1e-5))), [b, hh, ww, c]);
    return tf.relu(tf.add(tf.mul(n, p.get(`${name}/scale`)!), p.get(`${name}/bias`)!)) as tf.Tensor4D;
  };
  const conv = (h: tf.Tensor4D, name: string, k: number, stride: number) => {
    const q = (k - 1) / 2;
    const padded = q > 0 ? tf.pad(h, [[0, 0], [q, q], [q, q], [0, 0]]) : h;
    return tf.conv2d(padded as tf.Tensor4D, ws(p.get(`${name}/kernel`)!), stride, "valid");
  };
  let h = conv(x, "root_block/conv_root", spec.root.kernel, spec.root.stride);
  h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]], -1e30) as tf.Tensor4D, 3, 2, "valid");
  let cin = spec.root.width;
  spec.widths.forEach((cout, s) => {
    for (let u = 0; u < spec.units[s]; u++) {
      const pre = `block${s + 1}/unit${String(u + 1).padStart(2, "0")}`;
      const stride = u === 0 ? spec.stageStrides[s] : 1;
      const a = gn(h, `${pre}/gn1`);
      const res = cin !== cout || stride !== 1 ? conv(a, `${pre}/conv_proj`, 1, stride) : h;
      let y = conv(a, `${pre}/conv1`, 1, 1);
      y = conv(gn(y, `${pre}/gn2`), `${pre}/conv2`, 3, stride);
      y = conv(gn(y, `${pre}/gn3`), `${pre}/conv3`, 1, 1);
      h = tf.add(y, res);
      cin = cout;
    }
  });
  const f = tf.mean(gn(h, "norm-pre-head"), [1, 2]);
  return tf.add(tf.matMul(f, p.get("head/kernel")! as tf.Tensor2D), p.get("head/bias")!);
}

function randomize(params: Map<string, tf.Variable>, rng: Rng, only?: RegExp) {
  for (const [name, v] of params) {
    if (only && !only.test(name)) continue;
    const d = new Float32Array(v.size);
    for (let i = 0; i < d.length; i++) d[i] = rng.normal() * 0.5 + (name.endsWith("/scale") ? 1 : 0);
    v.assign(tf.tensor(d, v.shape));
  }
}

Deno.test("bottleneck forward (symmetric pads, root pool) equals a textbook implementation", () => {
  const spec = bitSpec(
    "bit-bottleneck:root=8,widths=16-32,units=2-1,strides=1-2,rootKernel=7,rootStride=2,pool=1," +
      "padding=symmetric,groups=2,minGroupChannels=0,wsEps=1e-10",
    5,
  );
  const model = buildModel(spec, new Rng("test/bottleneck"));
  randomize(model.params, new Rng(7));
  const rng = new Rng(3);
  const x = tf.tensor4d(Float32Array.from({ length: 2 * 19 * 19 * 3 }, () => rng.normal()), [2, 19, 19, 3]);
  const [got, want] = tf.tidy(
    () => [model.apply(x).arraySync(), referenceForward(spec, model.params, x).arraySync()],
  );
  assert.deepEqual([got.length, got[0].length], [2, 5]);
  const g = (got as number[][]).flat(), w = (want as number[][]).flat();
  const scale = Math.max(...w.map(Math.abs));
  for (let i = 0; i < g.length; i++) {
    assert.ok(Math.abs(g[i] - w[i]) < 1e-4 * scale, `logit ${i}: ${g[i]} vs ${w[i]}`);
  }
  // gradients too (this covers the root max-pool with pad 1 against a -inf tf.pad + valid pool)
  const vars = [...model.params.values()];
  const loss = (f: () => tf.Tensor) => () => tf.sum(tf.sin(f())) as tf.Scalar;
  const ga = tf.variableGrads(loss(() => model.apply(x)), vars);
  const gb = tf.variableGrads(loss(() => referenceForward(spec, model.params, x)), vars);
  for (const [name, v] of model.params) {
    const a = ga.grads[v.name].dataSync(), b = gb.grads[v.name].dataSync();
    const sc = Math.max(1e-3, ...Array.from(b, Math.abs));
    for (let i = 0; i < a.length; i++) {
      assert.ok(Math.abs(a[i] - b[i]) < 2e-3 * sc, `grad ${name}[${i}]: ${a[i]} vs ${b[i]}`);
    }
  }
  tf.dispose([ga.value, gb.value, ...Object.values(ga.grads), ...Object.values(gb.grads)]);
  model.dispose();
  x.dispose();
});

Deno.test("forward shapes: d10-6s @32 and R50x1 @32; zero head gives zero logits", () => {
  const before = tf.memory().numTensors;
  for (const [name, size, classes] of [["d10-6s", 32, 10], ["R50x1", 32, 37]] as const) {
    const m = buildModel(bitSpec(name, classes), new Rng(`test/${name}`));
    assert.equal(m.paramCount(), countParams(m.spec));
    const y = tf.tidy(() => m.apply(tf.ones([2, size, size, 3])));
    assert.deepEqual(y.shape, [2, classes]);
    assert.ok(y.dataSync().every((v) => v === 0));
    y.dispose();
    m.dispose();
  }
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("gradients reach every parameter (basic and bottleneck), init is deterministic per seed", () => {
  for (const name of ["d10-6s", "bit-bottleneck:root=8,widths=16-32,units=1-1,strides=1-2,pool=1,groups=2"]) {
    const m = buildModel(bitSpec(name, 4), new Rng("test/grads"));
    randomize(m.params, new Rng(1), /^head\//); // a zero head blocks every gradient below it
    const rng = new Rng(2);
    const x = tf.tensor4d(Float32Array.from({ length: 2 * 16 * 16 * 3 }, () => rng.normal()), [2, 16, 16, 3]);
    const vars = [...m.params.values()];
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(m.apply(x))) as tf.Scalar, vars);
    for (const [pname, v] of m.params) {
      const g = grads[v.name].dataSync();
      let norm = 0;
      for (const e of g) norm += e * e;
      assert.ok(Number.isFinite(norm) && norm > 0, `${name}: gradient of ${pname} is ${norm}`);
    }
    tf.dispose([value, x, ...Object.values(grads)]);
    m.dispose();
  }
  const a = buildModel(bitSpec("d10-6s", 10), new Rng("seed/a"));
  const a2 = buildModel(bitSpec("d10-6s", 10), new Rng("seed/a"));
  const b = buildModel(bitSpec("d10-6s", 10), new Rng("seed/b"));
  const k = "block2/unit01/conv1/kernel";
  assert.deepEqual(a.params.get(k)!.dataSync(), a2.params.get(k)!.dataSync());
  assert.notDeepEqual(a.params.get(k)!.dataSync(), b.params.get(k)!.dataSync());
  const bound = 1 / Math.sqrt(3 * 3 * 12);
  const data = a.params.get(k)!.dataSync();
  assert.ok(data.every((v) => Math.abs(v) <= bound) && data.some((v) => Math.abs(v) > 0.9 * bound));
  for (const m of [a, a2, b]) m.dispose();
});

Deno.test("frozen(): the same logits bit for bit as apply(), no tensor left after dispose, a snapshot of the weights", () => {
  const model = buildModel(bitSpec("d10-6s", 10), new Rng("frozen-test"));
  const rng = new Rng("frozen-test/x");
  // a non-zero head so the logits depend on every layer
  const head = model.params.get("head/kernel")!;
  head.assign(tf.tensor(new Float32Array(head.size).map(() => rng.normal()), head.shape));
  const x = tf.tensor4d(new Float32Array(4 * 32 * 32 * 3).map(() => rng.normal()), [4, 32, 32, 3]);
  const want = tf.tidy(() => model.apply(x).dataSync());
  const before = tf.memory().numTensors;
  const f = model.frozen();
  const got = tf.tidy(() => f.apply(x).dataSync());
  assert.deepEqual(got, want);
  // later updates are not seen by the snapshot
  const k = model.params.get("root_block/conv_root/kernel")!;
  tf.tidy(() => k.assign(tf.mul(k, -1)));
  assert.deepEqual(tf.tidy(() => f.apply(x).dataSync()), want);
  f.dispose();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x]);
  model.dispose();
});
