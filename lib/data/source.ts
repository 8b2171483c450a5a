/**
 * Where a dataset's TFRecord shards come from, and what we know about each shard before downloading it.
 *
 * The config names a source as `https://…` (a directory URL laid out as `<split>/<shard>`), `gs://bucket/prefix`
 * (Google Cloud Storage through its public HTTPS endpoints), `file://…` or a plain local directory. Listing turns that
 * into concrete shards with whatever the source publishes about them (size, md5/crc32c from GCS, sha256 from a
 * `manifest.json`), so the downloader can verify every byte. `FUNMATCH_DATA_MIRROR` or `--source` replace the
 * config's source (an offline mirror, a local copy), see `effectiveSource`.
 *
 * @example
 * ```ts
 * import { effectiveSource, listSource } from "./source.ts";
 * const src = effectiveSource("gs://funmatch-tf", undefined);
 * const shards = await listSource(src, { train: {}, validation: {}, test: {} });
 * ```
 * @module
 */

/** How to find one split's shards: a glob over file names and/or an explicit list of names. */
export interface SplitSpec {
  pattern?: string;
  shards?: string[];
}

/** One shard to fetch. `url` is an `https://`/`http://` URL or an absolute local path. */
export interface SourceShard {
  split: string;
  name: string;
  url: string;
  size?: number;
  /** base64 MD5 (as GCS publishes it). */
  md5?: string;
  /** base64 big-endian CRC-32C (as GCS publishes it). */
  crc32c?: string;
  /** hex SHA-256 (from a manifest.json). */
  sha256?: string;
}

/** The source in effect: the command line's, else `FUNMATCH_DATA_MIRROR`, else the config's. */
export function effectiveSource(configSource: string, cliSource?: string): string {
  if (cliSource && cliSource.trim() !== "") return cliSource.trim();
  const env = Deno.env.get("FUNMATCH_DATA_MIRROR");
  if (env && env.trim() !== "") return env.trim();
  if (!configSource || configSource.trim() === "") {
    throw new Error(
      "No data source: the dataset config has no source and neither --source nor FUNMATCH_DATA_MIRROR is set.",
    );
  }
  return configSource.trim();
}

/** The kind of a source string. */
export function sourceKind(source: string): "https" | "gcs" | "local" {
  if (/^https?:\/\//i.test(source)) return "https";
  if (/^gs:\/\//i.test(source)) return "gcs";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !/^file:\/\//i.test(source)) {
    throw new Error(
      `Data source ${source} has an unsupported scheme (expected https://, gs://, file:// or a directory).`,
    );
  }
  return "local";
}

/** The GCS endpoint (overridable with `FUNMATCH_GCS_ENDPOINT`, e.g. for tests or a proxy). */
export function gcsEndpoint(): string {
  return (Deno.env.get("FUNMATCH_GCS_ENDPOINT") ?? "https://storage.googleapis.com").replace(/\/+$/, "");
}

/** A shell-style glob over a file name (`*`, `?`) as a RegExp. */
export function globToRegExp(glob: string): RegExp {
  const esc = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]");
  return new RegExp(`^${esc}$`);
}

const DEFAULT_SHARD = /\.(tfrec|tfrecord|tfrecords)$|\.tfrecord-\d+-of-\d+$/;

function _select(names: string[], spec: SplitSpec): string[] {
  const re = spec.pattern ? globToRegExp(spec.pattern) : DEFAULT_SHARD;
  return names.filter((n) => re.test(n));
}

