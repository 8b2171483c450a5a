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
  // Log writes are serialised through one promise chain so chunks from both streams never interleave mid-chunk.
  let logChain: Promise<void> = Promise.resolve();
  const pump = async (stream: ReadableStream<Uint8Array>, sink: Sink) => {
    for await (const chunk of stream) {
      logChain = logChain.then(() => writeAll(log, chunk)).catch(() => {});
      await sink(chunk);
    }
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
