/**
 * The BiT ResNetV2 family (GroupNorm + weight-standardised convs, pre-activation units) that both the teacher
 * and the student are made of: the paper's R50x1 / R101x3 / R152x2 bottleneck nets and small basic-block nets
 * sized for a 2-core CPU (d10-12, d10-6s, … from research/cifar10-budget.md).
 *
 * Why one module: the architecture is described once, as a {@link BitSpec}, and everything that must agree on
 * it (the forward pass, parameter names and shapes, FLOP and parameter counts, the .npz importer, the ONNX
 * exporter) reads the same {@link convLayout}. Parameter names are big_vision `bit_paper` names, so weights move
 * between big_vision checkpoints, our weights.bin and ONNX without a renaming table.
 *
 * The forward pass stays 4-D (GroupNorm and weight standardisation come from lib/model/norm.ts, written for
 * wasm), uses no strided slices, and pools globally with a matMul. The R-family root max-pool (3×3/2, pad 1)
 * is required by the architecture; its gradient on wasm is the kernels engineer's MaxPoolGrad.
 */
import * as tf from "@tensorflow/tfjs";
import { groupNormRelu, standardizeKernel } from "./norm.ts";
import type { Rng } from "../rng.ts";

/** Architecture of one BiT ResNetV2 (contract in /tmp/contracts.md, extended with optional numerics fields). */
export interface BitSpec {
  /** units (residual blocks) per stage. */
  units: number[];
  /** output width per stage (bottleneck: mid width = out/4). */
  widths: number[];
  block: "bottleneck" | "basic";
  /** stem conv (and the 3×3/2 max-pool when `pool`). */
  root: { kernel: number; stride: number; pool: boolean; width: number };
  /** stride of the first unit of each stage. */
  stageStrides: number[];
  /** GN groups (the maximum when `minGroupChannels` is set). */
  groups: number;
  numClasses: number;
  /** when set, a C-channel GroupNorm uses the largest divisor of C ≤ min(groups, floor(C / minGroupChannels)). */
  minGroupChannels?: number;
  /** weight-standardisation eps (default 1e-10, big_vision). */
  wsEps?: number;
  /** GroupNorm eps (default 1e-5). */
  gnEps?: number;
  /**
   * "symmetric": every k×k conv pads (k−1)/2 on each side and the max-pool pads 1 (big_vision: root pad 3, conv2
   * pad 1 even at stride 2, pool pad 1). "same": TF "same" padding everywhere. Default "same".
   */
  padding?: "same" | "symmetric";
  /** conv-kernel init: "uniform" U(±1/√fan_in) (PyTorch default); "lecun" truncated-normal var 1/fan_in (flax). */
  init?: "uniform" | "lecun";
  /** the name bitSpec() was given, for logs and cards. */
  name?: string;
}

/** tfjs' conv2d padding argument ('same' | 'valid' | number | explicit [[0,0],[t,b],[l,r],[0,0]]). */
type ConvPad = Parameters<typeof tf.conv2d>[3];

/** One convolution of a spec, in forward order; `pad` is per side ("same" means TF same padding). */
export interface ConvDesc {
  name: string;
  kernel: number;
  stride: number;
  cin: number;
  cout: number;
  pad: "same" | number;
}

/** One GroupNorm of a spec. */
export interface NormDesc {
  name: string;
  channels: number;
  groups: number;
}

/** A built model: parameters as tf.Variables keyed by big_vision name, and its forward pass. */
export interface Model {
  spec: BitSpec;
  params: Map<string, tf.Variable>;
  /** logits [B, numClasses] for NHWC float32 input. */
  apply(x: tf.Tensor4D): tf.Tensor2D;
  /**
   * An inference-only forward over a snapshot of the current weights, with every conv kernel standardised once
   * instead of on every call (no gradients; later updates are not seen). Dispose it when done.
   */
  frozen(): FrozenForward;
  paramCount(): number;
  dispose(): void;
}

