/**
 * A small scope for composing backend kernels inside a kernel implementation.
 *
 * Why: our replacement gradient kernels (conv, pooling, depthwise) are built out of other kernels of the same
 * backend (Conv2D, PadV2, Slice, …) called directly, below the engine: no tape, no tensor bookkeeping, no
 * extra copies. The scope tracks every intermediate so the kernel frees them all in `finally`, and offers the
 * few 4-D spatial helpers the kernels share. Everything here stays ≤ 4-D and avoids StridedSlice and
 * non-trivial transposes where it can, because those are slow on the wasm backend.
 */
import * as tf from "@tensorflow/tfjs";

/** Tensor handle as kernels see it. */
export type TI = tf.TensorInfo;
/** Attribute bag handed to kernels. */
export type Attrs = Record<string, unknown>;
// deno-lint-ignore no-explicit-any
type AnyBackend = any;
type KernelFn = (a: { inputs: Record<string, TI>; backend: AnyBackend; attrs: Attrs }) => TI | TI[];

/** Look up a kernel function, failing with a clear message when the backend lacks it. */
export function kernelFunc(name: string, backendName: string): KernelFn {
  const k = tf.getKernel(name, backendName);
  if (!k) throw new Error(`lib/kernels: kernel '${name}' is not registered for backend '${backendName}'.`);
  return k.kernelFunc as unknown as KernelFn;
}

/** Runs kernels of one backend and disposes every intermediate on `dispose()` except those passed to `keep()`. */
export class KernelScope {
  private temps: TI[] = [];
  constructor(readonly backend: AnyBackend, readonly backendName: string) {}

  /** Run kernel `name` on this backend; the output is tracked as a temporary. */
  run(name: string, inputs: Record<string, TI>, attrs: Attrs = {}): TI {
    const out = kernelFunc(name, this.backendName)({ inputs, backend: this.backend, attrs });
    if (Array.isArray(out)) throw new Error(`lib/kernels: kernel '${name}' returned several outputs.`);
    this.temps.push(out);
    return out;
  }

  /** Track a tensor created outside `run` (e.g. with backend.write) for disposal. */
  track(t: TI): TI {
    this.temps.push(t);
    return t;
  }

  /** Exclude `t` from disposal (the kernel's result). */
  keep(t: TI): TI {
    const i = this.temps.lastIndexOf(t);
    if (i >= 0) this.temps.splice(i, 1);
    return t;
  }

  /** Free all tracked intermediates. */
  dispose(): void {
    for (const t of this.temps) this.backend.disposeData(t.dataId);
    this.temps.length = 0;
  }

  reshape(x: TI, shape: number[]): TI {
    if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
    return this.run("Reshape", { x }, { shape });
  }

  transpose(x: TI, perm: number[]): TI {
    if (perm.every((p, i) => p === i)) return x;
    return this.run("Transpose", { x }, { perm });
  }

  slice(x: TI, begin: number[], size: number[]): TI {
    if (begin.every((b) => b === 0) && size.every((s, i) => s === x.shape[i])) return x;
    return this.run("Slice", { x }, { begin, size });
  }

  concat(xs: TI[], axis: number): TI {
    return xs.length === 1 ? xs[0] : this.run("Concat", xs as unknown as Record<string, TI>, { axis });
  }

  conv2d(x: TI, filter: TI, strides: [number, number], dilations: [number, number] = [1, 1]): TI {
    return this.run("Conv2D", { x, filter }, { strides, pad: "valid", dataFormat: "NHWC", dilations });
  }

  /** NHWC: pad (positive amounts) or crop (negative amounts) along H and W, padding with `value`. */
  padOrCrop(x: TI, top: number, bottom: number, left: number, right: number, value = 0): TI {
    let y = x;
    if (top > 0 || bottom > 0 || left > 0 || right > 0) {
      const paddings = [[0, 0], [Math.max(top, 0), Math.max(bottom, 0)], [
        Math.max(left, 0),
        Math.max(right, 0),
      ], [
        0,
        0,
      ]];
      y = this.run("PadV2", { x: y }, { paddings, constantValue: value });
    }
    if (top < 0 || bottom < 0 || left < 0 || right < 0) {
      const [b, h, w, c] = y.shape;
      const t0 = Math.max(-top, 0), l0 = Math.max(-left, 0);
      const hh = h - t0 - Math.max(-bottom, 0), ww = w - l0 - Math.max(-right, 0);
      y = this.slice(y, [0, t0, l0, 0], [b, hh, ww, c]);
    }
    return y;
  }

  /** NHWC: insert (s-1) zeros after every row/column: [B,H,W,C] → [B,H·sh,W·sw,C]. */
  dilate(x: TI, sh: number, sw: number): TI {
    if (sh === 1 && sw === 1) return x;
    const [b, h, w, c] = x.shape;
    const rows = this.reshape(x, [b * h, 1, w, c]);
    const paddings = [[0, 0], [0, sh - 1], [0, 0], [0, (sw - 1) * c]];
    const p = this.run("PadV2", { x: rows }, { paddings, constantValue: 0 });
    // p is [b*h, sh, w, sw*c] with the data at [:,0,:,0:c]: the last axis of width sw*c per column already
    // interleaves (value, zeros…) along W.
    return this.reshape(p, [b, h * sh, w * sw, c]);
  }

  /**
   * NHWC strided sampling without StridedSlice: y[b,i,j,c] = x[b, a + i·sh, c0 + j·sw, c] for i < oh, j < ow,
   * positions outside x read `fill`.
   */
  sample(x: TI, a: number, c0: number, oh: number, ow: number, sh: number, sw: number, fill = 0): TI {
    const [b, h, w, c] = x.shape;
    const t = this.padOrCrop(x, -a, a + oh * sh - h, -c0, c0 + ow * sw - w, fill); // [b, oh·sh, ow·sw, c]
    if (sh === 1 && sw === 1) return t;
    const r = this.reshape(t, [b * oh, sh, ow, sw * c]);
    return this.reshape(this.slice(r, [0, 0, 0, 0], [b * oh, 1, ow, c]), [b, oh, ow, c]);
  }

  /**
   * NHWC inverse of phase splitting: phases[p][q] are [B,Hq,Wq,C] grids with out[b, i·sh+p, j·sw+q, c] =
   * phases[p][q][b,i,j,c] → [B, Hq·sh, Wq·sw, C].
   */
  interleave(phases: TI[][], sh: number, sw: number): TI {
    const [b, hq, wq, c] = phases[0][0].shape;
    const rows = phases.map((row) => this.reshape(this.concat(row, 3), [b, hq, 1, wq * sw * c]));
    return this.reshape(this.concat(rows, 2), [b, hq * sh, wq * sw, c]);
  }
}
