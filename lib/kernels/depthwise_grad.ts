/**
 * Depthwise conv gradient kernels for the wasm backend (which has none in 4.22).
 *
 * Why: without them any depthwise/separable conv cannot train on wasm. Both are built from fast 4-D kernels:
 * - filter: for each tap (a, c), dW[a,c,ch,q] = Σ_{b,y,x} x[b, a·d + y·s − pt, c·d + x·s − pl, ch] ·
 *   dy[b,y,x,ch·m+q] — a strided sample of x, a product with dy, and a sum over positions done as a
 *   ones-row matrix product (wasm reduces non-last axes slowly).
 * - input: like conv input gradients, a depthwise convolution of dy (padded) with the flipped taps of each
 *   stride phase, phases interleaved, then a sum over the channel multiplier. Dilated input gradients (rare)
 *   run the cpu kernel on copied data.
 */
import * as tf from "@tensorflow/tfjs";
import { type Attrs, kernelFunc, KernelScope, type TI } from "./_scope.ts";

// deno-lint-ignore no-explicit-any
type AnyBackend = any;
type KernelArgs = { inputs: Record<string, TI>; backend: AnyBackend; attrs?: Attrs };

function dwInfo(xShape: number[], filterShape: number[], attrs: Attrs) {
  const dil = (attrs.dilations ?? [1, 1]) as number | [number, number];
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number],
    dil,
    attrs.pad as "same",
    attrs.dimRoundingMode as "floor" | undefined,
    true,
  );
}

/** DepthwiseConv2dNativeBackpropFilter: inputs {x, dy}, attrs {strides, dilations, pad, dimRoundingMode, filterShape}. */
export function depthwiseBackpropFilter(backendName: string) {
  return ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { x, dy } = inputs;
    const filterShape = attrs.filterShape as number[];
    const info = dwInfo(x.shape, filterShape, attrs);
    const [kh, kw, C, m] = filterShape;
    const ho = info.outHeight, wo = info.outWidth, n = info.batchSize * ho * wo;
    const S = new KernelScope(backend, backendName);
    try {
      const ones = S.run("Fill", {}, { shape: [1, 1, n], value: 1, dtype: "float32" });
      const dy3 = S.reshape(dy, [n, C, m]);
      const taps: TI[] = [];
      for (let a = 0; a < kh; a++) {
        for (let c = 0; c < kw; c++) {
          const xs = S.sample(
            x,
            a * info.dilationHeight - info.padInfo.top,
            c * info.dilationWidth - info.padInfo.left,
            ho,
            wo,
            info.strideHeight,
            info.strideWidth,
          );
          const prod = m === 1
            ? S.run("Multiply", { a: xs, b: dy })
            : S.run("Multiply", { a: S.reshape(xs, [n, C, 1]), b: dy3 });
          taps.push(S.run("BatchMatMul", { a: ones, b: S.reshape(prod, [1, n, C * m]) }, {
            transposeA: false,
            transposeB: false,
          }));
        }
      }
      return S.keep(S.reshape(S.concat(taps, 1), [kh, kw, C, m]));
    } finally {
      S.dispose();
    }
  };
}

/** DepthwiseConv2dNativeBackpropInput: inputs {dy, filter}, attrs {strides, dilations, pad, dimRoundingMode, inputShape}. */
export function depthwiseBackpropInput(backendName: string) {
  return ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { dy, filter } = inputs;
    const inputShape = attrs.inputShape as number[];
    const info = dwInfo(inputShape, filter.shape, attrs);
    if (info.dilationHeight !== 1 || info.dilationWidth !== 1) {
      return onCpu("DepthwiseConv2dNativeBackpropInput", { inputs, backend, attrs });
    }
    const [kh, kw, C, m] = filter.shape;
    const [b, H, W] = inputShape;
    const sh = info.strideHeight, sw = info.strideWidth;
    const { top: pt, left: pl } = info.padInfo;
    const [, ho, wo] = dy.shape;
    const S = new KernelScope(backend, backendName);
    try {
      // filter as [kh, kw, C·m, 1], flipped spatially: a depthwise conv over dy's C·m channels
      const wflip = S.run("Reverse", { x: S.reshape(filter, [kh, kw, C * m, 1]) }, { dims: [0, 1] });
      const hq = Math.ceil((H + pt) / sh) + 1, wq = Math.ceil((W + pl) / sw) + 1;
      const phases: TI[][] = [];
      for (let p = 0; p < sh; p++) {
        const row: TI[] = [];
        for (let q = 0; q < sw; q++) {
          const ta = Math.ceil((kh - p) / sh), tb = Math.ceil((kw - q) / sw);
          if (ta <= 0 || tb <= 0) {
            row.push(S.run("Fill", {}, { shape: [b, hq, wq, C * m], value: 0, dtype: "float32" }));
            continue;
          }
          const r0 = kh - 1 - p - (ta - 1) * sh, c0 = kw - 1 - q - (tb - 1) * sw;
          const sub = S.reshape(
            S.sample(S.reshape(wflip, [1, kh, kw, C * m]), r0, c0, ta, tb, sh, sw),
            [ta, tb, C * m, 1],
          );
          const d = S.padOrCrop(dy, ta - 1, hq - ho, tb - 1, wq - wo);
          row.push(S.run("DepthwiseConv2dNative", { x: d, filter: sub }, {
            strides: [1, 1],
            pad: "valid",
            dilations: [1, 1],
          }));
        }
        phases.push(row);
      }
      const full = S.interleave(phases, sh, sw); // [b, hq·sh, wq·sw, C·m]
      let dx = S.padOrCrop(full, -pt, H + pt - hq * sh, -pl, W + pl - wq * sw); // [b, H, W, C·m]
      if (m > 1) {
        dx = S.reshape(
          S.run("Sum", { x: S.reshape(dx, [b * H * W * C, m]) }, { axis: [1], keepDims: false }),
          [
            b,
            H,
            W,
            C,
          ],
        );
      }
      return S.keep(dx);
    } finally {
      S.dispose();
    }
  };
}

/** Run a cpu kernel on copies of the inputs and copy the result back (correct, slow; for rare configurations). */
export function onCpu(name: string, { inputs, backend, attrs = {} }: KernelArgs): TI {
  const cpu = tf.findBackend("cpu") as AnyBackend;
  if (!cpu) {
    throw new Error(`lib/kernels: '${name}' needs the cpu backend for a fallback, but it is not registered.`);
  }
  const ins: Record<string, TI> = {};
  for (const [k, t] of Object.entries(inputs)) {
    ins[k] = {
      dataId: cpu.write(backend.readSync(t.dataId), t.shape, t.dtype),
      shape: t.shape,
      dtype: t.dtype,
    };
  }
  try {
    const out = kernelFunc(name, "cpu")({ inputs: ins, backend: cpu, attrs }) as TI;
    const vals = cpu.readSync(out.dataId);
    cpu.disposeData(out.dataId);
    return backend.makeOutput(out.shape, out.dtype, undefined, vals);
  } finally {
    for (const t of Object.values(ins)) cpu.disposeData(t.dataId);
  }
}