/** See {@link Model.frozen}. */
export interface FrozenForward {
  apply(x: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

// ---------------------------------------------------------------------------------------------------------
// Specs

function rFamily(depth: number, width: number, numClasses: number, name: string): BitSpec {
  const units = ({ 26: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3] } as Record<
    number,
    number[]
  >)[depth];
  if (!units) throw new Error(`bitSpec: unknown depth ${depth} in "${name}" (expected 26, 50, 101 or 152).`);
  return {
    name,
    units,
    widths: [256, 512, 1024, 2048].map((c) => c * width),
    block: "bottleneck",
    root: { kernel: 7, stride: 2, pool: true, width: 64 * width },
    stageStrides: [1, 2, 2, 2],
    groups: 32,
    numClasses,
    wsEps: 1e-10,
    gnEps: 1e-5,
    padding: "symmetric",
    init: "lecun",
  };
}

function small(name: string, root: number, widths: number[], strides: number[], numClasses: number): BitSpec {
  return {
    name,
    units: widths.map(() => 1),
    widths,
    block: "basic",
    root: { kernel: 3, stride: 1, pool: false, width: root },
    stageStrides: strides,
    groups: 32,
    minGroupChannels: 4,
    numClasses,
    wsEps: 1e-6,
    gnEps: 1e-5,
    padding: "same",
    init: "uniform",
  };
}

function parseList(s: string, key: string, name: string): number[] {
  const out = s.split("-").map(Number);
  if (out.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new Error(`bitSpec: "${key}=${s}" in "${name}" must be positive integers joined by "-".`);
  }
  return out;
}

/** "bit-basic:root=12,widths=24-48-96,units=1-1-1,strides=2-2-2[,rootKernel=3,rootStride=1,pool=0,...]". */
function parametric(name: string, numClasses: number): BitSpec {
  const m = /^bit-(basic|bottleneck):(.*)$/.exec(name)!;
  const block = m[1] as "basic" | "bottleneck";
  const kv = new Map<string, string>();
  for (const part of m[2].split(",").filter((p) => p.length > 0)) {
    const eq = part.indexOf("=");
    if (eq < 0) throw new Error(`bitSpec: "${part}" in "${name}" is not key=value.`);
    kv.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const known = [
    "root",
    "widths",
    "units",
    "strides",
    "rootKernel",
    "rootStride",
    "pool",
    "groups",
    "minGroupChannels",
    "wsEps",
    "gnEps",
    "padding",
    "init",
  ];
  for (const k of kv.keys()) {
    if (!known.includes(k)) {
      throw new Error(`bitSpec: unknown key "${k}" in "${name}" (known: ${known.join(", ")}).`);
    }
  }
  const need = (k: string) => {
    const v = kv.get(k);
    if (v === undefined) throw new Error(`bitSpec: "${name}" needs "${k}=…".`);
    return v;
  };
  const num = (k: string, def: number) => {
    const v = kv.get(k);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`bitSpec: "${k}=${v}" in "${name}" is not a number.`);
    return n;
  };
  const widths = parseList(need("widths"), "widths", name);
  const units = kv.has("units") ? parseList(need("units"), "units", name) : widths.map(() => 1);
  const strides = kv.has("strides")
    ? parseList(need("strides"), "strides", name)
    : widths.map((_, i) => (i === 0 ? 1 : 2));
  const padding = kv.get("padding") ?? "same";
  if (padding !== "same" && padding !== "symmetric") {
    throw new Error(`bitSpec: "padding=${padding}" in "${name}" must be "same" or "symmetric".`);
  }
  const init = kv.get("init") ?? "uniform";
  if (init !== "uniform" && init !== "lecun") {
    throw new Error(`bitSpec: "init=${init}" in "${name}" must be "uniform" or "lecun".`);
  }
  const spec: BitSpec = {
    name,
    units,
    widths,
    block,
    root: {
      kernel: num("rootKernel", 3),
      stride: num("rootStride", 1),
      pool: num("pool", 0) !== 0,
      width: parseList(need("root"), "root", name)[0],
    },
    stageStrides: strides,
    groups: num("groups", 32),
    numClasses,
    wsEps: num("wsEps", 1e-6),
    gnEps: num("gnEps", 1e-5),
    padding,
    init,
  };
  const mgc = num("minGroupChannels", 4);
  if (mgc > 0) spec.minGroupChannels = mgc;
  return spec;
}

/**
 * The spec for a named architecture: "R{26|50|101|152}x{w}" (BiT bottleneck nets), "d10-{W}" (basic blocks,
 * 3×3/1 root W, stages 2W/4W/8W all stride 2), "d10-6s" (root 6; 12, 24, 44), "r8-16" (root 16; 16, 32, 64 at
 * strides 1, 2, 2), "reference-s1"/"reference-s2" (tfjs-on-deno.md's benchmark net: root 16 at stride 1/2;
 * 16/32/64/128) or the parametric "bit-basic:root=12,widths=24-48-96,units=1-1-1,strides=2-2-2"
 * (also "bit-bottleneck:…"; optional keys rootKernel, rootStride, pool, groups, minGroupChannels, wsEps, gnEps,
 * padding, init).
 */
export function bitSpec(name: string, numClasses: number): BitSpec {
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new Error(`bitSpec: numClasses must be a positive integer, got ${numClasses}.`);
  }
  let spec: BitSpec;
  const r = /^R(\d+)x(\d+)$/.exec(name);
  const d = /^d10-(\d+)$/.exec(name);
  if (r) spec = rFamily(Number(r[1]), Number(r[2]), numClasses, name);
  else if (name === "d10-6s") spec = small(name, 6, [12, 24, 44], [2, 2, 2], numClasses);
  else if (d) {
    const w = Number(d[1]);
    spec = small(name, w, [2 * w, 4 * w, 8 * w], [2, 2, 2], numClasses);
  } else if (name === "r8-16") spec = small(name, 16, [16, 32, 64], [1, 2, 2], numClasses);
  else if (name === "reference-s1" || name === "reference-s2") {
    spec = small(name, 16, [16, 32, 64, 128], [1, 2, 2, 2], numClasses);
    spec.root.stride = name === "reference-s1" ? 1 : 2;
  } else if (/^bit-(basic|bottleneck):/.test(name)) spec = parametric(name, numClasses);
  else {
    throw new Error(
      `bitSpec: unknown architecture "${name}" (expected R50x1-style, d10-12, d10-6s, r8-16, reference-s1 or ` +
        `"bit-basic:root=…,widths=…").`,
    );
  }
  validateSpec(spec);
  return spec;
}

