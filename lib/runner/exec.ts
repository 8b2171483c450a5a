/**
 * Runs one stage as a subprocess, exactly as a user would: `deno run -A <script> <dataset> --profile P …`.
 *
 * Why a subprocess: a stage must never depend on the runner's memory (the stage contract), and a crash or
 * a SIGKILL in a stage must not take the runner's bookkeeping with it. Output is passed through and also
 * appended to `data/<dataset>/logs/<stage>.log`. The child gets its own session (`detached`), so a terminal
 * Ctrl-C reaches only the runner, which forwards exactly one SIGINT and then waits for the stage to save
 * its checkpoint and exit.
 */

/** Where a stream of stage output goes (besides the log file). */
export type Sink = (chunk: Uint8Array) => void | Promise<void>;

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += await w.write(chunk.subarray(off));
}

/** Writes to this process's stdout. */
export const toStdout: Sink = (c) => writeAll(Deno.stdout, c);
/** Writes to this process's stderr. */
export const toStderr: Sink = (c) => writeAll(Deno.stderr, c);

/** A running stage. */
export interface StageProcess {
  pid: number;
  kill(signal: Deno.Signal): void;
  /** Resolves when the process has exited and its output has been fully copied. */
  status: Promise<Deno.CommandStatus>;
}

/**
 * Spawns `deno <args>` in `cwd` with extra `env`, teeing stdout/stderr to the sinks and to `logPath`
 * (appended, after `header`).
 *
 * @example
 * ```ts
 * const p = await spawnStage({ args: ["run", "-A", "pipeline/01_fetch.ts", "pets37"], cwd: ".", env: {},
 *   logPath: "data/pets37/logs/fetch.log", header: "=== fetch ===\n" });
 * console.log((await p.status).code);
 * ```
 */
export async function spawnStage(opts: {
  args: string[];
  cwd: string;
  env: Record<string, string>;
  logPath: string;
  header: string;
  stdout?: Sink;
  stderr?: Sink;
}): Promise<StageProcess> {
  const log = await Deno.open(opts.logPath, { append: true, create: true, write: true });
  await writeAll(log, new TextEncoder().encode(opts.header));
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(Deno.execPath(), {
      args: opts.args,
      cwd: opts.cwd,
      env: opts.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
  } catch (e) {
    log.close();
    throw e;
  }
  // The terminal gets the bytes as they come; the log gets whole lines (stdout and stderr never interleave
  // mid-line), with live-bar redraws (`\r`) collapsed to their final state and colour codes removed.
  let logChain: Promise<void> = Promise.resolve();
  const enc = new TextEncoder();
  const pump = async (stream: ReadableStream<Uint8Array>, sink: Sink) => {
    const lines = new LogLines();
    const toLog = (text: string) => {
      if (text) logChain = logChain.then(() => writeAll(log, enc.encode(text))).catch(() => {});
    };
    for await (const chunk of stream) {
      toLog(lines.push(chunk));
      await sink(chunk);
    }
    toLog(lines.end());
  };
  const pumps = Promise.all([
    pump(child.stdout, opts.stdout ?? toStdout),
    pump(child.stderr, opts.stderr ?? toStderr),
  ]);
  const status = (async () => {
    const st = await child.status;
    await pumps.catch(() => {});
    await logChain;
    log.close();
    return st;
  })();
  return {
    pid: child.pid,
    kill: (sig) => {
      try {
        child.kill(sig);
      } catch {
        // Already exited.
      }
    },
    status,
  };
}

/**
 * Turns a byte stream of terminal output into log text: complete lines only, a `\r` (a progress bar
 * redrawing itself) discards what came before it on the line, ANSI escape sequences are dropped.
 */
export class LogLines {
  #dec = new TextDecoder();
  #line = "";
  #cr = ""; // a chunk ending in \r might be half of \r\n

  /** Feeds a chunk; returns the complete lines it finished (with their newlines). */
  push(chunk: Uint8Array): string {
    return this.#take(this.#dec.decode(chunk, { stream: true }));
  }

  /** Flushes a final unterminated line (with a newline added). */
  end(): string {
    const out = this.#take(this.#dec.decode());
    const last = stripAnsi(this.#line);
    this.#line = "";
    return last ? `${out}${last}\n` : out;
  }

  #take(text: string): string {
    text = this.#cr + text;
    this.#cr = "";
    if (text.endsWith("\r")) {
      this.#cr = "\r";
      text = text.slice(0, -1);
    }
    let out = "";
    for (const part of text.split(/(\r\n|\n|\r)/)) {
      if (part === "\n" || part === "\r\n") {
        out += this.#line + "\n";
        this.#line = "";
      } else if (part === "\r") this.#line = "";
      else this.#line += part;
    }
    return stripAnsi(out);
  }
}

// deno-lint-ignore no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
