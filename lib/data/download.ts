/**
 * Fetches a dataset's TFRecord shards into `data/<ds>/tfrecords/<split>/` and writes `manifest.json`.
 *
 * Shards are hundreds of MB over flaky links, and a silently damaged shard would only show up hours later as a decode
 * error or, worse, as wrong pixels. So: downloads resume from `<shard>.part` with HTTP Range, transient failures
 * (timeouts, resets, 5xx, 429) are retried with exponential backoff, every shard is checked against what the source
 * publishes (size, md5/crc32c from GCS, sha256 from a manifest) and then record by record (both TFRecord CRCs), and only
 * then renamed into place. The sha256 and record count of every shard go into `dest/manifest.json`, so a rerun on a
 * complete destination only re-hashes local files.
 *
 * @example
 * ```ts
 * import { fetchDataset } from "./download.ts";
 * const m = await fetchDataset({ source: "gs://funmatch-tf", dest: "data/pets37/tfrecords",
 *   splits: { train: {}, validation: {}, test: {} } });
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { Progress } from "../progress.ts";
import { crc32c } from "./crc32c.ts";
import { countAndVerify } from "./tfrecord.ts";
import { listSource, type SourceShard, type SplitSpec } from "./source.ts";

/** One verified shard in `manifest.json`; `file` is relative to the destination (`<split>/<name>`). */
export interface ManifestShard {
  file: string;
  bytes: number;
  sha256: string;
  records: number;
}

/** `dest/manifest.json`. */
export interface FetchManifest {
  source: string;
  splits: Record<string, ManifestShard[]>;
}

/** Retry policy for transient failures. */
export interface RetryOptions {
  /** Attempts per shard, including the first (default 6). */
  attempts?: number;
  /** First backoff delay in ms, doubled each retry (default 1000). */
  baseDelayMs?: number;
  /** Abort a request when no byte arrives for this long (default 60 s). */
  idleTimeoutMs?: number;
}

/** Options of `fetchDataset`. */
export interface FetchOptions {
  source: string;
  dest: string;
  splits: Record<string, SplitSpec>;
  progress?: boolean;
  retry?: RetryOptions;
  /** Log file for progress lines. */
  logFile?: string;
  /** Shards already listed (e.g. the flat TFDS layout); default: `listSource(source, splits)`. */
  shards?: SourceShard[];
  /**
   * Local sources: hardlink shards instead of copying when on the same file system (default true). Safe because
   * nothing rewrites a shard in place (every writer uses a temporary file and a rename).
   */
  link?: boolean;
}

/** A failure worth retrying (network error, timeout, 5xx, 429). */
class TransientError extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hashes of a local file in one streaming pass. */
export async function hashFile(
  path: string,
): Promise<{ bytes: number; sha256: string; md5: string; crc32c: string }> {
  const sha = createHash("sha256"), md5 = createHash("md5");
  let crc = 0, bytes = 0;
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      sha.update(chunk);
      md5.update(chunk);
      crc = crc32c(chunk, crc);
      bytes += n;
    }
  } finally {
    f.close();
  }
  const crcBytes = new Uint8Array(4);
  new DataView(crcBytes.buffer).setUint32(0, crc, false);
  return {
    bytes,
    sha256: sha.digest("hex"),
    md5: md5.digest("base64"),
    crc32c: btoa(String.fromCharCode(...crcBytes)),
  };
}

async function _readManifest(dest: string): Promise<FetchManifest | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dest}/manifest.json`));
  } catch {
    return null;
  }
}

async function _writeManifest(dest: string, m: FetchManifest): Promise<void> {
  const tmp = `${dest}/manifest.json.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(m, null, 2) + "\n");
  await Deno.rename(tmp, `${dest}/manifest.json`);
}

async function _size(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return null;
  }
}

/**
 * Downloads `url` to `part`, resuming from its current size with a Range request. Throws `TransientError` for
 * failures worth retrying. Calls `onBytes` for progress.
 */
