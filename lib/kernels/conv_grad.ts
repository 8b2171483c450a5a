/**
 * Conv2D gradient kernels expressed as forward convolutions.
 *
 * Why: tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter at all (conv nets cannot train), and its
 * Conv2DBackpropInput is naive C++ (1–3 GFLOP/s); the cpu backend's filter gradient runs at ~0.01 GFLOP/s.
 * Forward Conv2D, by contrast, runs on XNNPACK (wasm) at 15–30 GFLOP/s. Both gradients are convolutions:
 *
 * - filter: dW[a,c,i,o] = Σ_{b,y,x} xpad[b, a+y·s, c+x·s, i] · dy[b,y,x,o] — a valid convolution of x laid out
 *   as [Ci, Hp, Wp, B] with dy laid out as the filter [Ho, Wo, B, Co] at dilation s, giving [Ci, kh, kw, Co];
 *   for 1×1 kernels it is a plain matrix product xᵀ·dy.
 * - input: dx = valid convolution of the zero-dilated, padded dy with the spatially flipped, in/out-swapped W.
 *   At stride > 1 the dilated dy is mostly zeros, so instead each output phase (p, q) gets its own small
 *   convolution of the undilated dy with the taps W[p::s, q::s], and the phases are interleaved.
 *
 * NHWC only (the only layout the project uses); anything else is a clear error.
 */
import * as tf from "@tensorflow/tfjs";
import { type Attrs, KernelScope, type TI } from "./_scope.ts";

// deno-lint-ignore no-explicit-any
type AnyBackend = any;
type KernelArgs = { inputs: Record<string, TI>; backend: AnyBackend; attrs?: Attrs };

function convInfo(xShape: number[], filterShape: number[], attrs: Attrs, kernel: string) {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== "NHWC") {
    throw new Error(
      `lib/kernels/conv_grad.ts ${kernel}: dataFormat ${attrs.dataFormat} unsupported, expected NHWC.`,
    );
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number],
    1,
    attrs.pad as "same",
    attrs.dimRoundingMode as "floor" | undefined,
  );
}

/** Conv2DBackpropFilter: inputs {x, dy}, attrs {strides, pad, dataFormat, dimRoundingMode, filterShape}. */
export function conv2dBackpropFilter(backendName: string) {
  return ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { x, dy } = inputs;
    const filterShape = attrs.filterShape as number[];
    const info = convInfo(x.shape, filterShape, attrs, "Conv2DBackpropFilter");
    const [kh, kw, ci, co] = filterShape;
    const { top, bottom, left, right } = info.padInfo;
    const S = new KernelScope(backend, backendName);
    try {
      if (kh === 1 && kw === 1) {
        // dW = xsᵀ·dy over all N = B·Ho·Wo positions, with xs the strided samples of x.
        const xs = S.sample(
          x,
          -top,
          -left,
          info.outHeight,
          info.outWidth,
          info.strideHeight,
          info.strideWidth,
        );
        const n = info.batchSize * info.outHeight * info.outWidth;
        const m = S.run("BatchMatMul", { a: S.reshape(xs, [1, n, ci]), b: S.reshape(dy, [1, n, co]) }, {
          transposeA: true,
          transposeB: false,
        });
        return S.keep(S.reshape(m, [1, 1, ci, co]));
      }
      const xp = S.padOrCrop(x, top, bottom, left, right);
      const xt = S.transpose(xp, [3, 1, 2, 0]); // [Ci, Hp, Wp, B]
      const dyt = S.transpose(dy, [1, 2, 0, 3]); // [Ho, Wo, B, Co]
      const r = S.conv2d(xt, dyt, [1, 1], [info.strideHeight, info.strideWidth]); // [Ci, ≥kh, ≥kw, Co]
      const rk = S.slice(r, [0, 0, 0, 0], [ci, kh, kw, co]);
      return S.keep(S.transpose(rk, [1, 2, 0, 3]));
    } finally {
      S.dispose();
    }
  };
}