function _localRoot(source: string): string {
  if (/^file:\/\//i.test(source)) return decodeURIComponent(new URL(source).pathname);
  return source;
}

function _encodePath(p: string): string {
  return p.split("/").map(encodeURIComponent).join("/");
}

/** Manifest entries published next to the shards (our own `manifest.json` format). */
interface PublishedManifest {
  splits?: Record<string, { file: string; bytes?: number; sha256?: string }[]>;
}

function _fromManifest(
  m: PublishedManifest,
  splits: Record<string, SplitSpec>,
  where: string,
  urlOf: (file: string) => string,
): SourceShard[] {
  const out: SourceShard[] = [];
  for (const [split, spec] of Object.entries(splits)) {
    const entries = m.splits?.[split];
    if (!entries) throw new Error(`${where} lists no split "${split}".`);
    const byName = new Map(entries.map((e) => [e.file.slice(e.file.lastIndexOf("/") + 1), e]));
    const names = spec.shards ?? _select([...byName.keys()], spec);
    for (const name of names) {
      const e = byName.get(name);
      if (!e) throw new Error(`${where} has no shard "${name}" in split "${split}".`);
      out.push({ split, name, url: urlOf(e.file), size: e.bytes, sha256: e.sha256 });
    }
  }
  return out;
}

async function _fetchJson(url: string): Promise<{ status: number; json?: any }> {
  const r = await fetch(url);
  if (!r.ok) {
    await r.body?.cancel();
    return { status: r.status };
  }
  try {
    return { status: r.status, json: await r.json() };
  } catch {
    throw new Error(`${url} is not valid JSON.`);
  }
}

/**
 * Lists the shards of each split at `source`. Explicit `shards` lists win over listings; an https source needs
 * either `<url>/manifest.json` or explicit lists; a gs:// bucket that refuses listing needs explicit lists (sizes and
 * checksums then come from a HEAD request's `x-goog-hash`).
 */
export async function listSource(source: string, splits: Record<string, SplitSpec>): Promise<SourceShard[]> {
  const kind = sourceKind(source);
  if (Object.keys(splits).length === 0) throw new Error(`No splits requested from data source ${source}.`);
  if (kind === "local") return await _listLocal(_localRoot(source), splits);
  if (kind === "https") return await _listHttps(source.replace(/\/+$/, ""), splits);
  return await _listGcs(source, splits);
}

async function _listLocal(root: string, splits: Record<string, SplitSpec>): Promise<SourceShard[]> {
  try {
    const st = await Deno.stat(root);
    if (!st.isDirectory) throw new Error(`Data source ${root} is not a directory.`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`Data source directory ${root} does not exist.`);
    throw e;
  }
  let published: PublishedManifest | null = null;
  try {
    published = JSON.parse(await Deno.readTextFile(`${root}/manifest.json`));
  } catch { /* no manifest: plain directory */ }
  const out: SourceShard[] = [];
  for (const [split, spec] of Object.entries(splits)) {
    const dir = `${root.replace(/\/+$/, "")}/${split}`;
    let names: string[];
    if (spec.shards) names = spec.shards;
    else {
      try {
        names = [];
        for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new Error(
            `Data source ${root} has no directory for split "${split}" (${dir} does not exist).`,
          );
        }
        throw e;
      }
      names = _select(names, spec).sort();
      if (names.length === 0) {
        throw new Error(
          `Data source directory ${dir} holds no shards${spec.pattern ? ` matching ${spec.pattern}` : ""}.`,
        );
      }
    }
    const pub = new Map(
      (published?.splits?.[split] ?? []).map((e) => [e.file.slice(e.file.lastIndexOf("/") + 1), e]),
    );
    for (const name of names) {
      const path = `${dir}/${name}`;
      let size: number;
      try {
        size = (await Deno.stat(path)).size;
      } catch {
        throw new Error(`Data source shard ${path} does not exist.`);
      }
      const p = pub.get(name);
      out.push({ split, name, url: path, size, sha256: p?.sha256 });
    }
  }
  return out;
}

