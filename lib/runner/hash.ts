/**
 * Content hashes of files and folders, with a stat cache so that an all-fresh check over gigabytes of
 * TFRecords costs one `stat` per file instead of reading every byte.
 *
 * Why: the runner decides staleness by content, never by mtime, but rehashing a dataset on every
 * `deno task status` would take seconds per gigabyte. The cache maps (path, size, mtime, ctime, inode) to
 * the file's sha256; any change to any of those rehashes the file. Entries for files modified within the
 * last {@linkcode RACY_MS} are not stored (a write in the same clock tick as the hash could otherwise go
 * unseen — git's "racy clean" problem).
 *
 * A folder's hash is the sha256 of its sorted (relative path, file hash) list, so renaming or adding a
 * file changes it and mtimes never do. Temporary names (`*.tmp-*`) and the runner's own files are skipped.
 */

import { createHash } from "node:crypto";

/** Files modified this recently (ms) are hashed but not cached. */
export const RACY_MS = 1000;

/** The hash of a path: `files` lists each file's hash (relative to the path) when it is a folder. */
export interface PathHash {
  hash: string;
  files?: Record<string, string>;
}

type Entry = [size: number, mtimeMs: number, ctimeMs: number, ino: number, sha256: string];

interface CacheFile {
  version: 1;
  entries: Record<string, Entry>;
}

/** Names never hashed inside folders: temporaries being written and the runner's own bookkeeping. */
export function ignoredName(name: string): boolean {
  return name.includes(".tmp-") || name === ".statcache.json" || name === ".runner.pid" ||
    name === "pipeline.lock";
}

/** sha256 of a string, hex. */
export function sha256Text(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Streams a file through sha256 (4 MiB reads; small files in one read). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(4 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return h.digest("hex");
}

/**
 * A persistent (path, size, mtime, ctime, inode) → sha256 cache stored as JSON (written atomically).
 *
 * @example
 * ```ts
 * const cache = await StatCache.load("data/pets37/.statcache.json");
 * const h = await cache.hashPath("/repo", "data/pets37/tfrecords"); // { hash, files } or null if missing
 * await cache.save();
 * ```
 */
export class StatCache {
  /** Counters for the current process: cache hits, files hashed, bytes read. */
  readonly stats = { hits: 0, hashed: 0, bytes: 0 };
  #entries: Record<string, Entry>;
  #dirty = false;

  private constructor(readonly file: string | null, entries: Record<string, Entry>) {
    this.#entries = entries;
  }

  /** Loads the cache from `file` (a missing or unreadable file is an empty cache); `null` keeps it in memory. */
  static async load(file: string | null): Promise<StatCache> {
    if (file === null) return new StatCache(null, {});
    try {
      const parsed = JSON.parse(await Deno.readTextFile(file)) as CacheFile;
      if (parsed?.version === 1 && parsed.entries && typeof parsed.entries === "object") {
        return new StatCache(file, parsed.entries);
      }
    } catch {
      // Missing or corrupt: start empty, it is only a cache.
    }
    return new StatCache(file, {});
  }

  /** Hash of one file at absolute path `abs`, from the cache when its stat matches. */
  async hashFile(abs: string, st?: Deno.FileInfo): Promise<string> {
    st ??= await Deno.stat(abs);
    const mtime = st.mtime?.getTime() ?? 0;
    const ctime = st.ctime?.getTime() ?? 0;
    const ino = st.ino ?? 0;
    const e = this.#entries[abs];
    if (e && e[0] === st.size && e[1] === mtime && e[2] === ctime && e[3] === ino) {
      this.stats.hits++;
      return e[4];
    }
    const hash = await sha256File(abs);
    this.stats.hashed++;
    this.stats.bytes += st.size;
    if (Date.now() - mtime > RACY_MS) {
      this.#entries[abs] = [st.size, mtime, ctime, ino, hash];
      this.#dirty = true;
    } else if (e) {
      delete this.#entries[abs];
      this.#dirty = true;
    }
    return hash;
  }

  /**
   * Hash of `rel` under `root`: a file's sha256, or a folder's tree hash with its per-file hashes.
   * Returns null when the path does not exist.
   */
  async hashPath(root: string, rel: string): Promise<PathHash | null> {
    const abs = rel.startsWith("/") ? rel : `${root}/${rel}`;
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(abs);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw new Error(`cannot read ${rel}: ${(e as Error).message}`);
    }
    if (!st.isDirectory) return { hash: await this.hashFile(abs, st) };
    const files: Record<string, string> = {};
    for (const [relFile, fileSt] of walk(abs)) {
      files[relFile] = await this.hashFile(`${abs}/${relFile}`, fileSt);
    }
    return { hash: treeHash(files), files };
  }

  /** Writes the cache back (atomically) if anything changed. */
  async save(): Promise<void> {
    if (!this.#dirty || this.file === null) return;
    await Deno.mkdir(this.file.slice(0, this.file.lastIndexOf("/")) || "/", { recursive: true });
    const tmp = `${this.file}.tmp-${Deno.pid}`;
    const body: CacheFile = { version: 1, entries: this.#entries };
    await Deno.writeTextFile(tmp, JSON.stringify(body));
    await Deno.rename(tmp, this.file);
    this.#dirty = false;
  }
}

/** Tree hash of a folder from its (relative path → file hash) map. */
export function treeHash(files: Record<string, string>): string {
  const h = createHash("sha256");
  for (const rel of Object.keys(files).sort()) h.update(`${rel}\0${files[rel]}\n`);
  return h.digest("hex");
}

/** Files under `dir` (recursively, following symlinks), sorted by relative path, ignored names skipped. */
function walk(dir: string): [string, Deno.FileInfo][] {
  const out: [string, Deno.FileInfo][] = [];
  const visit = (rel: string, depth: number) => {
    if (depth > 64) throw new Error(`${dir}/${rel} is nested more than 64 folders deep (a symlink loop?)`);
    const here = rel ? `${dir}/${rel}` : dir;
    for (const ent of Deno.readDirSync(here)) {
      if (ignoredName(ent.name)) continue;
      const childRel = rel ? `${rel}/${ent.name}` : ent.name;
      let st: Deno.FileInfo;
      try {
        st = Deno.statSync(`${dir}/${childRel}`);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // vanished (or a dangling symlink)
        throw e;
      }
      if (st.isDirectory) visit(childRel, depth + 1);
      else if (st.isFile) out.push([childRel, st]);
    }
  };
  visit("", 0);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