function validateSpec(s: BitSpec): void {
  const where = `BitSpec "${s.name ?? "?"}"`;
  const n = s.widths.length;
  if (n === 0 || s.units.length !== n || s.stageStrides.length !== n) {
    throw new Error(`${where}: units, widths and stageStrides must have the same non-zero length.`);
  }
  if (s.block === "bottleneck" && s.widths.some((w) => w % 4 !== 0)) {
    throw new Error(`${where}: bottleneck widths must be multiples of 4, got ${s.widths.join(", ")}.`);
  }
  if (s.root.kernel % 2 !== 1) throw new Error(`${where}: root kernel must be odd, got ${s.root.kernel}.`);
  normLayout(s); // throws on an impossible grouping
}

/** GroupNorm groups for a `channels`-wide norm of this spec. */
export function groupsFor(spec: BitSpec, channels: number): number {
  if (spec.minGroupChannels === undefined) {
    if (channels % spec.groups !== 0) {
      throw new Error(
        `BitSpec "${spec.name ?? "?"}": ${channels} channels are not divisible by ${spec.groups} groups.`,
      );
    }
    return spec.groups;
  }
  let g = Math.max(1, Math.min(spec.groups, Math.floor(channels / spec.minGroupChannels)));
  while (channels % g !== 0) g--;
  return g;
}

function unitLayout(spec: BitSpec) {
  const out: { prefix: string; cin: number; mid: number; cout: number; stride: number; proj: boolean }[] = [];
  let cin = spec.root.width;
  spec.widths.forEach((cout, s) => {
    for (let u = 0; u < spec.units[s]; u++) {
      const stride = u === 0 ? spec.stageStrides[s] : 1;
      const mid = spec.block === "bottleneck" ? cout / 4 : cout;
      const prefix = `block${s + 1}/unit${String(u + 1).padStart(2, "0")}`;
      out.push({ prefix, cin, mid, cout, stride, proj: cin !== cout || stride !== 1 });
      cin = cout;
    }
  });
  return out;
}

function padOf(spec: BitSpec, k: number): "same" | number {
  return (spec.padding ?? "same") === "symmetric" ? (k - 1) / 2 : "same";
}

