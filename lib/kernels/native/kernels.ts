/**
 * TF.js kernels for the wasm backend that run the native library (./build.ts) directly on the tensors' bytes in
 * the wasm heap, no copies in or out: Conv2D and both of its gradients, and a fused ReLU(GroupNorm(x)) with
 * its gradient (kernels of our own, `FunmatchGroupNormRelu[Grad]`, which lib/model/norm.ts uses when they are
 * registered).
 *
 * Why: convolutions are 60–80 % of a training step of the BiT nets; XNNPACK's wasm build does ~20 GFLOP/s
 * here, the native code 2–4× that on one core and scales over more. Once they are fast, GroupNorm's dozen
 * full-size wasm passes are the next half of the step; natively it is two passes forward and two backward.
 * Everything else (elementwise, the optimizer) stays on wasm.
 */
import * as tf from "@tensorflow/tfjs";
import type { Attrs, TI } from "../_scope.ts";
import { convInfo } from "../conv_grad.ts";
import type { NativeLib } from "./build.ts";

// deno-lint-ignore no-explicit-any
type WasmBackend = any;
type KernelArgs = { inputs: Record<string, TI>; backend: WasmBackend; attrs?: Attrs };

type Info = ReturnType<typeof convInfo>;

/** [B, H, W, Ci, KH, KW, Co, sh, sw, dh, dw, pad top, pad left, Ho, Wo], the C side's `geom`. */
function geometry(c: Info): Int32Array {
  return new Int32Array([
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.filterHeight,
    c.filterWidth,
    c.outChannels,
    c.strideHeight,
    c.strideWidth,
    c.dilationHeight,
    c.dilationWidth,
    c.padInfo.top,
    c.padInfo.left,
    c.outHeight,
    c.outWidth,
  ]);
}

const empty = (shape: number[]) => shape.some((d) => d === 0);

/** A float32 view of a tensor's bytes in the wasm heap (take it after any allocation: the heap may move). */
function heap(backend: WasmBackend, t: TI): Float32Array {
  if (t.dtype !== "float32") {
    throw new Error(`lib/kernels/native/kernels.ts: expected float32, got ${t.dtype}.`);
  }
  return backend.typedArrayFromHeap(t);
}

/** The three kernels, each calling the library with `threads` threads. */
export function nativeKernels(lib: NativeLib, threads: number): Record<string, tf.KernelFunc> {
  const s = lib.symbols;
  const conv2d = ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { x, filter } = inputs;
    const c = convInfo(x.shape, filter.shape, attrs, "Conv2D", (attrs.dilations ?? 1) as [number, number]);
    const out: TI = backend.makeOutput(c.outShape, "float32");
    if (empty(c.outShape)) return out;
    if (empty(x.shape) || empty(filter.shape)) return zeros(backend, out);
    s.fm_conv2d(heap(backend, x), heap(backend, filter), heap(backend, out), geometry(c), threads);
    return out;
  };
  const dfilter = ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { x, dy } = inputs;
    const filterShape = attrs.filterShape as number[];
    const c = convInfo(x.shape, filterShape, attrs, "Conv2DBackpropFilter");
    const out: TI = backend.makeOutput(filterShape, "float32");
    if (empty(filterShape)) return out;
    if (empty(x.shape) || empty(dy.shape)) return zeros(backend, out);
    s.fm_conv2d_dfilter(heap(backend, x), heap(backend, dy), heap(backend, out), geometry(c), threads);
    return out;
  };
  const dinput = ({ inputs, backend, attrs = {} }: KernelArgs): TI => {
    const { dy, filter } = inputs;
    const inputShape = attrs.inputShape as number[];
    const c = convInfo(inputShape, filter.shape, attrs, "Conv2DBackpropInput");
    const out: TI = backend.makeOutput(inputShape, "float32");
    if (empty(inputShape)) return out;
    if (empty(dy.shape) || empty(filter.shape)) return zeros(backend, out);
    s.fm_conv2d_dinput(heap(backend, dy), heap(backend, filter), heap(backend, out), geometry(c), threads);
    return out;
  };
  const gnRelu = ({ inputs, backend, attrs = {} }: KernelArgs): TI[] => {
    const { x, scale, bias } = inputs;
    const g = gnGeometry(x, attrs);
    const y: TI = backend.makeOutput(x.shape, "float32");
    const mean: TI = backend.makeOutput([g[0], g[3]], "float32");
    const rstd: TI = backend.makeOutput([g[0], g[3]], "float32");
    if (x.shape.some((d) => d === 0)) return [y, mean, rstd];
    s.fm_gn_relu(
      heap(backend, x),
      heap(backend, scale),
      heap(backend, bias),
      heap(backend, y),
      heap(backend, mean),
      heap(backend, rstd),
      g,
      attrs.eps as number,
      threads,
    );
    return [y, mean, rstd];
  };
  const gnReluGrad = ({ inputs, backend, attrs = {} }: KernelArgs): TI[] => {
    const { dy, x, scale, bias, mean, rstd } = inputs;
    const g = gnGeometry(x, attrs);
    const dx: TI = backend.makeOutput(x.shape, "float32");
    const dscale: TI = backend.makeOutput(scale.shape, "float32");
    const dbias: TI = backend.makeOutput(bias.shape, "float32");
    if (x.shape.some((d) => d === 0)) {
      for (const t of [dscale, dbias]) zeros(backend, t);
      return [dx, dscale, dbias];
    }
    s.fm_gn_relu_grad(
      heap(backend, dy),
      heap(backend, x),
      heap(backend, scale),
      heap(backend, bias),
      heap(backend, mean),
      heap(backend, rstd),
      heap(backend, dx),
      heap(backend, dscale),
      heap(backend, dbias),
      g,
      threads,
    );
    return [dx, dscale, dbias];
  };
  return {
    Conv2D: conv2d as unknown as tf.KernelFunc,
    Conv2DBackpropFilter: dfilter as unknown as tf.KernelFunc,
    Conv2DBackpropInput: dinput as unknown as tf.KernelFunc,
    [GN_RELU]: gnRelu as unknown as tf.KernelFunc,
    [GN_RELU_GRAD]: gnReluGrad as unknown as tf.KernelFunc,
  };
}

/** Our fused kernels' names: inputs {x, scale, bias} → [y, mean, rstd]; attrs {groups, eps}. */
export const GN_RELU = "FunmatchGroupNormRelu";
/** inputs {dy, x, scale, bias, mean, rstd} → [dx, dscale, dbias]; attrs {groups, eps}. */
export const GN_RELU_GRAD = "FunmatchGroupNormReluGrad";

/** [B, H·W, C, G] of an NHWC GroupNorm. */
function gnGeometry(x: TI, attrs: Attrs): Int32Array {
  const [b, h, w, c] = x.shape;
  const groups = attrs.groups as number;
  if (x.shape.length !== 4 || !Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(
      `lib/kernels/native/kernels.ts ${GN_RELU}: NHWC input with channels divisible by groups expected.`,
    );
  }
  return new Int32Array([b, h * w, c, groups]);
}

function zeros(backend: WasmBackend, out: TI): TI {
  heap(backend, out).fill(0);
  return out;
}
