/**
 * Conv2D gradient kernels expressed as forward convolutions.
 *
 * Why: tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter at all (conv nets cannot train), and its
 * Conv2DBackpropInput is naive C++ (1–3 GFLOP/s); the cpu backend's filter gradient runs at ~0.01 GFLOP/s.
 * Forward Conv2D, by contrast, runs on XNNPACK (wasm) at 15–30 GFLOP/s. Both gradients are convolutions:
 *
 * - filter: dW[a,c,i,o] = Σ_{b,y,x} xpad[b, a+y·s, c+x·s, i] · dy[b,y,x,o] — a valid convolution of x laid out
 *   as [Ci, Hp, Wp, B] with dy laid out as the filter [Ho, Wo, B, Co] at dilation s, giving [Ci, kh, kw, Co]
 *   (the padding is the convolution's own); for 1×1 kernels it is a plain matrix product xᵀ·dy.
 * - input: dx = full correlation of dy with the spatially flipped, in/out-swapped W. At stride s, input rows of
 *   phase p (row ≡ p mod s) only see taps W[p::s]; one convolution of the undilated dy computes all s×s
 *   phases as output channels, and a cheap block transpose interleaves them (no zero-dilated dy, whose
 *   zeros would cost s² times the FLOPs).
 *
 * NHWC only (the only layout the project uses); anything else is a clear error.
 */
import * as tf from "@tensorflow/tfjs";
import { type Attrs, KernelScope, type TI } from "./_scope.ts";

// deno-lint-ignore no-explicit-any
type AnyBackend = any;
type KernelArgs = { inputs: Record<string, TI>; backend: AnyBackend; attrs?: Attrs };

