/**
 * Progress reporting for long stages (downloads, training, evaluation).
 *
 * Stages run for minutes to hours, under a terminal or under the runner with stderr piped to a log. On a TTY a
 * single live line is redrawn (count/total, rate, ETA, extra fields); otherwise a plain line is printed at most
 * every 5 s so logs stay readable. Every plain line and every `log()` line is also appended to `logFile`.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 * const p = new Progress({ label: "distill", total: 1000, unit: "step" });
 * for (let i = 0; i < 1000; i++) p.tick(1, { loss: 0.5 });
 * p.done({ loss: 0.1 });
 * ```
 * @module
 */

const encoder = new TextEncoder();

/** Options of a `Progress`. `interval` (s, default 5) and `tty` (default: detected) exist for tests. */
export interface ProgressOptions {
  label: string;
  total?: number;
  unit?: string;
  logFile?: string;
  stream?: "stderr";
  interval?: number;
  tty?: boolean;
}

/** Human-readable count in `unit` ("B" gets KiB/MiB/GiB). */
export function formatAmount(n: number, unit: string): string {
  if (unit === "B") {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
  }
  const s = Number.isInteger(n) ? String(n) : n.toFixed(1);
  return unit ? `${s} ${unit}` : s;
}

/** Duration in seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

function _fields(fields?: Record<string, string | number>): string {
  if (!fields) return "";
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    const t = typeof v === "number" ? (Number.isInteger(v) ? String(v) : _num(v)) : v;
    parts.push(`${k}=${t}`);
  }
  return parts.join(" ");
}

function _num(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return v.toPrecision(4);
}

/**
 * A progress counter with a live TTY bar or periodic plain lines, mirrored to an optional log file.
 */
export class Progress {
  readonly label: string;
  readonly total?: number;
  readonly unit: string;
  readonly logFile?: string;
  #count = 0;
  #start = performance.now();
  #lastPlain = performance.now();
  #lastDraw = 0;
  #rate = 0; // smoothed units/s
  #rateT = performance.now();
  #rateN = 0;
  #interval: number;
  #tty: boolean;
  #fields?: Record<string, string | number>;
  #liveShown = false;

  /** Creates a counter; nothing is printed until the first `tick`. */
  constructor(opts: ProgressOptions) {
    this.label = opts.label;
    this.total = opts.total;
    this.unit = opts.unit ?? "";
    this.logFile = opts.logFile;
    this.#interval = (opts.interval ?? 5) * 1000;
    let tty = false;
    try {
      tty = Deno.stderr.isTerminal();
    } catch { /* not a terminal */ }
    this.#tty = opts.tty ?? tty;
    if (this.logFile) {
      const dir = this.logFile.replace(/[/\\][^/\\]*$/, "");
      if (dir && dir !== this.logFile) Deno.mkdirSync(dir, { recursive: true });
    }
  }

  /** Units counted so far. */
  get count(): number {
    return this.#count;
  }

  /** Adds `n` units (not an absolute position) and refreshes the display if due. */
  tick(n: number, fields?: Record<string, string | number>): void {
    this.#count += n;
    if (fields) this.#fields = fields;
    const now = performance.now();
    const dt = now - this.#rateT;
    if (dt >= 500) {
      const inst = ((this.#count - this.#rateN) * 1000) / dt;
      this.#rate = this.#rate === 0 ? inst : 0.7 * this.#rate + 0.3 * inst;
      this.#rateT = now;
      this.#rateN = this.#count;
    }
    if (this.#tty && now - this.#lastDraw >= 100) {
      this.#lastDraw = now;
      this.#write("\r\x1b[K" + this.line());
      this.#liveShown = true;
    }
    if (now - this.#lastPlain >= this.#interval) {
      this.#lastPlain = now;
      if (!this.#tty) this.#write(this.line() + "\n");
      this.#append(this.line());
    }
  }

  /** The current status line: label, count/total, percentage, rate, ETA and the latest fields. */
  line(): string {
    const elapsed = (performance.now() - this.#start) / 1000;
    const rate = this.#rate > 0 ? this.#rate : (elapsed > 0 ? this.#count / elapsed : 0);
    let s = `${this.label}: ${formatAmount(this.#count, this.unit)}`;
    if (this.total !== undefined && this.total > 0) {
      s += `/${formatAmount(this.total, this.unit)} (${((100 * this.#count) / this.total).toFixed(1)}%)`;
    }
    const rateUnit = this.unit === "B"
      ? formatAmount(rate, "B")
      : _num(rate) + (this.unit ? ` ${this.unit}` : "");
    s += ` ${rateUnit}/s`;
    if (this.total !== undefined && rate > 0 && this.#count < this.total) {
      s += ` ETA ${formatDuration((this.total - this.#count) / rate)}`;
    }
    s += ` elapsed ${formatDuration(elapsed)}`;
    const f = _fields(this.#fields);
    return f ? `${s} ${f}` : s;
  }

  /** Writes one line to stderr (above the live bar on a TTY) and to the log file. */
  log(line: string): void {
    if (this.#tty && this.#liveShown) {
      this.#write("\r\x1b[K" + line + "\n" + this.line());
    } else {
      this.#write(line + "\n");
    }
    this.#append(line);
  }

  /** Prints the final line (with overall rate) and ends the live bar. */
  done(fields?: Record<string, string | number>): void {
    if (fields) this.#fields = fields;
    const elapsed = (performance.now() - this.#start) / 1000;
    this.#rate = elapsed > 0 ? this.#count / elapsed : 0;
    const l = this.line() + " done";
    this.#write((this.#tty && this.#liveShown ? "\r\x1b[K" : "") + l + "\n");
    this.#liveShown = false;
    this.#append(l);
  }

  #write(s: string): void {
    try {
      Deno.stderr.writeSync(encoder.encode(s));
    } catch { /* stderr closed: nothing useful to do */ }
  }

  #append(line: string): void {
    if (!this.logFile) return;
    const stamp = new Date().toISOString();
    Deno.writeTextFileSync(this.logFile, `${stamp} ${line}\n`, { append: true });
  }
}
