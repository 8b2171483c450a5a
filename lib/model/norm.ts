/**
 * Normalisation layers of the BiT ResNet family (GroupNorm and weight standardisation), written for speed on
 * the tfjs wasm backend.
 *
 * Why this module exists: the textbook GroupNorm (`tf.moments` over a 5-D [B,H,W,G,C/G] view, then a 5-D
 * broadcast subtract/divide) spends more time in slow wasm broadcasting and reductions than the ResNet spends
 * in its convolutions, and autodiff through it adds a dozen more full-size passes in the backward pass. Here
 * every tensor stays 3-D/4-D, per-channel sums are batched matrix products with a row of ones (XNNPACK-fast),
 * all per-group work happens on tiny [B,G,C/G] tensors, and the output is one per-(batch, channel)
 * scale/shift. The backward pass is written by hand (`tf.customGrad`): two per-channel sums and three
 * full-size element-wise ops instead of the autodiff chain. The maths is identical to the moments-based
 * definition (tested against it, values and gradients, in tests/model_norm_test.ts).
 */
import * as tf from "@tensorflow/tfjs";
import { GN_RELU, GN_RELU_GRAD } from "../kernels/native/kernels.ts";

/** Per-(batch, channel) sums over the spatial axis of x3 [B, N, C] → [B, 1, C], via matMul with ones. */
function spatialSum(x3: tf.Tensor3D): tf.Tensor3D {
  const [b, n] = x3.shape;
  return tf.matMul(tf.ones([b, 1, n]), x3);
}

/** [B,1,C] → [B,G,C/G] summed over the last axis → [B,G,1]. */
function groupSum(s: tf.Tensor3D, groups: number): tf.Tensor3D {
  const [b, , c] = s.shape;
  return tf.sum(tf.reshape(s, [b, groups, c / groups]), 2, true);
}

/** Broadcast a per-group value [B,G,1] to per-channel [B,1,C]. */
function perChannel(g: tf.Tensor3D, c: number): tf.Tensor3D {
  const [b, groups] = g.shape;
  return tf.reshape(tf.tile(g, [1, 1, c / groups]), [b, 1, c]);
}

/**
 * GroupNorm over NHWC input: statistics per (example, group of C/groups channels) over H, W and the group's
 * channels, then a per-channel affine `scale`, `bias` ([C] each). Biased variance, as in TF/flax.
 *
 * @example
 * ```ts
 * const y = groupNorm(tf.randomNormal([2, 8, 8, 32]) as tf.Tensor4D, tf.ones([32]), tf.zeros([32]), 32);
 * ```
 */
export function groupNorm(
  x: tf.Tensor4D,
  scale: tf.Tensor,
  bias: tf.Tensor,
  groups: number,
  eps = 1e-5,
): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(`lib/model/norm.ts groupNorm: channels ${c} must be divisible by groups ${groups}.`);
  }
  if (scale.size !== c || bias.size !== c) {
    throw new Error(
      `lib/model/norm.ts groupNorm: scale/bias must have ${c} elements, got ${scale.size}/${bias.size}.`,
    );
  }
  const n = h * w * (c / groups);
  const gn = tf.customGrad((xIn, sIn, bIn, save) => {
    const x3 = tf.reshape(xIn as tf.Tensor, [b, h * w, c]) as tf.Tensor3D;
    const gamma = tf.reshape(sIn as tf.Tensor, [1, 1, c]) as tf.Tensor3D;
    const beta = tf.reshape(bIn as tf.Tensor, [1, 1, c]) as tf.Tensor3D;
    const mean = tf.div(groupSum(spatialSum(x3), groups), n) as tf.Tensor3D; // [B,G,1]
    const meanSq = tf.div(groupSum(spatialSum(tf.square(x3)), groups), n);
    const variance = tf.relu(tf.sub(meanSq, tf.square(mean)));
    const rstd = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor3D; // [B,G,1]
    const a = tf.mul(perChannel(rstd, c), gamma); // [B,1,C]
    const shift = tf.sub(beta, tf.mul(perChannel(mean, c), a)); // [B,1,C]
    const y = tf.reshape(tf.add(tf.mul(x3, a), shift), [b, h, w, c]);
    (save as tf.GradSaveFunc)([x3, gamma, mean, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx3, sGamma, sMean, sRstd] = saved as tf.Tensor3D[];
        const dy3 = tf.reshape(dy, [b, h * w, c]) as tf.Tensor3D;
        const sDy = spatialSum(dy3); // [B,1,C]   Σ_hw dy
        const sDyX = spatialSum(tf.mul(dy3, sx3) as tf.Tensor3D); // [B,1,C]   Σ_hw dy·x
        const g1 = groupSum(tf.mul(sDy, sGamma) as tf.Tensor3D, groups); // Σ over group of γ·dy
        const g2 = groupSum(tf.mul(sDyX, sGamma) as tf.Tensor3D, groups); // Σ over group of γ·dy·x
        // dx = rstd·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) = dy·A + x·P + Q, with per-(b,c) A, P, Q.
        const r3 = tf.pow(sRstd, 3);
        const p = tf.neg(tf.div(tf.mul(r3, tf.sub(g2, tf.mul(sMean, g1))), n)) as tf.Tensor3D; // [B,G,1]
        const q = tf.sub(tf.neg(tf.div(tf.mul(sRstd, g1), n)), tf.mul(sMean, p)) as tf.Tensor3D;
        const aC = tf.mul(perChannel(sRstd, c), sGamma);
        const dx = tf.add(tf.mul(dy3, aC), tf.add(tf.mul(sx3, perChannel(p, c)), perChannel(q, c)));
        // dγ_c = Σ_b rstd·(Σ dy·x − μ·Σ dy),  dβ_c = Σ_b Σ dy
        const rC = perChannel(sRstd, c), mC = perChannel(sMean, c);
        const dGamma = tf.sum(tf.mul(rC, tf.sub(sDyX, tf.mul(mC, sDy))), [0, 1]);
        const dBeta = tf.sum(sDy, [0, 1]);
        return [tf.reshape(dx, [b, h, w, c]), tf.reshape(dGamma, scale.shape), tf.reshape(dBeta, bias.shape)];
      },
    };
  });
  return gn(x, scale, bias) as tf.Tensor4D;
}

