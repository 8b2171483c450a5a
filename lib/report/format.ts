/**
 * Fixed number formatting for the report.
 *
 * Why this module exists: the report must be byte-identical for identical inputs on any machine, so no
 * `toLocaleString` (locale-dependent) and one fixed precision per kind of number; tests parse the
 * markdown back with {@link parseCell}, so formatting and parsing live side by side.
 *
 * @module
 */

/** Shown for a missing or non-finite value. */
export const DASH = "—";

function fixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

function ok(x: number | null | undefined): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

/** Fraction → "81.30 %". */
export function pct(x: number | null | undefined): string {
  return ok(x) ? `${fixed(x * 100, 2)} %` : DASH;
}

/** Difference of two fractions in percentage points → "+1.23 pts" / "−8.23 pts". */
export function pts(d: number | null | undefined): string {
  if (!ok(d)) return DASH;
  const s = fixed(Math.abs(d) * 100, 2);
  return `${d < 0 && s !== "0.00" ? "−" : "+"}${s} pts`;
}

/** Integer with comma thousands separators → "23,576,165". */
export function int(x: number | null | undefined): string {
  if (!ok(x)) return DASH;
  const neg = x < 0;
  const digits = String(Math.round(Math.abs(x)));
  const groups: string[] = [];
  for (let e = digits.length; e > 0; e -= 3) groups.unshift(digits.slice(Math.max(0, e - 3), e));
  return (neg ? "-" : "") + groups.join(",");
}

/** Bytes → "512 B", "12.34 KiB", "90.12 MiB", "1.50 GiB". */
export function bytes(x: number | null | undefined): string {
  if (!ok(x)) return DASH;
  if (Math.abs(x) < 1024) return `${Math.round(x)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = x / 1024;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${fixed(v, 2)} ${units[u]}`;
}

/** Milliseconds → "12.34 ms". */
export function ms(x: number | null | undefined): string {
  return ok(x) ? `${fixed(x, 2)} ms` : DASH;
}

/** Images per second → "1234.5 img/s". */
export function ips(x: number | null | undefined): string {
  return ok(x) ? `${fixed(x, 1)} img/s` : DASH;
}

/** Ratio → "4.39×". */
export function times(x: number | null | undefined): string {
  return ok(x) ? `${fixed(x, 2)}×` : DASH;
}

/** Plain fixed decimals → "0.1438". */
export function dec(x: number | null | undefined, digits = 4): string {
  return ok(x) ? fixed(x, digits) : DASH;
}

/** Seconds → "0.4 s", "12.3 s", "3 min 05 s", "1 h 02 min". */
export function duration(s: number | null | undefined): string {
  if (!ok(s)) return DASH;
  if (s < 60) return `${fixed(s, 1)} s`;
  const total = Math.round(s);
  if (total < 3600) return `${Math.floor(total / 60)} min ${String(total % 60).padStart(2, "0")} s`;
  const mins = Math.round(s / 60);
  return `${Math.floor(mins / 60)} h ${String(mins % 60).padStart(2, "0")} min`;
}

/** Escapes text for a GFM table cell or inline prose (pipes, angle brackets, ampersands, newlines). */
export function cell(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\|/g, "\\|")
    .replace(/[\r\n]+/g, " ");
}

/**
 * Parses a cell written by the formatters above back to a number in the unit of the input
 * (fractions for "%" and "pts", bytes for sizes); null for {@link DASH}.
 */
export function parseCell(s: string): number | null {
  const t = s.replace(/\*\*/g, "").trim();
  if (t === DASH || t === "") return null;
  const m = /^([−+-]?[0-9][0-9,]*(?:\.[0-9]+)?)\s*(%|pts|B|KiB|MiB|GiB|TiB|ms|img\/s|×)?$/.exec(t);
  if (!m) throw new Error(`parseCell: cannot parse "${s}" as a report number.`);
  const v = Number(m[1].replace(/,/g, "").replace("−", "-"));
  const mult: Record<string, number> = {
    "%": 0.01,
    pts: 0.01,
    KiB: 1024,
    MiB: 1024 ** 2,
    GiB: 1024 ** 3,
    TiB: 1024 ** 4,
  };
  return v * (mult[m[2] ?? ""] ?? 1);
}

/** "1 image", "2 images": a count with its noun, pluralised by appending "s". */
export function count(n: number, noun: string): string {
  return `${int(n)} ${noun}${n === 1 ? "" : "s"}`;
}
