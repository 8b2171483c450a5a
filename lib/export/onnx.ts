/**
 * Export a BiT ResNetV2 (lib/model/bit.ts) with its TF.js-trained weights to an ONNX model that ONNX Runtime
 * runs 3–4× faster than tfjs-wasm on one core.
 *
 * Why it exists: the frozen teacher is evaluated on every distillation batch; exporting it once (stage 03
 * writes `data/<ds>/frozen/teacher.onnx`) moves that cost to native kernels, in a Worker, off the student's
 * thread. The graph mirrors `makeForward` in lib/model/bit.ts op for op, reading the same `convLayout` /
 * `normLayout`, so the two cannot drift apart silently (tests/export_onnx_test.ts compares logits).
 *
 * Graph (IR 8, opset 17): input `x` [n,H,W,3] NHWC float32 → Transpose → NCHW body → `logits` [n,C].
 *  - weight standardisation folded into each conv kernel (per output channel over H,W,In, biased variance,
 *    eps = spec.wsEps), HWIO → OIHW; convs have no bias;
 *  - GroupNorm as Reshape[0,G,-1] → InstanceNormalization(1, 0, eps) → Reshape back → Mul γ → Add β, the
 *    form ORT's CPU EP runs fastest (GroupNormalization-18/21 has no CPU kernel and is 2–3× slower);
 *  - TF "same" padding: explicit per-layer pads when the input size is fixed (`imageSize`), otherwise
 *    auto_pad SAME_UPPER (identical: the extra row/column goes bottom/right); numeric pads are symmetric;
 *  - the R-family root max-pool 3×3/2 with its padding (padded cells never win, as in TF.js);
 *  - GlobalAveragePool → Flatten → Gemm with head/kernel [C_last, numClasses] and head/bias.
 */
import type * as tf from "@tensorflow/tfjs";
import { type BitSpec, type ConvDesc, convLayout, normLayout, paramShapes } from "../model/bit.ts";
import { type Dim, f, GraphBuilder } from "./graph.ts";

/** A parameter as a tensor, or as plain shape + data (lib/model/weights.ts `loadWeights`). */
export type ParamValue = tf.Tensor | { shape: number[]; data: Float32Array };

/** Options for {@link exportOnnx}. */
export interface ExportOptions {
  /**
   * Fix the input's spatial size (a square side or [H, W]) and write explicit per-layer pads. Without it the
   * model takes any H and W (dims "h", "w") and "same" convs use auto_pad SAME_UPPER.
   */
  imageSize?: number | [number, number];
  /** Graph name (default: spec.name or "bit"). */
  name?: string;
  /** Extra metadata_props entries (e.g. the source weights' hash). */
  metadata?: Record<string, string>;
}

/** ONNX IR version and opset written by {@link exportOnnx}. */
export const ONNX_IR_VERSION = 8;
/** @see ONNX_IR_VERSION */
export const ONNX_OPSET = 17;

function paramData(params: Map<string, ParamValue>, name: string, shape: number[]): Float32Array {
  const v = params.get(name);
  if (v === undefined) throw new Error(`exportOnnx: parameter "${name}" is missing from the weights.`);
  const got = Array.from(v.shape);
  if (got.join() !== shape.join()) {
    throw new Error(`exportOnnx: parameter "${name}" has shape [${got}], the spec needs [${shape}].`);
  }
  if ("data" in v && v.data instanceof Float32Array) return v.data;
  const t = v as tf.Tensor;
  if (t.dtype !== "float32") {
    throw new Error(`exportOnnx: parameter "${name}" is ${t.dtype}, expected float32.`);
  }
  return t.dataSync() as Float32Array;
}

/**
 * Weight-standardise an HWIO kernel per output channel (mean and biased variance over H, W, In; double
 * precision) and lay it out OIHW for ONNX Conv.
 */
export function standardizeToOihw(w: Float32Array, shape: number[], eps: number): Float32Array {
  const [kh, kw, ci, co] = shape;
  const n = kh * kw * ci;
  const out = new Float32Array(w.length);
  for (let o = 0; o < co; o++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += w[i * co + o];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) {
      const d = w[i * co + o] - mean;
      v += d * d;
    }
    const rstd = 1 / Math.sqrt(v / n + eps);
    // HWIO index ((y*kw + x)*ci + c)*co + o  →  OIHW index ((o*ci + c)*kh + y)*kw + x
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) {
        for (let c = 0; c < ci; c++) {
          out[((o * ci + c) * kh + y) * kw + x] = (w[((y * kw + x) * ci + c) * co + o] - mean) * rstd;
        }
      }
    }
  }
  return out;
}