/**
 * Every convolution of the spec in forward order, with its big_vision name (the parameter is `<name>/kernel`,
 * HWIO). Within a unit: conv_proj (when present) comes first, as it reads the pre-activated input.
 */
export function convLayout(spec: BitSpec): ConvDesc[] {
  const r = spec.root;
  const out: ConvDesc[] = [{
    name: "root_block/conv_root",
    kernel: r.kernel,
    stride: r.stride,
    cin: 3,
    cout: r.width,
    pad: padOf(spec, r.kernel),
  }];
  for (const u of unitLayout(spec)) {
    if (u.proj) {
      out.push({
        name: `${u.prefix}/conv_proj`,
        kernel: 1,
        stride: u.stride,
        cin: u.cin,
        cout: u.cout,
        pad: 0,
      });
    }
    if (spec.block === "bottleneck") {
      out.push({ name: `${u.prefix}/conv1`, kernel: 1, stride: 1, cin: u.cin, cout: u.mid, pad: 0 });
      out.push({
        name: `${u.prefix}/conv2`,
        kernel: 3,
        stride: u.stride,
        cin: u.mid,
        cout: u.mid,
        pad: padOf(spec, 3),
      });
      out.push({ name: `${u.prefix}/conv3`, kernel: 1, stride: 1, cin: u.mid, cout: u.cout, pad: 0 });
    } else {
      out.push({
        name: `${u.prefix}/conv1`,
        kernel: 3,
        stride: u.stride,
        cin: u.cin,
        cout: u.mid,
        pad: padOf(spec, 3),
      });
      out.push({
        name: `${u.prefix}/conv2`,
        kernel: 3,
        stride: 1,
        cin: u.mid,
        cout: u.cout,
        pad: padOf(spec, 3),
      });
    }
  }
  return out;
}

/** Every GroupNorm of the spec in forward order (params `<name>/scale`, `<name>/bias`, shape [C]). */
export function normLayout(spec: BitSpec): NormDesc[] {
  const out: NormDesc[] = [];
  const g = (name: string, c: number) => out.push({ name, channels: c, groups: groupsFor(spec, c) });
  for (const u of unitLayout(spec)) {
    g(`${u.prefix}/gn1`, u.cin);
    g(`${u.prefix}/gn2`, u.mid);
    if (spec.block === "bottleneck") g(`${u.prefix}/gn3`, u.mid);
  }
  g("norm-pre-head", spec.widths[spec.widths.length - 1]);
  return out;
}

/** Name → shape of every parameter, in a fixed order (convs, norms, head). */
export function paramShapes(spec: BitSpec): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const c of convLayout(spec)) m.set(`${c.name}/kernel`, [c.kernel, c.kernel, c.cin, c.cout]);
  for (const n of normLayout(spec)) {
    m.set(`${n.name}/scale`, [n.channels]);
    m.set(`${n.name}/bias`, [n.channels]);
  }
  const last = spec.widths[spec.widths.length - 1];
  m.set("head/kernel", [last, spec.numClasses]);
  m.set("head/bias", [spec.numClasses]);
  return m;
}

