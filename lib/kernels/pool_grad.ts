/**
 * MaxPoolGrad built from 4-D backend kernels.
 *
 * Why: tfjs-backend-wasm 4.22's MaxPoolGrad returns wrong values in most configurations (forward MaxPool is
 * fine). This version matches the cpu kernel exactly, including its tie rule (the first maximum of a window in
 * row-major tap order receives the gradient) and padding (padded cells never win).
 *
 * How: for every window tap (a, c) the strided samples of x under that tap are compared with the pooled output;
 * a running "not yet claimed" mask gives first-max-wins. The per-tap contributions mask·dy live on the pooled
 * (low-resolution) grid. Taps with the same phase (a mod s, c mod s) land on the same sub-lattice of the
 * input, so they are summed at low resolution with small shifts, and the s×s phase grids are interleaved once.
 * No full-resolution scatter per tap, so overlapping windows (3×3 stride 2) cost about as much as 2×2/2.
 */
import * as tf from "@tensorflow/tfjs";
import { type Attrs, KernelScope, type TI } from "./_scope.ts";

// deno-lint-ignore no-explicit-any
type AnyBackend = any;

/** MaxPoolGrad: inputs {dy, input, output}, attrs {filterSize, strides, pad, dimRoundingMode}. */
export function maxPoolGrad(backendName: string) {
  return (
    { inputs, backend, attrs = {} }: { inputs: Record<string, TI>; backend: AnyBackend; attrs?: Attrs },
  ) => {
    const { dy, input, output } = inputs;
    const info = tf.backend_util.computePool2DInfo(
      input.shape as [number, number, number, number],
      attrs.filterSize as [number, number],
      attrs.strides as [number, number],
      1,
      attrs.pad as "same",
      attrs.dimRoundingMode as "floor" | undefined,
    );
    const kh = info.filterHeight, kw = info.filterWidth, sh = info.strideHeight, sw = info.strideWidth;
    const ho = info.outHeight, wo = info.outWidth;
    const { top, left } = info.padInfo;
    const [b, H, W, C] = input.shape;
    const S = new KernelScope(backend, backendName);
    try {
      // low-resolution grid size per phase: output index + largest tap shift
      const hq = ho - 1 + Math.ceil(kh / sh), wq = wo - 1 + Math.ceil(kw / sw);
      const grids: (TI | null)[][] = Array.from({ length: sh }, () => Array(sw).fill(null));
      let remaining: TI | null = null;
      const last = kh * kw - 1;
      for (let a = 0; a < kh; a++) {
        for (let c = 0; c < kw; c++) {
          const xs = S.sample(input, a - top, c - left, ho, wo, sh, sw, -Infinity);
          const eq = S.run("Cast", { x: S.run("Equal", { a: xs, b: output }) }, { dtype: "float32" });
          let mask: TI;
          if (remaining === null) {
            mask = eq;
            if (a * kw + c < last) remaining = S.run("Sub", { a: S.run("OnesLike", { x: eq }), b: eq });
          } else {
            mask = S.run("Multiply", { a: eq, b: remaining });
            if (a * kw + c < last) remaining = S.run("Sub", { a: remaining, b: mask });
          }
          const contrib = S.run("Multiply", { a: mask, b: dy });
          const da = Math.floor(a / sh), dc = Math.floor(c / sw), p = a % sh, q = c % sw;
          const placed = S.padOrCrop(contrib, da, hq - ho - da, dc, wq - wo - dc);
          const g = grids[p][q];
          grids[p][q] = g === null ? placed : S.run("Add", { a: g, b: placed });
        }
      }
      const phases = grids.map((row) =>
        row.map((g) => g ?? S.run("Fill", {}, { shape: [b, hq, wq, C], value: 0, dtype: "float32" }))
      );
      const full = S.interleave(phases, sh, sw); // padded-input coordinates [b, hq·sh, wq·sw, C]
      return S.keep(S.padOrCrop(full, -top, H + top - hq * sh, -left, W + left - wq * sw));
    } finally {
      S.dispose();
    }
  };
}
