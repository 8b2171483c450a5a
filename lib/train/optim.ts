// Optimizers with the exact update rules of the recipes we reproduce, written out by hand because tfjs'
// built-in optimizers differ from them (no global-norm clipping, decay on every variable, decay not scaled by the
// schedule, Adam eps 1e-7). Both optimizers update the model's tf.Variables in place inside tf.tidy, keep
// their state in tf.Variables, and can export/restore that state bit-exactly for resumable training.
import * as tf from "@tensorflow/tfjs";

/** A tensor as it comes back from `loadWeights` / `loadCheckpoint` (or a live tensor). */
export type StateEntry = tf.Tensor | { shape: number[]; data: Float32Array };

/** Which parameters get weight decay: names ending in `/kernel`, as big_vision's kernel mask (conv and dense kernels, not GN or biases). */
export const KERNEL_PATTERN = /\/kernel$/;

/** Options of {@link Adam}. */
export interface AdamOptions {
  /** base learning rate (big_vision `lr`), multiplied into the Adam direction only. */
  lr: number;
  /** decoupled weight decay, applied as `+ wd·w` on matching params, scaled by the schedule but not by `lr`. */
  wd?: number;
  /** global-norm clipping threshold applied to the raw gradients; `null` disables it. Default 1.0. */
  clipNorm?: number | null;
  b1?: number;
  b2?: number;
  eps?: number;
  /** which params get weight decay; default {@link KERNEL_PATTERN}. */
  decay?: RegExp;
}

/** Options of {@link SgdMomentum}. */
export interface SgdOptions {
  /** base learning rate; the update is `lr·sched·d`. */
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  /** coupled L2 weight decay (PyTorch semantics: `d = g + wd·w` before momentum) on matching params. */
  wd?: number;
  /** optional global-norm clipping of the raw gradients; default off. */
  clipNorm?: number | null;
  /** which params get weight decay; default {@link KERNEL_PATTERN}. */
  decay?: RegExp;
}

/** What one optimizer step reports. */
export interface StepInfo {
  /** global L2 norm of the raw gradients (before clipping). */
  gradNorm: number;
  /** step counter after this update (1 after the first step). */
  count: number;
}

/**
 * Runs `f` and returns its value and the gradient of that value with respect to every parameter in `params`,
 * keyed by parameter name (tf.variableGrads keys by tfjs variable name, which is not ours). The caller disposes
 * `value` and the grads (or runs this inside tf.tidy and keeps what it needs).
 */
export function valueAndGrads(
  params: Map<string, tf.Variable>,
  f: () => tf.Scalar,
): { value: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const vars = [...params.values()];
  const { value, grads } = tf.variableGrads(f, vars);
  const out = new Map<string, tf.Tensor>();
  for (const [name, v] of params) {
    const g = grads[v.name];
    if (!g) throw new Error(`valueAndGrads: no gradient came back for parameter "${name}".`);
    out.set(name, g);
  }
  return { value, grads: out };
}

function checkGrads(who: string, params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>): void {
  for (const [name, v] of params) {
    const g = grads.get(name);
    if (!g) throw new Error(`${who}.step: no gradient for parameter "${name}".`);
    if (g.shape.join() !== v.shape.join()) {
      throw new Error(
        `${who}.step: gradient for "${name}" has shape [${g.shape}], parameter has [${v.shape}].`,
      );
    }
  }
  for (const name of grads.keys()) {
    if (!params.has(name)) throw new Error(`${who}.step: gradient for unknown parameter "${name}".`);
  }
}

/** Global L2 norm over all gradients, as a scalar tensor (call inside tidy). */
function globalNorm(grads: tf.Tensor[]): tf.Scalar {
  const sq = grads.map((g) => tf.sum(tf.square(g)));
  return tf.sqrt(sq.length === 1 ? sq[0] : tf.addN(sq)) as tf.Scalar;
}