async function _httpDownload(
  url: string,
  part: string,
  expected: number | undefined,
  idleMs: number,
  onBytes: (n: number) => void,
): Promise<void> {
  let have = (await _size(part)) ?? 0;
  if (expected !== undefined && have === expected) return;
  if (expected !== undefined && have > expected) {
    await Deno.remove(part);
    have = 0;
  }
  const ctl = new AbortController();
  let timer = setTimeout(() => ctl.abort(), idleMs);
  const bump = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ctl.abort(), idleMs);
  };
  let resp: Response;
  try {
    resp = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: ctl.signal });
  } catch (e) {
    clearTimeout(timer);
    throw new TransientError(
      `request to ${url} failed (${ctl.signal.aborted ? "timed out" : (e as Error).message})`,
    );
  }
  try {
    if (resp.status === 416 && have > 0) {
      // nothing left to fetch: the part is complete (verified below) or longer than the object (restart)
      await resp.body?.cancel();
      if (expected === undefined) return;
      await Deno.remove(part);
      throw new TransientError(`${url} rejected the resume range at byte ${have}`);
    }
    if (resp.status >= 500 || resp.status === 429 || resp.status === 408) {
      await resp.body?.cancel();
      throw new TransientError(`${url} answered HTTP ${resp.status}`);
    }
    if (resp.status !== 200 && resp.status !== 206) {
      await resp.body?.cancel();
      throw new Error(`Download of ${url} failed with HTTP ${resp.status} ${resp.statusText}.`);
    }
    const append = resp.status === 206 && have > 0;
    if (resp.status === 206) {
      const cr = resp.headers.get("content-range") ?? "";
      const start = Number(/bytes (\d+)-/.exec(cr)?.[1] ?? "NaN");
      if (start !== have) {
        await resp.body?.cancel();
        await Deno.remove(part).catch(() => {});
        throw new TransientError(`${url} resumed at byte ${start} instead of ${have}`);
      }
    } else if (have > 0) {
      onBytes(-have); // server ignored Range: start over
    }
    const f = await Deno.open(part, { write: true, create: true, append, truncate: !append });
    try {
      const reader = resp.body!.getReader();
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw new TransientError(
            `connection to ${url} broke (${ctl.signal.aborted ? "timed out" : (e as Error).message})`,
          );
        }
        if (chunk.done) break;
        bump();
        let off = 0;
        while (off < chunk.value.length) off += await f.write(chunk.value.subarray(off));
        onBytes(chunk.value.length);
      }
    } finally {
      f.close();
    }
  } finally {
    clearTimeout(timer);
  }
  const got = (await _size(part)) ?? 0;
  if (expected !== undefined && got < expected) {
    throw new TransientError(`${url} ended after ${got} of ${expected} bytes`);
  }
}

/** Copies (or hardlinks, on the same file system) a local shard to `part`. */
async function _localCopy(src: string, part: string, link: boolean): Promise<void> {
  await Deno.remove(part).catch(() => {});
  if (link) {
    try {
      await Deno.link(src, part);
      return;
    } catch { /* another file system: copy */ }
  }
  try {
    await Deno.copyFile(src, part);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`Data source shard ${src} does not exist.`);
    throw e;
  }
}

/** Verifies size and published checksums of `part`; returns its sha256 and size. Removes `part` on mismatch. */
async function _verify(shard: SourceShard, part: string): Promise<{ bytes: number; sha256: string }> {
  const h = await hashFile(part);
  const bad: string[] = [];
  if (shard.size !== undefined && h.bytes !== shard.size) {
    bad.push(`size ${h.bytes} bytes, expected ${shard.size}`);
  }
  if (shard.md5 && h.md5 !== shard.md5) bad.push(`md5 ${h.md5}, expected ${shard.md5}`);
  if (shard.crc32c && h.crc32c !== shard.crc32c) bad.push(`crc32c ${h.crc32c}, expected ${shard.crc32c}`);
  if (shard.sha256 && h.sha256 !== shard.sha256.toLowerCase()) {
    bad.push(`sha256 ${h.sha256}, expected ${shard.sha256}`);
  }
  if (bad.length) {
    await Deno.remove(part).catch(() => {});
    throw new Error(
      `Shard ${shard.url} failed verification (${bad.join("; ")}); the download was discarded.`,
    );
  }
  return { bytes: h.bytes, sha256: h.sha256 };
}

/**
 * Fetches every shard of `splits` from `source` into `dest/<split>/`, verified, and writes `dest/manifest.json`.
 * Shards already present whose size and sha256 match the existing manifest are kept without a download. Shard-like
 * files in the split directories that the source does not list are removed, so the destination mirrors the source.
 */
