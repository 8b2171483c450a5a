// Optimizer updates checked against plain-JS loops (not tfjs), plus state round trips and leak checks.
import * as tf from "@tensorflow/tfjs";
import assert from "assert";
import { Adam, SgdMomentum, valueAndGrads } from "../lib/train/optim.ts";

await tf.setBackend("cpu");

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

function makeParams(): Map<string, tf.Variable> {
  return new Map([
    ["block1/unit01/conv1/kernel", tf.variable(tf.tensor([0.5, -1, 2, 0.25], [2, 2]))],
    ["block1/unit01/gn1/scale", tf.variable(tf.tensor([1, -2, 3]))],
  ]);
}

/** big_vision Adam for one parameter, one step, in plain JS. */
function adamRef(
  w: number[],
  g: number[],
  m: number[],
  v: number[],
  t: number,
  o: { lr: number; wd: number; clip: number; sched: number; decay: boolean; gnorm: number },
) {
  const c = o.gnorm > o.clip ? o.clip / o.gnorm : 1;
  const nw: number[] = [], nm: number[] = [], nv: number[] = [];
  for (let i = 0; i < w.length; i++) {
    const gi = g[i] * c;
    nm.push(0.9 * m[i] + 0.1 * gi);
    nv.push(0.999 * v[i] + 0.001 * gi * gi);
    const mh = nm[i] / (1 - 0.9 ** t), vh = nv[i] / (1 - 0.999 ** t);
    let u = o.lr * mh / (Math.sqrt(vh) + 1e-8);
    if (o.decay) u += o.wd * w[i];
    nw.push(w[i] - o.sched * u);
  }
  return { w: nw, m: nm, v: nv };
}

Deno.test("Adam: two steps match a hand computation (global-norm clip, wd on kernels only, ×sched)", () => {
  const params = makeParams();
  const opt = new Adam(params, { lr: 0.01, wd: 0.1, clipNorm: 1.0 });
  const gk = [[3, -4, 0, 0], [0.1, 0.2, -0.1, 0.05]];
  const gs = [[0, 0, 0], [0.3, 0, -0.2]];
  const scheds = [0.5, 0.8];
  let wk = [0.5, -1, 2, 0.25], ws = [1, -2, 3];
  let mk = [0, 0, 0, 0], vk = [0, 0, 0, 0], ms = [0, 0, 0], vs = [0, 0, 0];
  for (let s = 0; s < 2; s++) {
    const gnorm = Math.sqrt([...gk[s], ...gs[s]].reduce((a, x) => a + x * x, 0));
    const grads = new Map<string, tf.Tensor>([
      ["block1/unit01/conv1/kernel", tf.tensor(gk[s], [2, 2])],
      ["block1/unit01/gn1/scale", tf.tensor(gs[s])],
    ]);
    const info = opt.step(grads, scheds[s]);
    tf.dispose([...grads.values()]);
    close([info.gradNorm], [gnorm], 1e-6, "gradNorm");
    assert.equal(info.count, s + 1);
    const o = { lr: 0.01, wd: 0.1, clip: 1.0, sched: scheds[s], gnorm };
    const rk = adamRef(wk, gk[s], mk, vk, s + 1, { ...o, decay: true });
    const rs = adamRef(ws, gs[s], ms, vs, s + 1, { ...o, decay: false });
    [wk, mk, vk, ws, ms, vs] = [rk.w, rk.m, rk.v, rs.w, rs.m, rs.v];
    close(params.get("block1/unit01/conv1/kernel")!.dataSync(), wk, 1e-5, `kernel step ${s}`);
    close(params.get("block1/unit01/gn1/scale")!.dataSync(), ws, 1e-5, `scale step ${s}`);
  }
  // The first step's gradient norm is 5: clipped to 1 → the raw Adam direction is ±1 regardless, but the moments
  // must hold the clipped values.
  close(opt.state().get("mu/block1/unit01/conv1/kernel")!.dataSync(), mk, 1e-5, "mu");
  opt.dispose();
  tf.dispose([...params.values()]);
});

Deno.test("Adam: clipping is by global norm, not per tensor", () => {
  const params = makeParams();
  const opt = new Adam(params, { lr: 1, clipNorm: 1.0 });
  // kernel grad norm 5, scale grad norm 0.5: per-tensor clipping would leave the scale grad at 0.5.
  const grads = new Map<string, tf.Tensor>([
    ["block1/unit01/conv1/kernel", tf.tensor([3, 4, 0, 0], [2, 2])],
    ["block1/unit01/gn1/scale", tf.tensor([0.5, 0, 0])],
  ]);
  opt.step(grads, 1);
  const mu = opt.state().get("mu/block1/unit01/gn1/scale")!.dataSync();
  const gn = Math.sqrt(25 + 0.25);
  close([mu[0]], [0.1 * 0.5 / gn], 1e-6, "clipped mu");
  tf.dispose([...grads.values()]);
  opt.dispose();
  tf.dispose([...params.values()]);
});

Deno.test("Adam: zero gradient + wd decays kernels only, scaled by sched but not by lr", () => {
  const params = makeParams();
  const opt = new Adam(params, { lr: 123, wd: 0.5 });
  const grads = new Map<string, tf.Tensor>([
    ["block1/unit01/conv1/kernel", tf.zeros([2, 2])],
    ["block1/unit01/gn1/scale", tf.zeros([3])],
  ]);
  opt.step(grads, 0.5);
  close(
    params.get("block1/unit01/conv1/kernel")!.dataSync(),
    [0.5, -1, 2, 0.25].map((w) => w * 0.75),
    1e-6,
    "k",
  );
  close(params.get("block1/unit01/gn1/scale")!.dataSync(), [1, -2, 3], 0, "scale untouched");
  tf.dispose([...grads.values()]);
  opt.dispose();
  tf.dispose([...params.values()]);
});