function toTensor(e: StateEntry, where: string, shape: number[]): tf.Tensor {
  const s = e instanceof tf.Tensor ? e.shape : e.shape;
  if (s.join() !== shape.join()) throw new Error(`${where}: expected shape [${shape}], got [${s}].`);
  return e instanceof tf.Tensor ? tf.cast(e, "float32") : tf.tensor(e.data, shape, "float32");
}

function zerosVar(v: tf.Variable): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(v), false));
}

/** Shared bookkeeping: named slot variables (moments) per parameter and a step counter. */
abstract class SlotOptimizer {
  protected count = 0;
  protected readonly slots = new Map<string, Map<string, tf.Variable>>();
  private readonly countVar = tf.tidy(() => tf.variable(tf.scalar(0), false));

  constructor(
    protected readonly who: string,
    protected readonly params: Map<string, tf.Variable>,
    slotNames: string[],
  ) {
    for (const s of slotNames) {
      const m = new Map<string, tf.Variable>();
      for (const [name, v] of params) m.set(name, zerosVar(v));
      this.slots.set(s, m);
    }
  }

  /** Number of updates applied so far. */
  get steps(): number {
    return this.count;
  }

  /**
   * Optimizer state: `"count"` (scalar) and `"<slot>/<param name>"` per slot (`mu/`, `nu/` for Adam, `momentum/`
   * for SGD). The tensors are the optimizer's own live variables: do not dispose or modify them; read them
   * (e.g. saveCheckpoint) before the next `step`. Calling this allocates nothing, so it cannot leak.
   */
  state(): Map<string, tf.Tensor> {
    if (this.countVar.dataSync()[0] !== this.count) {
      tf.tidy(() => this.countVar.assign(tf.scalar(this.count)));
    }
    const out = new Map<string, tf.Tensor>();
    out.set("count", this.countVar);
    for (const [s, m] of this.slots) for (const [name, v] of m) out.set(`${s}/${name}`, v);
    return out;
  }

  /** Restores a state produced by {@link state} (possibly through saveWeights/loadWeights); exact resume. */
  restore(state: Map<string, StateEntry>): void {
    const c = state.get("count");
    if (!c) throw new Error(`${this.who}.restore: state has no "count" entry.`);
    const cv = c instanceof tf.Tensor ? c.dataSync()[0] : c.data[0];
    if (!Number.isInteger(cv) || cv < 0) throw new Error(`${this.who}.restore: bad "count" value ${cv}.`);
    const expected = new Set<string>(["count"]);
    for (const [s, m] of this.slots) {
      for (const [name, v] of m) {
        const key = `${s}/${name}`;
        expected.add(key);
        const e = state.get(key);
        if (!e) throw new Error(`${this.who}.restore: state has no "${key}" entry.`);
        tf.tidy(() => v.assign(toTensor(e, `${this.who}.restore "${key}"`, v.shape)));
      }
    }
    for (const k of state.keys()) {
      if (!expected.has(k)) throw new Error(`${this.who}.restore: unexpected state entry "${k}".`);
    }
    this.count = cv;
  }

  /** Frees the optimizer's slot variables (not the parameters). */
  dispose(): void {
    for (const m of this.slots.values()) for (const v of m.values()) v.dispose();
    this.slots.clear();
    this.countVar.dispose();
  }
}

/**
 * Adam with big_vision semantics (`bv_optax.make`): clip the gradients by global norm (1.0) → scale_by_adam
 * (b1 0.9, b2 0.999, eps 1e-8, bias-corrected, eps outside the sqrt) → ×lr → + wd·w on `…/kernel` params → ×sched →
 * descent. So `Δw = −sched·(lr·m̂/(√v̂+eps) + wd·w)`. Moments are kept in float32 (big_vision keeps the first
 * moment in bfloat16).
 */
export class Adam extends SlotOptimizer {
  readonly lr: number;
  readonly wd: number;
  readonly clipNorm: number | null;
  readonly b1: number;
  readonly b2: number;
  readonly eps: number;
  readonly decay: RegExp;

