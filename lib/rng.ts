/**
 * Seeded, serialisable random numbers for the whole pipeline.
 *
 * Exact resume (same data order, same augmentation, same init) needs every random draw to come from a generator
 * whose state can be saved in a checkpoint and whose streams can be split deterministically ("teacher/init",
 * per-example augmentation, …). `Math.random` gives neither, so lib code uses this instead.
 *
 * The generator is xoshiro128** (32-bit words, period 2^128 − 1), seeded through SplitMix32.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const r = new Rng("teacher/init");
 * const u = r.next(); // [0, 1)
 * const child = r.fork("dropout"); // parent not advanced
 * const again = Rng.fromState(r.state());
 * ```
 * @module
 */

const TWO_POW_32 = 4294967296;

/** SplitMix32-style finaliser: a bijective 32-bit mix. */
function _mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of a string, continuing from `h`. */
function _hashString(s: string, h: number): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A stable 32-bit hash of a list of strings and numbers (e.g. a per-example seed from seed, epoch, position).
 * Numbers and strings are tagged so `hashSeed(1)` and `hashSeed("1")` differ; the order of parts matters.
 *
 * @example
 * ```ts
 * const s = hashSeed(42, "epoch", 3, 17);
 * ```
 */
export function hashSeed(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    if (typeof p === "number") {
      if (!Number.isFinite(p)) throw new Error(`hashSeed: expected a finite number, got ${p}.`);
      h = _hashString("n", h);
      // integers and non-integers both hashed through their exact decimal representation's bits
      const lo = (p % TWO_POW_32) >>> 0;
      const hi = Math.floor(p / TWO_POW_32) >>> 0;
      h = _mix32(h ^ lo);
      h = _mix32(h ^ hi);
      if (!Number.isInteger(p)) h = _hashString(String(p), h);
    } else {
      h = _hashString("s" + p.length + ":", h);
      h = _hashString(p, h);
    }
    h = _mix32(h);
  }
  return h >>> 0;
}

/**
 * Small fast PRNG (xoshiro128**), fully serialisable through `state()` / `Rng.fromState()`.
 *
 * @example
 * ```ts
 * const rng = new Rng(0);
 * const i = rng.int(10); // 0..9
 * ```
 */
export class Rng {
  #s: Uint32Array;

  /** Seeds the generator; string seeds are hashed with `hashSeed`, numbers are used through their 32-bit hash. */
  constructor(seed: number | string) {
    const h = hashSeed(seed);
    this.#s = new Uint32Array(4);
    // SplitMix32 expansion of the 32-bit seed into 128 bits of state (never all zero).
    let x = h;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      this.#s[i] = _mix32(x);
    }
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /** Next raw 32-bit unsigned integer. */
  uint32(): number {
    const s = this.#s;
    const r = Math.imul(_rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = _rotl(s[3], 11);
    return r;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.uint32() >>> 5; // 27 bits
    const lo = this.uint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). `n` must be a positive integer ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) {
      throw new Error(`Rng.int: expected a positive integer up to 2^32, got ${n}.`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const u = this.uint32();
      if (u < limit) return u % n;
    }
  }

  /** Standard normal sample (Box–Muller, no cached spare so the state stays exactly serialisable). */
  normal(): number {
    let u = this.next();
    while (u <= 0) u = this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * An independent child stream determined by this generator's current state and `label`.
   * Does not advance the parent: `fork("a")` twice gives the same stream.
   */
  fork(label: string): Rng {
    const s = this.#s;
    const child = new Rng(0);
    const h = hashSeed(s[0], s[1], s[2], s[3], label);
    let x = h;
    const cs = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      cs[i] = _mix32(x ^ s[(i + 1) & 3]);
    }
    if ((cs[0] | cs[1] | cs[2] | cs[3]) === 0) cs[0] = 1;
    child.#s = cs;
    return child;
  }

  /** The full generator state as four uint32 numbers (JSON-friendly). */
  state(): number[] {
    return Array.from(this.#s);
  }

  /** Rebuilds a generator from `state()`; the restored one continues exactly where the saved one was. */
  static fromState(s: number[]): Rng {
    if (
      !Array.isArray(s) || s.length !== 4 ||
      s.some((v) => !Number.isInteger(v) || v < 0 || v >= TWO_POW_32)
    ) {
      throw new Error(`Rng.fromState: expected an array of four uint32 numbers, got ${JSON.stringify(s)}.`);
    }
    if (s.every((v) => v === 0)) {
      throw new Error("Rng.fromState: an all-zero state is invalid for xoshiro128**.");
    }
    const r = new Rng(0);
    r.#s = Uint32Array.from(s);
    return r;
  }
}

function _rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