/** Number of parameters of a spec (without building it). */
export function countParams(spec: BitSpec): number {
  let n = 0;
  for (const s of paramShapes(spec).values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

function outSize(size: number, k: number, stride: number, pad: "same" | number): number {
  return pad === "same" ? Math.ceil(size / stride) : Math.floor((size + 2 * pad - k) / stride) + 1;
}

/**
 * Forward FLOPs per image at `imageSize`² input: 2 × multiply-accumulates of the convolutions and the head
 * (GroupNorm, weight standardisation, ReLU, pooling and additions are not counted; research convention).
 */
export function flops(spec: BitSpec, imageSize: number): number {
  const convs = new Map(convLayout(spec).map((c) => [c.name, c]));
  const cost = (c: ConvDesc, inSize: number) => {
    const o = outSize(inSize, c.kernel, c.stride, c.pad);
    return { o, f: 2 * o * o * c.kernel * c.kernel * c.cin * c.cout };
  };
  const root = cost(convs.get("root_block/conv_root")!, imageSize);
  let total = root.f;
  let s = root.o;
  if (spec.root.pool) s = outSize(s, 3, 2, (spec.padding ?? "same") === "symmetric" ? 1 : "same");
  for (const u of unitLayout(spec)) {
    const c = (n: string) => convs.get(`${u.prefix}/${n}`)!;
    if (u.proj) total += cost(c("conv_proj"), s).f;
    if (spec.block === "bottleneck") {
      total += cost(c("conv1"), s).f;
      const c2 = cost(c("conv2"), s);
      total += c2.f + cost(c("conv3"), c2.o).f;
      s = c2.o;
    } else {
      const c1 = cost(c("conv1"), s);
      total += c1.f + cost(c("conv2"), c1.o).f;
      s = c1.o;
    }
  }
  return total + 2 * spec.widths[spec.widths.length - 1] * spec.numClasses;
}

// ---------------------------------------------------------------------------------------------------------
// Building and running

function initKernel(shape: number[], rng: Rng, kind: "uniform" | "lecun"): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (kind === "uniform") {
    const b = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < n; i++) out[i] = (2 * rng.next() - 1) * b;
  } else {
    // flax lecun_normal: truncated normal at ±2σ, rescaled so the variance is 1/fan_in. Box–Muller pairs with
    // rejection of each draw outside ±2.
    const std = Math.sqrt(1 / fanIn) / 0.87962566103423978;
    let i = 0;
    while (i < n) {
      let u = rng.next();
      while (u <= 0) u = rng.next();
      const r = Math.sqrt(-2 * Math.log(u)), th = 2 * Math.PI * rng.next();
      const z1 = r * Math.cos(th), z2 = r * Math.sin(th);
      if (z1 >= -2 && z1 <= 2) out[i++] = z1 * std;
      if (i < n && z2 >= -2 && z2 <= 2) out[i++] = z2 * std;
    }
  }
  return out;
}

/**
 * Creates the parameters of `spec` (conv kernels: U(±1/√fan_in) or flax lecun-normal per `spec.init`, each
 * drawn from `rng.fork(name)` so one parameter's init does not depend on the others; GN scale 1, bias 0;
 * head kernel and bias 0) and returns the model. `rng` is not advanced.
 */
export function buildModel(spec: BitSpec, rng: Rng): Model {
  validateSpec(spec);
  const params = new Map<string, tf.Variable>();
  for (const [name, shape] of paramShapes(spec)) {
    let data: Float32Array;
    if (name.startsWith("head/")) data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    else if (name.endsWith("/kernel")) data = initKernel(shape, rng.fork(name), spec.init ?? "uniform");
    else if (name.endsWith("/scale")) data = new Float32Array(shape[0]).fill(1);
    else data = new Float32Array(shape[0]);
    const t = tf.tensor(data, shape, "float32");
    params.set(name, tf.variable(t, true));
    t.dispose(); // the variable holds its own reference to the data
  }
  return modelFromParams(spec, params);
}

/**
 * Wraps existing parameter variables (e.g. after loading weights) as a model; checks every name and shape.
 */
export function modelFromParams(spec: BitSpec, params: Map<string, tf.Variable>): Model {
  const shapes = paramShapes(spec);
  for (const [name, shape] of shapes) {
    const v = params.get(name);
    if (!v) throw new Error(`modelFromParams: parameter "${name}" is missing.`);
    if (v.shape.join() !== shape.join()) {
      throw new Error(
        `modelFromParams: parameter "${name}" has shape [${v.shape}], the spec needs [${shape}].`,
      );
    }
  }
  for (const name of params.keys()) {
    if (!shapes.has(name)) throw new Error(`modelFromParams: parameter "${name}" is not part of this spec.`);
  }
  const apply = makeForward(spec, params);
  return {
    spec,
    params,
    apply,
    frozen: () => frozenForward(spec, params),
    paramCount: () => {
      let n = 0;
      for (const v of params.values()) n += v.size;
      return n;
    },
    dispose: () => {
      for (const v of params.values()) v.dispose();
    },
  };
}