  constructor(params: Map<string, tf.Variable>, opts: AdamOptions) {
    super("Adam", params, ["mu", "nu"]);
    this.lr = opts.lr;
    this.wd = opts.wd ?? 0;
    this.clipNorm = opts.clipNorm === undefined ? 1.0 : opts.clipNorm;
    this.b1 = opts.b1 ?? 0.9;
    this.b2 = opts.b2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.decay = opts.decay ?? KERNEL_PATTERN;
  }

  /** Applies one update with schedule multiplier `sched`. Does not dispose `grads`. */
  step(grads: Map<string, tf.Tensor>, sched: number): StepInfo {
    checkGrads(this.who, this.params, grads);
    const t = this.count + 1;
    const bc1 = 1 - Math.pow(this.b1, t);
    const bc2 = 1 - Math.pow(this.b2, t);
    const mu = this.slots.get("mu")!;
    const nu = this.slots.get("nu")!;
    let gradNorm = 0;
    tf.tidy(() => {
      const names = [...this.params.keys()];
      const norm = globalNorm(names.map((n) => grads.get(n)!));
      gradNorm = norm.dataSync()[0];
      const clipScale = this.clipNorm !== null && gradNorm > this.clipNorm ? this.clipNorm / gradNorm : 1;
      for (const name of names) {
        const w = this.params.get(name)!;
        let g = grads.get(name)!;
        if (clipScale !== 1) g = tf.mul(g, clipScale);
        const m = tf.add(tf.mul(mu.get(name)!, this.b1), tf.mul(g, 1 - this.b1));
        const v = tf.add(tf.mul(nu.get(name)!, this.b2), tf.mul(tf.square(g), 1 - this.b2));
        mu.get(name)!.assign(m);
        nu.get(name)!.assign(v);
        let u = tf.mul(tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), this.eps)), this.lr);
        if (this.wd !== 0 && this.decay.test(name)) u = tf.add(u, tf.mul(w, this.wd));
        w.assign(tf.sub(w, tf.mul(u, sched)));
      }
    });
    this.count = t;
    return { gradNorm, count: t };
  }
}

/**
 * SGD with momentum, PyTorch semantics (the CIFAR teacher recipe was tuned with torch.optim.SGD): optional
 * global-norm clip → `d = g + wd·w` on kernels → `buf = μ·buf + d` → `d = nesterov ? d + μ·buf : buf` →
 * `w −= lr·sched·d`.
 */
export class SgdMomentum extends SlotOptimizer {
  readonly lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly wd: number;
  readonly clipNorm: number | null;
  readonly decay: RegExp;

  constructor(params: Map<string, tf.Variable>, opts: SgdOptions) {
    super("SgdMomentum", params, ["momentum"]);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0.9;
    this.nesterov = opts.nesterov ?? false;
    this.wd = opts.wd ?? 0;
    this.clipNorm = opts.clipNorm ?? null;
    this.decay = opts.decay ?? KERNEL_PATTERN;
  }

  /** Applies one update with schedule multiplier `sched`. Does not dispose `grads`. */
  step(grads: Map<string, tf.Tensor>, sched: number): StepInfo {
    checkGrads(this.who, this.params, grads);
    const bufs = this.slots.get("momentum")!;
    let gradNorm = 0;
    tf.tidy(() => {
      const names = [...this.params.keys()];
      const norm = globalNorm(names.map((n) => grads.get(n)!));
      gradNorm = norm.dataSync()[0];
      const clipScale = this.clipNorm !== null && gradNorm > this.clipNorm ? this.clipNorm / gradNorm : 1;
      const step = this.lr * sched;
      for (const name of names) {
        const w = this.params.get(name)!;
        let d = grads.get(name)!;
        if (clipScale !== 1) d = tf.mul(d, clipScale);
        if (this.wd !== 0 && this.decay.test(name)) d = tf.add(d, tf.mul(w, this.wd));
        const buf = tf.add(tf.mul(bufs.get(name)!, this.momentum), d);
        bufs.get(name)!.assign(buf);
        const dir = this.nesterov ? tf.add(d, tf.mul(buf, this.momentum)) : buf;
        w.assign(tf.sub(w, tf.mul(dir, step)));
      }
    });
    this.count += 1;
    return { gradNorm, count: this.count };
  }
}