Deno.test("SgdMomentum: nesterov and plain match PyTorch-style loops", () => {
  for (const nesterov of [false, true]) {
    const params = makeParams();
    const opt = new SgdMomentum(params, { lr: 0.1, momentum: 0.9, nesterov, wd: 0.01 });
    let w = [0.5, -1, 2, 0.25], buf = [0, 0, 0, 0];
    let s = [1, -2, 3], bs = [0, 0, 0];
    const gk = [[1, 2, 3, 4], [-1, 0.5, 0, 2], [0.1, 0.1, 0.1, 0.1]];
    const gsc = [[1, 1, 1], [0, 2, 0], [1, 0, -1]];
    for (let t = 0; t < 3; t++) {
      const sched = [1, 0.5, 0.25][t];
      const grads = new Map<string, tf.Tensor>([
        ["block1/unit01/conv1/kernel", tf.tensor(gk[t], [2, 2])],
        ["block1/unit01/gn1/scale", tf.tensor(gsc[t])],
      ]);
      opt.step(grads, sched);
      tf.dispose([...grads.values()]);
      const upd = (wv: number[], bv: number[], g: number[], decay: boolean) => {
        const nb: number[] = [], nw: number[] = [];
        for (let i = 0; i < wv.length; i++) {
          const d = g[i] + (decay ? 0.01 * wv[i] : 0);
          nb.push(0.9 * bv[i] + d);
          nw.push(wv[i] - 0.1 * sched * (nesterov ? d + 0.9 * nb[i] : nb[i]));
        }
        return [nw, nb];
      };
      [w, buf] = upd(w, buf, gk[t], true);
      [s, bs] = upd(s, bs, gsc[t], false);
      close(
        params.get("block1/unit01/conv1/kernel")!.dataSync(),
        w,
        1e-5,
        `sgd k nesterov=${nesterov} t=${t}`,
      );
      close(params.get("block1/unit01/gn1/scale")!.dataSync(), s, 1e-5, `sgd s nesterov=${nesterov} t=${t}`);
    }
    opt.dispose();
    tf.dispose([...params.values()]);
  }
});

Deno.test("Adam: state/restore resumes exactly, and bad state is refused", () => {
  const gradsAt = (t: number) =>
    new Map<string, tf.Tensor>([
      ["block1/unit01/conv1/kernel", tf.tensor([t, -t, 0.5, 1], [2, 2])],
      ["block1/unit01/gn1/scale", tf.tensor([0.1 * t, 0, 1])],
    ]);
  const a = makeParams();
  const optA = new Adam(a, { lr: 0.1, wd: 0.01 });
  for (let t = 0; t < 4; t++) {
    const g = gradsAt(t);
    optA.step(g, 1);
    tf.dispose([...g.values()]);
  }
  // b: 2 steps, snapshot (as plain arrays, like loadWeights gives), new optimizer restored, 2 more steps
  const b = makeParams();
  const optB = new Adam(b, { lr: 0.1, wd: 0.01 });
  for (let t = 0; t < 2; t++) {
    const g = gradsAt(t);
    optB.step(g, 1);
    tf.dispose([...g.values()]);
  }
  const snap = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of optB.state()) snap.set(k, { shape: v.shape, data: v.dataSync() as Float32Array });
  const optC = new Adam(b, { lr: 0.1, wd: 0.01 });
  optC.restore(snap);
  assert.equal(optC.steps, 2);
  for (let t = 2; t < 4; t++) {
    const g = gradsAt(t);
    optC.step(g, 1);
    tf.dispose([...g.values()]);
  }
  for (const k of a.keys()) assert.deepEqual(b.get(k)!.dataSync(), a.get(k)!.dataSync(), k);
  const bad = new Map(snap);
  bad.delete("nu/block1/unit01/gn1/scale");
  assert.throws(() => optC.restore(bad), /nu\/block1\/unit01\/gn1\/scale/);
  const wrong = new Map(snap);
  wrong.set("mu/block1/unit01/gn1/scale", { shape: [4], data: new Float32Array(4) });
  assert.throws(() => optC.restore(wrong), /expected shape \[3\]/);
  assert.throws(
    () => optC.step(new Map([["block1/unit01/conv1/kernel", tf.zeros([2, 2])]]), 1),
    /no gradient/,
  );
  for (const o of [optA, optB, optC]) o.dispose();
  tf.dispose([...a.values(), ...b.values()]);
});

Deno.test("optimizer steps allocate no lasting tensors; valueAndGrads maps grads by our names", () => {
  const params = makeParams();
  const opt = new Adam(params, { lr: 0.01, wd: 1e-4 });
  const x = tf.tensor([[1, 2], [3, 4]]);
  const stepOnce = () => {
    const { value, grads } = valueAndGrads(params, () => {
      const k = params.get("block1/unit01/conv1/kernel")!;
      const s = params.get("block1/unit01/gn1/scale")!;
      return tf.add(tf.sum(tf.square(tf.matMul(x, k))), tf.sum(s)) as tf.Scalar;
    });
    assert.deepEqual([...grads.keys()], [...params.keys()]);
    opt.step(grads, 1);
    opt.state();
    tf.dispose([value, ...grads.values()]);
  };
  stepOnce();
  const n = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) stepOnce();
  assert.equal(tf.memory().numTensors, n);
  opt.dispose();
  x.dispose();
  tf.dispose([...params.values()]);
});