/**
 * ReLU(GroupNorm(x)), the pre-activation of every BiT unit. Where the backend has our fused native kernel
 * (wasm with lib/kernels/native loaded) it is one kernel forward and one backward; elsewhere it is
 * `relu(groupNorm(…))`. Same maths; the native kernel sums its statistics in double.
 */
export function groupNormRelu(
  x: tf.Tensor4D,
  scale: tf.Tensor,
  bias: tf.Tensor,
  groups: number,
  eps = 1e-5,
  opts: { inference?: boolean } = {},
): tf.Tensor4D {
  if (!tf.getKernel(GN_RELU, tf.getBackend())) return tf.relu(groupNorm(x, scale, bias, groups, eps));
  const c = x.shape[3];
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(`lib/model/norm.ts groupNormRelu: channels ${c} must be divisible by groups ${groups}.`);
  }
  if (scale.size !== c || bias.size !== c) {
    throw new Error(
      `lib/model/norm.ts groupNormRelu: scale/bias must have ${c} elements, got ${scale.size}/${bias.size}.`,
    );
  }
  const attrs = { groups, eps };
  if (opts.inference) {
    // no gradient will be asked for: skip customGrad's bookkeeping, drop the statistics at once
    const [y, mean, rstd] = tf.engine().runKernel(GN_RELU, { x, scale, bias }, attrs) as tf.Tensor[];
    tf.dispose([mean, rstd]);
    return y as tf.Tensor4D;
  }
  const f = tf.customGrad((xIn, sIn, bIn, save) => {
    const [y, mean, rstd] = tf.engine().runKernel(
      GN_RELU,
      { x: xIn as tf.Tensor, scale: sIn as tf.Tensor, bias: bIn as tf.Tensor },
      attrs,
    ) as tf.Tensor[];
    (save as tf.GradSaveFunc)([xIn as tf.Tensor, sIn as tf.Tensor, bIn as tf.Tensor, mean, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, ss, sb, sm, sr] = saved;
        return tf.engine().runKernel(
          GN_RELU_GRAD,
          { dy, x: sx, scale: ss, bias: sb, mean: sm, rstd: sr },
          attrs,
        ) as tf.Tensor[];
      },
    };
  });
  return f(x, scale, bias) as tf.Tensor4D;
}

/**
 * Weight standardisation of a conv kernel (HWIO, or any rank ≥ 2 with outputs last): per output channel,
 * subtract the mean and divide by sqrt(var + eps) over all other axes. Biased variance (two-pass, so tiny
 * variances with eps = 1e-10 stay exact). Reductions use matMul with ones (no slow wasm axis-0 reductions).
 *
 * @example
 * ```ts
 * const ws = standardizeKernel(kernel as tf.Tensor4D, 1e-10); // then tf.conv2d(x, ws, …)
 * ```
 */
export function standardizeKernel<T extends tf.Tensor>(w: T, eps: number): T {
  if (w.rank < 2) {
    throw new Error(`lib/model/norm.ts standardizeKernel: kernel must have rank ≥ 2, got ${w.rank}.`);
  }
  const co = w.shape[w.rank - 1];
  const n = w.size / co;
  const ws = tf.customGrad((wIn, save) => {
    const w2 = tf.reshape(wIn as tf.Tensor, [n, co]) as tf.Tensor2D;
    const ones = tf.ones([1, n]) as tf.Tensor2D;
    const mean = tf.div(tf.matMul(ones, w2), n); // [1,co]
    const centred = tf.sub(w2, mean) as tf.Tensor2D;
    const variance = tf.div(tf.matMul(ones, tf.square(centred) as tf.Tensor2D), n);
    const rstd = tf.rsqrt(tf.add(variance, eps)); // [1,co]
    const wh = tf.mul(centred, rstd) as tf.Tensor2D; // ŵ
    (save as tf.GradSaveFunc)([wh, rstd]);
    return {
      value: tf.reshape(wh, w.shape),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sWh, sRstd] = saved as tf.Tensor2D[];
        const d2 = tf.reshape(dy, [n, co]) as tf.Tensor2D;
        const o = tf.ones([1, n]) as tf.Tensor2D;
        const mD = tf.div(tf.matMul(o, d2), n); // mean(dŵ)
        const mDW = tf.div(tf.matMul(o, tf.mul(d2, sWh) as tf.Tensor2D), n); // mean(dŵ·ŵ)
        const dw = tf.mul(tf.sub(tf.sub(d2, mD), tf.mul(sWh, mDW)), sRstd);
        return [tf.reshape(dw, w.shape)];
      },
    };
  });
  return ws(w) as T;
}