async function _listHttps(base: string, splits: Record<string, SplitSpec>): Promise<SourceShard[]> {
  const needListing = Object.values(splits).some((s) => !s.shards);
  let m: { status: number; json?: any };
  try {
    m = await _fetchJson(`${base}/manifest.json`);
  } catch (e) {
    if (!needListing) m = { status: 0 };
    else throw new Error(`Could not read ${base}/manifest.json (${(e as Error).message}).`);
  }
  if (m.json) {
    return _fromManifest(m.json, splits, `${base}/manifest.json`, (f) => `${base}/${_encodePath(f)}`);
  }
  if (needListing) {
    throw new Error(
      `Data source ${base} has no manifest.json (HTTP ${m.status}); list the shards of each split in the config.`,
    );
  }
  const out: SourceShard[] = [];
  for (const [split, spec] of Object.entries(splits)) {
    for (const name of spec.shards!) {
      out.push({ split, name, url: `${base}/${_encodePath(`${split}/${name}`)}` });
    }
  }
  return out;
}

function _parseGs(source: string): { bucket: string; prefix: string } {
  const m = /^gs:\/\/([^/]+)\/?(.*)$/i.exec(source);
  if (!m || !m[1]) throw new Error(`Data source ${source} is not a valid gs://bucket/prefix URL.`);
  return { bucket: m[1], prefix: m[2].replace(/\/+$/, "") };
}

async function _listGcs(source: string, splits: Record<string, SplitSpec>): Promise<SourceShard[]> {
  const { bucket, prefix } = _parseGs(source);
  const ep = gcsEndpoint();
  const objectUrl = (name: string) => `${ep}/${encodeURIComponent(bucket)}/${_encodePath(name)}`;
  const out: SourceShard[] = [];
  for (const [split, spec] of Object.entries(splits)) {
    const pfx = `${prefix ? prefix + "/" : ""}${split}/`;
    if (spec.shards) {
      for (const name of spec.shards) {
        const url = objectUrl(pfx + name);
        out.push({ split, name, url, ...(await _headGcs(url)) });
      }
      continue;
    }
    const items: { name: string; size: string; md5Hash?: string; crc32c?: string }[] = [];
    let token: string | undefined;
    do {
      const q = `${ep}/storage/v1/b/${encodeURIComponent(bucket)}/o?prefix=${encodeURIComponent(pfx)}` +
        `&fields=${encodeURIComponent("items(name,size,md5Hash,crc32c),nextPageToken")}` +
        (token ? `&pageToken=${encodeURIComponent(token)}` : "");
      let r: { status: number; json?: any };
      try {
        r = await _fetchJson(q);
      } catch (e) {
        throw new Error(`Could not list ${source}/${split} (${(e as Error).message}).`);
      }
      if (!r.json) {
        throw new Error(
          `Listing gs://${bucket}/${pfx} failed with HTTP ${r.status}; the bucket may not allow listing: ` +
            `give the shard names of split "${split}" in the config.`,
        );
      }
      items.push(...(r.json.items ?? []));
      token = r.json.nextPageToken;
    } while (token);
    const byName = new Map(items.map((i) => [i.name.slice(pfx.length), i]));
    const names = _select([...byName.keys()].filter((n) => !n.includes("/")), spec).sort();
    if (names.length === 0) {
      throw new Error(
        `gs://${bucket}/${pfx} holds no shards${spec.pattern ? ` matching ${spec.pattern}` : ""}.`,
      );
    }
    for (const name of names) {
      const it = byName.get(name)!;
      out.push({
        split,
        name,
        url: objectUrl(pfx + name),
        size: Number(it.size),
        md5: it.md5Hash,
        crc32c: it.crc32c,
      });
    }
  }
  return out;
}

async function _headGcs(url: string): Promise<{ size?: number; md5?: string; crc32c?: string }> {
  try {
    const r = await fetch(url, { method: "HEAD" });
    if (!r.ok) return {};
    const len = r.headers.get("content-length");
    const hash = r.headers.get("x-goog-hash") ?? "";
    const md5 = /md5=([^,\s]+)/.exec(hash)?.[1];
    const crc = /crc32c=([^,\s]+)/.exec(hash)?.[1];
    return { size: len ? Number(len) : undefined, md5, crc32c: crc };
  } catch {
    return {}; // the download itself will report an unreachable URL
  }
}