/** Conv2DBackpropInput: inputs {dy, filter}, attrs {strides, pad, dataFormat, dimRoundingMode, inputShape}. */
export function conv2dBackpropInput(backendName: string) {
  return ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { dy, filter } = inputs;
    const inputShape = attrs.inputShape as number[];
    const info = convInfo(inputShape, filter.shape, attrs, "Conv2DBackpropInput");
    const [kh, kw] = filter.shape;
    const [, H, W] = inputShape;
    const sh = info.strideHeight, sw = info.strideWidth;
    const { top: pt, left: pl } = info.padInfo;
    const S = new KernelScope(backend, backendName);
    try {
      const wflip = S.transpose(S.run("Reverse", { x: filter }, { dims: [0, 1] }), [0, 1, 3, 2]); // [kh,kw,Co,Ci]
      if (sh === 1 && sw === 1) {
        const top = kh - 1 - pt, left = kw - 1 - pl;
        const dp = S.padOrCrop(
          dy,
          top,
          H + kh - 1 - top - dy.shape[1],
          left,
          W + kw - 1 - left - dy.shape[2],
        );
        return S.keep(S.conv2d(dp, wflip, [1, 1]));
      }
      // Phase decomposition. Padded-input row r = y·sh + a (a = tap); output row i = r - pt. For phase p of
      // the padded coordinate (r ≡ p mod sh), only taps a ≡ p contribute: r = (y + a')·sh + p with a = a'·sh + p.
      // So dxpad_phase[p][u] = Σ_{a'} dy[u - a'] · W[a'·sh + p]: a full (not valid) correlation with flipped taps.
      const hq = Math.ceil((H + pt) / sh) + 1, wq = Math.ceil((W + pl) / sw) + 1;
      const [b, ho, wo, co] = dy.shape;
      const ci = filter.shape[2];
      const phases: TI[][] = [];
      for (let p = 0; p < sh; p++) {
        const row: TI[] = [];
        for (let q = 0; q < sw; q++) {
          const ta = Math.ceil((kh - p) / sh), tb = Math.ceil((kw - q) / sw); // taps in this phase
          if (ta <= 0 || tb <= 0) {
            row.push(S.run("Fill", {}, { shape: [b, hq, wq, ci], value: 0, dtype: "float32" }));
            continue;
          }
          // sub-filter taps a = a'·sh + p, flipped over a' (wflip is flipped over the full kernel: index kh-1-a)
          const sub = subFilter(S, wflip, kh, kw, sh, sw, p, q, ta, tb); // [ta, tb, Co, Ci]
          // full correlation: pad dy by (ta-1) before, and enough after to reach hq rows
          const d = S.padOrCrop(dy, ta - 1, hq - ho, tb - 1, wq - wo);
          row.push(S.conv2d(d, sub, [1, 1])); // [b, ho + ta - 1 + hq - ho - ta + 1 = hq, wq, ci]
        }
        phases.push(row);
      }
      void co;
      const full = S.interleave(phases, sh, sw); // padded-input coordinates [b, hq·sh, wq·sw, ci]
      return S.keep(S.padOrCrop(full, -pt, H + pt - hq * sh, -pl, W + pl - wq * sw));
    } finally {
      S.dispose();
    }
  };
}

/** Taps W[a'·sh+p, c'·sw+q] (a' < ta, c' < tb) of the original filter, flipped over (a', c'), as [ta,tb,Co,Ci]. */
function subFilter(
  S: KernelScope,
  wflip: TI,
  kh: number,
  kw: number,
  sh: number,
  sw: number,
  p: number,
  q: number,
  ta: number,
  tb: number,
): TI {
  // In wflip (flipped), original tap a sits at index kh-1-a. Taps a = a'·sh + p for a' = ta-1 … 0 are at
  // indices kh-1-p-(ta-1)·sh, …, kh-1-p: a strided run with step sh starting at r0, already in flipped order.
  const r0 = kh - 1 - p - (ta - 1) * sh, c0 = kw - 1 - q - (tb - 1) * sw;
  const [, , co, ci] = wflip.shape;
  // treat the filter as a one-image NHWC tensor [1, kh, kw, co·ci] to reuse strided sampling
  const as4 = S.reshape(wflip, [1, kh, kw, co * ci]);
  const taps = S.sample(as4, r0, c0, ta, tb, sh, sw);
  return S.reshape(taps, [ta, tb, co, ci]);
}
