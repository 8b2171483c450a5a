/**
 * Params deps: the values of the config keys a stage declares, in a stable form the lock can compare.
 *
 * Why: a stage must rerun when a key it reads changes and must not when an unrelated key does. The
 * manifest names keys (`seed`, `data.splits`) or subtrees (`teacher.*`); their values are serialised
 * with sorted object keys so that the same config always gives the same hash, and changes are reported
 * leaf by leaf ("teacher.lr: 0.01 → 0.003") rather than as two opaque hashes.
 */

import { sha256Text } from "./hash.ts";

/** JSON with object keys sorted at every level (undefined fields dropped), for hashing and comparing. */
export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== "object") {
    return value === undefined ? "null" : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k])}`).join(",")}}`;
}

/**
 * The value of a declared params key in a resolved config: `a.b` is that key, `a.*` the whole subtree
 * under `a`, `*` the whole config. `found` is false when a path segment is missing.
 *
 * @example
 * ```ts
 * selectParam({ teacher: { lr: 0.01 } }, "teacher.*"); // { found: true, value: { lr: 0.01 } }
 * ```
 */
export function selectParam(config: unknown, key: string): { found: boolean; value: unknown } {
  if (key === "*") return { found: true, value: config };
  const parts = (key.endsWith(".*") ? key.slice(0, -2) : key).split(".");
  let cur: unknown = config;
  for (const p of parts) {
    if (cur === null || typeof cur !== "object" || !(p in (cur as object))) {
      return { found: false, value: undefined };
    }
    cur = (cur as Record<string, unknown>)[p];
  }
  return { found: true, value: cur };
}

/** A params value as recorded in the lock. */
export interface ParamValue {
  value: unknown;
  hash: string;
}

/** Value and hash of one params key (throws nothing; `found` tells whether the key exists). */
export function paramValue(config: unknown, key: string): ParamValue & { found: boolean } {
  const { found, value } = selectParam(config, key);
  return { found, value, hash: sha256Text(stableStringify(value ?? null)).slice(0, 16) };
}

/** A short printable form of a value (JSON, cut to `max` characters). */
export function shortValue(v: unknown, max = 40): string {
  const s = v === undefined ? "(absent)" : stableStringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * The leaves that differ between two values, as `path: old → new` (paths joined with dots under `prefix`).
 *
 * @example
 * ```ts
 * diffValues("teacher", { lr: 0.01, wd: 0 }, { lr: 0.003, wd: 0 }); // ["teacher.lr: 0.01 → 0.003"]
 * ```
 */
export function diffValues(prefix: string, a: unknown, b: unknown): string[] {
  if (stableStringify(a) === stableStringify(b)) return [];
  const isObj = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort();
    return keys.flatMap((k) => diffValues(prefix ? `${prefix}.${k}` : k, ao[k], bo[k]));
  }
  return [`${prefix || "(config)"}: ${shortValue(a)} → ${shortValue(b)}`];
}