/**
 * Reads a small file at the root of `source` (e.g. TFDS's `dataset_info.json`); null when it is not there.
 * Any other failure (a refused or unreachable server) is an error naming the URL.
 */
export async function readSourceFile(
  source: string,
  name: string,
): Promise<{ text: string; where: string } | null> {
  const kind = sourceKind(source);
  if (kind === "local") {
    const where = `${_localRoot(source).replace(/\/+$/, "")}/${name}`;
    try {
      return { text: await Deno.readTextFile(where), where };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }
  let url: string;
  if (kind === "https") url = `${source.replace(/\/+$/, "")}/${_encodePath(name)}`;
  else {
    const { bucket, prefix } = _parseGs(source);
    url = `${gcsEndpoint()}/${encodeURIComponent(bucket)}/${
      _encodePath(`${prefix ? prefix + "/" : ""}${name}`)
    }`;
  }
  let r: Response;
  try {
    r = await fetch(url);
  } catch (e) {
    throw new Error(`Could not reach ${url} (${(e as Error).message}).`);
  }
  if (r.status === 404 || r.status === 403) {
    await r.body?.cancel();
    return null;
  }
  if (!r.ok) {
    await r.body?.cancel();
    throw new Error(`Reading ${url} failed with HTTP ${r.status}.`);
  }
  return { text: await r.text(), where: url };
}

/**
 * The named files at the root of `source` (a flat layout such as TFDS's), as shards of the download group
 * `group`, with whatever the source publishes about them: sizes and GCS checksums from one bucket listing
 * (HEAD requests when listing is refused), sizes of local files.
 */
export async function listFlatShards(source: string, names: string[], group: string): Promise<SourceShard[]> {
  const kind = sourceKind(source);
  if (kind === "local") {
    const root = _localRoot(source).replace(/\/+$/, "");
    const out: SourceShard[] = [];
    for (const name of names) {
      const path = `${root}/${name}`;
      try {
        out.push({ split: group, name, url: path, size: (await Deno.stat(path)).size });
      } catch {
        throw new Error(`Data source shard ${path} does not exist.`);
      }
    }
    return out;
  }
  if (kind === "https") {
    const base = source.replace(/\/+$/, "");
    return names.map((name) => ({ split: group, name, url: `${base}/${_encodePath(name)}` }));
  }
  const { bucket, prefix } = _parseGs(source);
  const ep = gcsEndpoint();
  const pfx = prefix ? `${prefix}/` : "";
  const objectUrl = (name: string) => `${ep}/${encodeURIComponent(bucket)}/${_encodePath(pfx + name)}`;
  const listed = new Map<string, { size: string; md5Hash?: string; crc32c?: string }>();
  let token: string | undefined;
  let refused = false;
  do {
    const q =
      `${ep}/storage/v1/b/${encodeURIComponent(bucket)}/o?prefix=${encodeURIComponent(pfx)}&delimiter=%2F` +
      `&fields=${encodeURIComponent("items(name,size,md5Hash,crc32c),nextPageToken")}` +
      (token ? `&pageToken=${encodeURIComponent(token)}` : "");
    const r = await _fetchJson(q).catch(() => ({ status: 0, json: undefined }));
    if (!r.json) {
      refused = true;
      break;
    }
    for (const it of r.json.items ?? []) listed.set(it.name.slice(pfx.length), it);
    token = r.json.nextPageToken;
  } while (token);
  const out: SourceShard[] = [];
  for (const name of names) {
    const it = listed.get(name);
    if (it) {
      out.push({
        split: group,
        name,
        url: objectUrl(name),
        size: Number(it.size),
        md5: it.md5Hash,
        crc32c: it.crc32c,
      });
    } else if (refused) {
      out.push({ split: group, name, url: objectUrl(name), ...(await _headGcs(objectUrl(name))) });
    } else throw new Error(`gs://${bucket}/${pfx}${name} is not in the bucket listing.`);
  }
  return out;
}