export async function fetchDataset(opts: FetchOptions): Promise<FetchManifest> {
  const dest = opts.dest.replace(/\/+$/, "");
  const attempts = opts.retry?.attempts ?? 6;
  const baseDelay = opts.retry?.baseDelayMs ?? 1000;
  const idleMs = opts.retry?.idleTimeoutMs ?? 60_000;
  const shards = opts.shards ?? await listSource(opts.source, opts.splits);
  await Deno.mkdir(dest, { recursive: true });
  const old = await _readManifest(dest);
  const oldByFile = new Map<string, ManifestShard>();
  for (const list of Object.values(old?.splits ?? {})) for (const e of list) oldByFile.set(e.file, e);

  const manifest: FetchManifest = { source: opts.source, splits: {} };
  for (const split of Object.keys(opts.splits)) manifest.splits[split] = [];
  const totalKnown = shards.every((s) => s.size !== undefined);
  const progress = opts.progress
    ? new Progress({
      label: `fetch ${opts.source}`,
      total: totalKnown ? shards.reduce((s, x) => s + (x.size ?? 0), 0) : undefined,
      unit: "B",
      logFile: opts.logFile,
    })
    : null;

  for (const shard of shards) {
    const dir = `${dest}/${shard.split}`;
    await Deno.mkdir(dir, { recursive: true });
    const rel = `${shard.split}/${shard.name}`;
    const final = `${dest}/${rel}`;
    const part = `${final}.part`;
    // 1. already in place and matching the manifest?
    const prev = oldByFile.get(rel);
    const curSize = await _size(final);
    if (prev && curSize === prev.bytes && (shard.size === undefined || shard.size === prev.bytes)) {
      const h = await hashFile(final);
      const publishedOk = (!shard.sha256 || shard.sha256.toLowerCase() === h.sha256) &&
        (!shard.md5 || shard.md5 === h.md5) && (!shard.crc32c || shard.crc32c === h.crc32c);
      if (h.sha256 === prev.sha256 && publishedOk) {
        manifest.splits[shard.split].push(prev);
        progress?.tick(prev.bytes, { shard: shard.name, kept: 1 });
        continue;
      }
      progress?.log(`${final} differs from the manifest; fetching it again.`);
    }
    // 2. download / copy with retries
    let lastErr: Error | null = null;
    let counted = 0;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        if (shard.url.startsWith("/") || !/^https?:/i.test(shard.url)) {
          await _localCopy(shard.url, part, opts.link ?? true);
          const n = (await _size(part)) ?? 0;
          progress?.tick(n - counted, { shard: shard.name });
          counted = n;
        } else {
          if (attempt === 1) counted = (await _size(part)) ?? 0;
          if (attempt === 1 && counted > 0) progress?.tick(counted, { shard: shard.name, resumed: counted });
          await _httpDownload(shard.url, part, shard.size, idleMs, (n) => {
            counted += n;
            progress?.tick(n, { shard: shard.name });
          });
        }
        lastErr = null;
        break;
      } catch (e) {
        if (!(e instanceof TransientError)) throw e;
        lastErr = e;
        if (attempt < attempts) {
          const delay = baseDelay * 2 ** (attempt - 1);
          progress?.log(`${e.message}; retry ${attempt}/${attempts - 1} in ${(delay / 1000).toFixed(1)} s`);
          await sleep(delay);
        }
      }
    }
    if (lastErr) {
      throw new Error(
        `Download of ${shard.url} failed after ${attempts} attempts: ${lastErr.message} (partial file kept at ${part} for resume).`,
      );
    }
    // 3. verify against the published checksums, then every record's CRCs
    const { bytes, sha256 } = await _verify(shard, part);
    let records: number;
    try {
      records = (await countAndVerify(part)).records;
    } catch (e) {
      await Deno.remove(part).catch(() => {});
      throw new Error(
        `${
          (e as Error).message.replace(part, final).replace(/\.$/, "")
        } (downloaded from ${shard.url}; discarded).`,
      );
    }
    await Deno.rename(part, final);
    manifest.splits[shard.split].push({ file: rel, bytes, sha256, records });
    await _writeManifest(dest, { ...manifest, splits: _withOld(manifest, old, opts.splits) });
  }
  // 4. drop shard-like leftovers the source does not list (stale shards would silently join the split)
  for (const split of Object.keys(opts.splits)) {
    const keep = new Set(manifest.splits[split].map((e) => e.file.slice(split.length + 1)));
    for await (const e of Deno.readDir(`${dest}/${split}`)) {
      if (!e.isFile || keep.has(e.name)) continue;
      if (/\.(tfrec|tfrecord|tfrecords)(\.part)?$|\.tfrecord-\d+-of-\d+(\.part)?$/.test(e.name)) {
        await Deno.remove(`${dest}/${split}/${e.name}`);
      }
    }
  }
  await _writeManifest(dest, manifest);
  progress?.done({ shards: shards.length });
  return manifest;
}

/** While fetching, keep manifest entries of splits not yet reached so an interrupted run loses nothing. */
function _withOld(
  cur: FetchManifest,
  old: FetchManifest | null,
  splits: Record<string, SplitSpec>,
): Record<string, ManifestShard[]> {
  const out: Record<string, ManifestShard[]> = {};
  for (const split of Object.keys(splits)) {
    const done = new Set(cur.splits[split].map((e) => e.file));
    out[split] = [...cur.splits[split], ...(old?.splits?.[split] ?? []).filter((e) => !done.has(e.file))];
  }
  return out;
}
