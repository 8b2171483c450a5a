/**
 * One runner per dataset: `data/<dataset>/.runner.pid`, created with O_EXCL.
 *
 * Why: two runners on one dataset would both delete and rewrite the same outs and race on the lock file.
 * The file holds the runner's pid and, while a stage runs, the stage's pid and name. A holder is alive
 * while either pid is alive (a runner killed with SIGKILL can leave its stage running — a second runner
 * must not start that stage again on top of it); a dead holder's file is taken over.
 */

/** Thrown when another live runner holds the dataset. */
export class RunnerBusyError extends Error {
  constructor(readonly holder: number, readonly path: string, detail: string) {
    super(
      `another runner (pid ${holder}) is working on this dataset${detail}; wait for it to finish (lock file ${path})`,
    );
    this.name = "RunnerBusyError";
  }
}

interface Holder {
  pid: number;
  child?: number;
  stage?: string;
}

function parseHolder(text: string): Holder | null {
  const [first, second] = text.split("\n");
  const pid = Number(first);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const m = /^child (\d+) (\S+)$/.exec(second ?? "");
  return m ? { pid, child: Number(m[1]), stage: m[2] } : { pid };
}

/**
 * Whether a runner or stage process is alive: Linux /proc, not a zombie, and a `deno` process (so a pid
 * reused by something else after a reboot does not hold the dataset forever). Elsewhere: assumed alive.
 */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (/^\d+ \(.*\) [ZX]/s.test(stat)) return false; // zombies are dead for our purpose
    try {
      return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("deno");
    } catch {
      return true;
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      try {
        Deno.statSync("/proc/self");
        return false;
      } catch {
        return true;
      }
    }
    return true;
  }
}

/** Reads the holder of a runner lock file, or null when there is none or it is dead. */
export function liveHolder(path: string): Holder | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return null;
  }
  const h = parseHolder(text);
  if (h === null) return null;
  if (processAlive(h.pid) || (h.child !== undefined && processAlive(h.child))) return h;
  return null;
}

/**
 * The held runner lock.
 *
 * @example
 * ```ts
 * const lock = RunnerLock.acquire("data/pets37/.runner.pid"); // throws RunnerBusyError if held
 * try { … } finally { lock.release(); }
 * ```
 */
export class RunnerLock {
  #released = false;
  private constructor(readonly path: string) {}

  /** Creates the lock file (O_EXCL) with this process's pid, taking over a dead holder's file. */
  static acquire(path: string): RunnerLock {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const f = Deno.openSync(path, { write: true, createNew: true });
        f.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
        f.close();
        return new RunnerLock(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      let text = "";
      try {
        text = Deno.readTextFileSync(path);
      } catch {
        continue; // removed meanwhile: try again
      }
      const h = parseHolder(text);
      if (h && (processAlive(h.pid) || (h.child !== undefined && processAlive(h.child)))) {
        const detail = processAlive(h.pid)
          ? (h.stage ? ` (running stage ${h.stage}, pid ${h.child})` : "")
          : ` (the runner is gone but its stage ${h.stage} is still running as pid ${h.child})`;
        throw new RunnerBusyError(h.pid, path, detail);
      }
      // Dead holder (or garbage): move it aside atomically, then check we moved what we judged dead.
      const aside = `${path}.stale-${Deno.pid}`;
      try {
        Deno.renameSync(path, aside);
        const moved = Deno.readTextFileSync(aside);
        if (moved !== text) Deno.renameSync(aside, path); // someone else took over meanwhile: put it back
        else Deno.removeSync(aside);
      } catch {
        // Another runner broke it first; loop and try again.
      }
    }
    throw new Error(`could not take the runner lock ${path}; remove it if no runner is running`);
  }

  /** Records the stage now running (so a second runner can name it, and sees it even if we die). */
  noteChild(pid: number | null, stage?: string): void {
    if (this.#released) return;
    const body = pid === null ? `${Deno.pid}\n` : `${Deno.pid}\nchild ${pid} ${stage}\n`;
    Deno.writeTextFileSync(this.path, body);
  }

  /** Removes the lock file (idempotent). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    try {
      const h = parseHolder(Deno.readTextFileSync(this.path));
      if (h?.pid === Deno.pid) Deno.removeSync(this.path);
    } catch {
      // Already gone.
    }
  }
}