/** {@link Model.frozen}: standardise the conv kernels once, keep them, and run the forward without WS. */
export function frozenForward(spec: BitSpec, params: Map<string, tf.Tensor>): FrozenForward {
  const wsEps = spec.wsEps ?? 1e-10;
  const owned: tf.Tensor[] = [];
  const snapshot = new Map<string, tf.Tensor>();
  for (const [name, t] of params) {
    if (name.endsWith("/kernel") && !name.startsWith("head/")) {
      const ws = tf.tidy(() => standardizeKernel(t, wsEps));
      owned.push(ws);
      snapshot.set(name, ws);
    } else {
      const c = tf.clone(t);
      owned.push(c);
      snapshot.set(name, c);
    }
  }
  const apply = makeForward(spec, snapshot, { standardized: true, inference: true });
  return { apply, dispose: () => tf.dispose(owned) };
}

/**
 * The forward pass of `spec` over any name → tensor map (variables or plain tensors), as a function NHWC → logits.
 * Use inside tf.tidy (training: inside the gradient function). `standardized`: the conv kernels in `params` are
 * already weight-standardised (see {@link frozenForward}); `inference`: no gradients will be taken.
 */
export function makeForward(
  spec: BitSpec,
  params: Map<string, tf.Tensor>,
  opts: { standardized?: boolean; inference?: boolean } = {},
): (x: tf.Tensor4D) => tf.Tensor2D {
  const wsEps = spec.wsEps ?? 1e-10;
  const gnEps = spec.gnEps ?? 1e-5;
  const symmetric = (spec.padding ?? "same") === "symmetric";
  const p = (name: string) => {
    const t = params.get(name);
    if (!t) throw new Error(`BiT forward: parameter "${name}" is missing.`);
    return t;
  };
  const conv = (x: tf.Tensor4D, d: ConvDesc): tf.Tensor4D => {
    const k = p(`${d.name}/kernel`) as tf.Tensor4D;
    const w = opts.standardized ? k : standardizeKernel(k, wsEps);
    const pad = d.pad === "same"
      ? "same"
      : d.pad === 0
      ? "valid"
      : [[0, 0], [d.pad, d.pad], [d.pad, d.pad], [0, 0]] as ConvPad;
    return tf.conv2d(x, w, d.stride, pad);
  };
  const gnRelu = (x: tf.Tensor4D, name: string): tf.Tensor4D => {
    const c = x.shape[3];
    return groupNormRelu(x, p(`${name}/scale`), p(`${name}/bias`), groupsFor(spec, c), gnEps, {
      inference: opts.inference,
    });
  };
  const convs = new Map(convLayout(spec).map((c) => [c.name, c]));
  const units = unitLayout(spec);
  return (x: tf.Tensor4D): tf.Tensor2D => {
    if (x.rank !== 4 || x.shape[3] !== 3) {
      throw new Error(`BiT forward: expected NHWC input with 3 channels, got shape [${x.shape}].`);
    }
    let h = conv(x, convs.get("root_block/conv_root")!);
    if (spec.root.pool) h = tf.maxPool(h, 3, 2, symmetric ? 1 : "same");
    for (const u of units) {
      const a = gnRelu(h, `${u.prefix}/gn1`);
      const residual = u.proj ? conv(a, convs.get(`${u.prefix}/conv_proj`)!) : h;
      let y = conv(a, convs.get(`${u.prefix}/conv1`)!);
      y = conv(gnRelu(y, `${u.prefix}/gn2`), convs.get(`${u.prefix}/conv2`)!);
      if (spec.block === "bottleneck") {
        y = conv(gnRelu(y, `${u.prefix}/gn3`), convs.get(`${u.prefix}/conv3`)!);
      }
      h = tf.add(y, residual);
    }
    const f = gnRelu(h, "norm-pre-head");
    const [b, hh, ww, c] = f.shape;
    // global average pool as a batched matMul with a row of ones (fast on wasm, no axis transposes)
    const pooled = tf.reshape(
      tf.matMul(
        tf.fill([b, 1, hh * ww], 1 / (hh * ww)) as tf.Tensor3D,
        tf.reshape(f, [b, hh * ww, c]) as tf.Tensor3D,
      ),
      [b, c],
    ) as tf.Tensor2D;
    return tf.add(tf.matMul(pooled, p("head/kernel") as tf.Tensor2D), p("head/bias")) as tf.Tensor2D;
  };
}
