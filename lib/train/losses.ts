// Training losses. Function matching uses big_vision's `kl` distance (with the T² factor the seed repo omits);
// the teacher is trained with plain softmax cross-entropy. Both are written with log_softmax so that no
// probability is ever logged directly (no clipping needed, no NaN at saturated logits).
import * as tf from "@tensorflow/tfjs";

/**
 * Distillation loss, batch mean of `T² · Σ_c p_t,c · (log p_t,c − log_softmax(s/T)_c)` with `p_t = softmax(t/T)`,
 * i.e. `T² · KL(softmax(t/T) ‖ softmax(s/T))`. `log p_t` comes from log_softmax (equal to big_vision's
 * `log(clip(p, 1e-8))` wherever p > 1e-8, and finite everywhere). Gradients flow only to what the student logits
 * depend on: compute the teacher logits outside the gradient function (or from variables not in its list).
 */
export function kdLoss(teacherLogits: tf.Tensor2D, studentLogits: tf.Tensor2D, T: number): tf.Scalar {
  if (teacherLogits.shape.join() !== studentLogits.shape.join()) {
    throw new Error(
      `kdLoss: teacher logits [${teacherLogits.shape}] and student logits [${studentLogits.shape}] differ in shape.`,
    );
  }
  if (!(T > 0)) throw new Error(`kdLoss: temperature must be > 0, got ${T}.`);
  return tf.tidy(() => {
    const logPt = tf.logSoftmax(tf.div(teacherLogits, T));
    const pt = tf.exp(logPt);
    const logPs = tf.logSoftmax(tf.div(studentLogits, T));
    const perExample = tf.sum(tf.mul(pt, tf.sub(logPt, logPs)), -1);
    return tf.mul(tf.mean(perExample), T * T) as tf.Scalar;
  });
}

/** Mean softmax cross-entropy of `logits` [B,C] against integer labels in [0, C). */
export function xentLoss(logits: tf.Tensor2D, labels: Int32Array | number[] | tf.Tensor1D): tf.Scalar {
  const [b, c] = logits.shape;
  const n = labels instanceof tf.Tensor ? labels.shape[0] : labels.length;
  if (n !== b) throw new Error(`xentLoss: ${n} labels for a batch of ${b} logits.`);
  if (!(labels instanceof tf.Tensor)) {
    for (let i = 0; i < n; i++) {
      const l = labels[i];
      if (!Number.isInteger(l) || l < 0 || l >= c) {
        throw new Error(`xentLoss: label ${l} at index ${i} is outside [0, ${c}).`);
      }
    }
  }
  return tf.tidy(() => {
    const lab = labels instanceof tf.Tensor
      ? tf.cast(labels, "int32")
      : tf.tensor1d(Array.from(labels), "int32");
    const onehot = tf.oneHot(lab as tf.Tensor1D, c);
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), -1))) as tf.Scalar;
  });
}