/** TF "same" padding for one spatial axis: [before, after] (the extra cell goes after). */
export function samePads(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

function outSize(size: number, k: number, stride: number, pad: "same" | number): number {
  return pad === "same" ? Math.ceil(size / stride) : Math.floor((size + 2 * pad - k) / stride) + 1;
}

/**
 * Write `spec` with `params` (names and HWIO shapes as in lib/model/bit.ts `paramShapes`) as ONNX model bytes.
 * Throws one sentence naming the parameter when one is missing or misshapen.
 *
 * @example
 * ```ts
 * const bytes = exportOnnx(model.spec, model.params, { imageSize: 32 });
 * const session = await createSession(bytes);            // lib/export/ort.ts
 * const logits = await runLogits(session, x, [n, 32, 32, 3]);
 * ```
 */
export function exportOnnx(
  spec: BitSpec,
  params: Map<string, ParamValue>,
  opts: ExportOptions = {},
): Uint8Array {
  const wsEps = spec.wsEps ?? 1e-10;
  const gnEps = spec.gnEps ?? 1e-5;
  const symmetric = (spec.padding ?? "same") === "symmetric";
  const shapes = paramShapes(spec);
  for (const name of params.keys()) {
    if (!shapes.has(name)) throw new Error(`exportOnnx: parameter "${name}" is not part of this spec.`);
  }
  const get = (name: string) => paramData(params, name, shapes.get(name)!);

  const fixed = opts.imageSize === undefined
    ? null
    : typeof opts.imageSize === "number"
    ? [opts.imageSize, opts.imageSize]
    : opts.imageSize;
  const g = new GraphBuilder(opts.name ?? spec.name ?? "bit");
  const inDims: Dim[] = fixed ? ["n", fixed[0], fixed[1], 3] : ["n", "h", "w", 3];
  g.input("x", inDims);

  // Tracks the current spatial size when fixed (to compute explicit "same" pads per layer).
  let hw: [number, number] | null = fixed ? [fixed[0], fixed[1]] : null;

  const convs = new Map(convLayout(spec).map((c) => [c.name, c]));
  const norms = new Map(normLayout(spec).map((n) => [n.name, n]));

  /** Padding attributes for a k×k/s window; updates `hw` to the output size. */
  const windowAttrs = (k: number, s: number, pad: "same" | number, at: [number, number] | null) => {
    const attrs: Record<string, number[] | string> = { kernel_shape: [k, k], strides: [s, s] };
    if (pad === "same") {
      if (at) {
        const [t, b] = samePads(at[0], k, s);
        const [l, r] = samePads(at[1], k, s);
        attrs.pads = [t, l, b, r];
      } else attrs.auto_pad = "SAME_UPPER";
    } else attrs.pads = [pad, pad, pad, pad];
    const next: [number, number] | null = at ? [outSize(at[0], k, s, pad), outSize(at[1], k, s, pad)] : null;
    return { attrs, next };
  };

  const conv = (
    x: string,
    d: ConvDesc,
    at: [number, number] | null,
  ): { y: string; next: [number, number] | null } => {
    const shape = [d.kernel, d.kernel, d.cin, d.cout];
    const w = g.floatInit(
      `${d.name}/kernel`,
      [d.cout, d.cin, d.kernel, d.kernel],
      standardizeToOihw(get(`${d.name}/kernel`), shape, wsEps),
    );
    const { attrs, next } = windowAttrs(d.kernel, d.stride, d.pad, at);
    return { y: g.node("Conv", [x, w], attrs, g.fresh(d.name)), next };
  };

  const convAt = (x: string, name: string, at: [number, number] | null) => {
    const d = convs.get(name);
    if (!d) throw new Error(`exportOnnx: lib/model/bit.ts convLayout has no conv "${name}".`);
    return conv(x, d, at);
  };

  const gnRelu = (x: string, name: string, at: [number, number] | null): string => {
    const nd = norms.get(name);
    if (!nd) throw new Error(`exportOnnx: lib/model/bit.ts normLayout has no norm "${name}".`);
    const c = nd.channels, groups = nd.groups;
    const grouped = g.node("Reshape", [x, g.int64Init(`${name}/group_shape`, [0, groups, -1])]);
    const ones = g.floatInit(`${name}/in_scale`, [groups], new Float32Array(groups).fill(1));
    const zeros = g.floatInit(`${name}/in_bias`, [groups], new Float32Array(groups));
    const normed = g.node("InstanceNormalization", [grouped, ones, zeros], { epsilon: f(gnEps) });
    const backShape = at
      ? g.int64Init(`${name}/back_shape`, [0, c, at[0], at[1]])
      : g.node("Shape", [x], {}, g.fresh(`${name}/shape`));
    const back = g.node("Reshape", [normed, backShape]);
    const gamma = g.floatInit(`${name}/scale`, [c, 1, 1], get(`${name}/scale`));
    const beta = g.floatInit(`${name}/bias`, [c, 1, 1], get(`${name}/bias`));
    const affine = g.node("Add", [g.node("Mul", [back, gamma]), beta]);
    return g.node("Relu", [affine], {}, g.fresh(`${name}/relu`));
  };

  // Root.
  let h = g.node("Transpose", ["x"], { perm: [0, 3, 1, 2] }, "x_nchw");
  {
    const r = convAt(h, "root_block/conv_root", hw);
    h = r.y;
    hw = r.next;
    if (spec.root.pool) {
      const { attrs, next } = windowAttrs(3, 2, symmetric ? 1 : "same", hw);
      h = g.node("MaxPool", [h], attrs, "root_block/pool");
      hw = next;
    }
  }

  // Units, in convLayout order (conv_proj, conv1, conv2[, conv3] per unit prefix).
  const prefixes: string[] = [];
  for (const c of convs.keys()) {
    const m = /^(block\d+\/unit\d+)\//.exec(c);
    if (m && !prefixes.includes(m[1])) prefixes.push(m[1]);
  }
  for (const prefix of prefixes) {
    const a = gnRelu(h, `${prefix}/gn1`, hw);
    let residual = h;
    let resHw = hw;
    if (convs.has(`${prefix}/conv_proj`)) {
      const p = convAt(a, `${prefix}/conv_proj`, hw);
      residual = p.y;
      resHw = p.next;
    }
    let y = convAt(a, `${prefix}/conv1`, hw);
    y = convAt(gnRelu(y.y, `${prefix}/gn2`, y.next), `${prefix}/conv2`, y.next);
    if (spec.block === "bottleneck") {
      y = convAt(gnRelu(y.y, `${prefix}/gn3`, y.next), `${prefix}/conv3`, y.next);
    }
    if (y.next && resHw && y.next.join() !== resHw.join()) {
      throw new Error(
        `exportOnnx: ${prefix} residual is ${resHw.join("×")} but its branch is ${y.next.join("×")}.`,
      );
    }
    h = g.node("Add", [y.y, residual], {}, g.fresh(`${prefix}/out`));
    hw = y.next;
  }

  // Head.
  const feat = gnRelu(h, "norm-pre-head", hw);
  const pooled = g.node("Flatten", [g.node("GlobalAveragePool", [feat])], { axis: 1 }, "pre_logits");
  const last = spec.widths[spec.widths.length - 1];
  const kernel = g.floatInit("head/kernel", [last, spec.numClasses], get("head/kernel"));
  const bias = g.floatInit("head/bias", [spec.numClasses], get("head/bias"));
  g.node("Gemm", [pooled, kernel, bias], { transB: 0 }, "logits");
  g.output("logits", ["n", spec.numClasses]);

  return g.toBytes({
    irVersion: ONNX_IR_VERSION,
    opset: ONNX_OPSET,
    docString: "BiT ResNetV2 exported by funmatch lib/export/onnx.ts; input x is NHWC float32.",
    metadata: {
      spec: JSON.stringify(spec),
      input_layout: "NHWC",
      ...(fixed ? { image_size: fixed.join("x") } : {}),
      ...opts.metadata,
    },
  });
}