/** The conv geometry of an NHWC Conv2D (or its gradient) kernel call; other layouts are a clear error. */
export function convInfo(
  xShape: number[],
  filterShape: number[],
  attrs: Attrs,
  kernel: string,
  dilations: number | [number, number] = 1,
) {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== "NHWC" && attrs.dataFormat !== "channelsLast") {
    throw new Error(`lib/kernels ${kernel}: dataFormat ${attrs.dataFormat} unsupported, expected NHWC.`);
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number],
    dilations,
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
    const [b, h, w] = x.shape;
    const [, ho, wo] = dy.shape;
    const { top, bottom, left, right } = info.padInfo;
    const S = new KernelScope(backend, backendName);
    try {
      if (kh === 1 && kw === 1) {
        // 1×1: dW = xsᵀ·dy over N = B·Ho·Wo positions (xs = the strided samples of x), a plain matrix product
        // once xs is transposed to [Ci, N] (wasm's matMul with transposeA is a slow path).
        const xs = S.sample(x, -top, -left, ho, wo, info.strideHeight, info.strideWidth);
        const n = b * ho * wo;
        const xT = S.transpose(S.reshape(xs, [n, ci]), [1, 0]);
        const m = S.run("BatchMatMul", { a: S.reshape(xT, [1, ci, n]), b: S.reshape(dy, [1, n, co]) }, {
          transposeA: false,
          transposeB: false,
        });
        return S.keep(S.reshape(m, [1, 1, ci, co]));
      }
      // x → [Ci, H, W, B] as a 2-D transpose plus a block transpose (a direct 4-D [3,1,2,0] transpose is
      // 4–5× slower on wasm); dy → [Ho, Wo, B, Co] as one block transpose.
      const xt = S.reshape(
        S.transpose(S.reshape(S.transpose(S.reshape(x, [b, h * w * ci]), [1, 0]), [h * w, ci, b]), [1, 0, 2]),
        [ci, h, w, b],
      );
      const dyt = S.reshape(S.transpose(S.reshape(dy, [b, ho * wo, co]), [1, 0, 2]), [ho, wo, b, co]);
      // padding goes to the convolution itself (no padded copy of x)
      const r = S.run("Conv2D", { x: xt, filter: dyt }, {
        strides: [1, 1],
        pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        dataFormat: "NHWC",
        dilations: [info.strideHeight, info.strideWidth],
      }); // [Ci, ≥kh, ≥kw, Co]
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
    const [kh, kw, ci, co] = filter.shape;
    const [b, H, W] = inputShape;
    const [, ho, wo] = dy.shape;
    const sh = info.strideHeight, sw = info.strideWidth;
    const { top: pt, left: pl } = info.padInfo;
    const S = new KernelScope(backend, backendName);
    try {
      // Phase decomposition (stride 1 is the single-phase case). Padded-input row r = y·sh + a for output row
      // y and tap a. Rows of phase p (r = u·sh + p) only receive taps a = a'·sh + p, from dy row y = u − a':
      //   dxpad[u·sh + p] = Σ_{a'} dy[u − a'] · W[a'·sh + p]
      // a full correlation of dy with the phase's taps in reversed a' order. All sh·sw phases are computed by
      // ONE convolution whose output channels are (p, q, ci), with each phase's taps zero-padded to
      // ta × tb; then the phases are interleaved with a cheap block transpose.
      const ta = Math.ceil(kh / sh), tb = Math.ceil(kw / sw);
      const hq = Math.ceil((H + pt) / sh), wq = Math.ceil((W + pl) / sw); // phase-grid rows/cols needed
      const pf = phaseFilter(backend.readSync(filter.dataId) as Float32Array, kh, kw, ci, co, sh, sw, ta, tb);
      const nf = sh * sw * ci;
      const f: TI = {
        dataId: backend.write(pf, [ta, tb, co, nf], "float32"),
        shape: [ta, tb, co, nf],
        dtype: "float32",
      };
      S.track(f);
      const { bottom: pb, right: pr } = info.padInfo;
      if (sh === 1 && sw === 1 && pt <= kh - 1 && pl <= kw - 1 && pb <= kh - 1 && pr <= kw - 1) {
        // Stride 1 (one phase, f is the flipped kernel): choosing the convolution's padding so that its output
        // is exactly the input's rows and columns saves computing a padded border and cropping it (a
        // full-size copy, slow on wasm).
        return S.keep(S.run("Conv2D", { x: dy, filter: f }, {
          strides: [1, 1],
          pad: [[0, 0], [kh - 1 - pt, kh - 1 - pb], [kw - 1 - pl, kw - 1 - pr], [0, 0]],
          dataFormat: "NHWC",
          dilations: [1, 1],
        }));
      }
      const padB = Math.max(hq - ho, 0), padR = Math.max(wq - wo, 0);
      const out = S.run("Conv2D", { x: dy, filter: f }, {
        strides: [1, 1],
        pad: [[0, 0], [ta - 1, padB], [tb - 1, padR], [0, 0]],
        dataFormat: "NHWC",
        dilations: [1, 1],
      }); // [b, hq', wq', sh·sw·ci], hq' = ho + padB ≥ hq
      const hq2 = ho + padB, wq2 = wo + padR;
      let full = out;
      if (sh > 1 || sw > 1) {
        // [b·hq', wq', sh, sw·ci] → [b·hq', sh, wq', sw·ci] = [b, hq'·sh, wq'·sw, ci]
        const t = S.transpose(S.reshape(out, [b * hq2, wq2, sh, sw * ci]), [0, 2, 1, 3]);
        full = S.reshape(t, [b, hq2 * sh, wq2 * sw, ci]);
      }
      return S.keep(S.padOrCrop(full, -pt, H + pt - hq2 * sh, -pl, W + pl - wq2 * sw));
    } finally {
      S.dispose();
    }
  };
}

/**
 * The phase filter of a strided conv's input gradient: [ta, tb, Co, (p, q, Ci)] with
 * F[tr, tc, o, (p,q,i)] = W[(ta−1−tr)·sh + p, (tb−1−tc)·sw + q, i, o], zero where that tap is outside the kernel.
 * Filters are small; building this on the JS side is far cheaper than Reverse/Transpose kernels on wasm.
 */
function phaseFilter(
  wv: Float32Array,
  kh: number,
  kw: number,
  ci: number,
  co: number,
  sh: number,
  sw: number,
  ta: number,
  tb: number,
): Float32Array {
  const nf = sh * sw * ci;
  const out = new Float32Array(ta * tb * co * nf);
  for (let tr = 0; tr < ta; tr++) {
    for (let tc = 0; tc < tb; tc++) {
      for (let p = 0; p < sh; p++) {
        const a = (ta - 1 - tr) * sh + p;
        if (a >= kh) continue;
        for (let q = 0; q < sw; q++) {
          const c = (tb - 1 - tc) * sw + q;
          if (c >= kw) continue;
          const src = (a * kw + c) * ci * co; // W[a, c, i, o] = wv[src + i·co + o]
          const dst = (tr * tb + tc) * co * nf + (p * sw + q) * ci; // F[tr, tc, o, (p,q,i)]
          for (let o = 0; o < co; o++) {
            const d = dst + o * nf;
            for (let i = 0; i < ci; i++) out[d + i] = wv[src + i * co + o];
          }
        }
      }
    }
  }
  return out;
}
