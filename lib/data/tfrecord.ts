/**
 * TFRecord framing: `u64 length | u32 masked crc32c(length) | data | u32 masked crc32c(data)`, little endian.
 *
 * Datasets arrive as TFRecord shards of hundreds of MB, so the reader streams through a fixed buffer and never holds
 * a whole file. Both CRCs of every record are checked, and any damage (bad length CRC, bad data CRC, truncated tail)
 * is reported as one sentence naming the file and the byte offset of the record, so a corrupt download is found at
 * fetch time rather than as a mysterious decode error during training.
 *
 * @example
 * ```ts
 * import { readTFRecords, writeTFRecordFile } from "./tfrecord.ts";
 * await writeTFRecordFile("/tmp/a.tfrec", [new Uint8Array([1, 2, 3])]);
 * for await (const { data, offset } of readTFRecords("/tmp/a.tfrec")) console.log(offset, data.length);
 * ```
 * @module
 */

import { maskedCrc32c } from "./crc32c.ts";

/** Bytes of framing around each record's payload (8 length + 4 crc + 4 crc). */
export const RECORD_OVERHEAD = 16;
const HEADER = 12;
const MAX_RECORD = 2 ** 31; // a record larger than this is certainly a corrupt length

/** A TFRecord framing error; `path` and `offset` name the damaged record. */
export class TFRecordError extends Error {
  constructor(readonly path: string, readonly offset: number, what: string) {
    super(`${path}: ${what} at byte offset ${offset}.`);
    this.name = "TFRecordError";
  }
}

function _u64(b: Uint8Array, path: string, offset: number): number {
  const v = new DataView(b.buffer, b.byteOffset, 8);
  const lo = v.getUint32(0, true);
  const hi = v.getUint32(4, true);
  const n = hi * 4294967296 + lo;
  if (hi !== 0 || n > MAX_RECORD) {
    throw new TFRecordError(path, offset, `record length ${n} is implausible (corrupt header)`);
  }
  return n;
}

function _checkHeader(header: Uint8Array, path: string, offset: number): number {
  const v = new DataView(header.buffer, header.byteOffset, HEADER);
  const want = v.getUint32(8, true);
  const got = maskedCrc32c(header.subarray(0, 8));
  if (want !== got) {
    throw new TFRecordError(
      path,
      offset,
      `length CRC mismatch (stored 0x${want.toString(16)}, computed 0x${got.toString(16)})`,
    );
  }
  return _u64(header, path, offset);
}

function _checkData(data: Uint8Array, crcBytes: Uint8Array, path: string, offset: number): void {
  const want = new DataView(crcBytes.buffer, crcBytes.byteOffset, 4).getUint32(0, true);
  const got = maskedCrc32c(data);
  if (want !== got) {
    throw new TFRecordError(
      path,
      offset,
      `data CRC mismatch in a ${data.length}-byte record (stored 0x${want.toString(16)}, computed 0x${
        got.toString(16)
      })`,
    );
  }
}

/** Reads exactly `buf.length` bytes at the current position; returns how many were read before EOF. */
async function _readFull(f: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await f.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

function _readFullSync(f: Deno.FsFile, buf: Uint8Array): number {
  let got = 0;
  while (got < buf.length) {
    const n = f.readSync(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

/**
 * Streams the records of one TFRecord file, verifying both CRCs of each. `data` is a fresh copy the caller may keep;
 * `offset` is the byte offset of the record's header. Memory use is one read buffer plus the current record.
 */
export async function* readTFRecords(
  path: string,
  opts: { bufferSize?: number; verify?: boolean } = {},
): AsyncGenerator<{ data: Uint8Array; offset: number }> {
  const verify = opts.verify ?? true;
  const bufSize = opts.bufferSize ?? 1 << 20;
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`TFRecord file ${path} does not exist.`);
    throw e;
  }
  try {
    let buf = new Uint8Array(bufSize);
    let start = 0; // first unconsumed byte in buf
    let end = 0; // one past the last valid byte in buf
    let fileOffset = 0; // file offset of buf[start]
    let eof = false;
    // Ensures at least `need` bytes are buffered (growing the buffer for large records); false on EOF before that.
    const fill = async (need: number): Promise<boolean> => {
      if (end - start >= need) return true;
      if (need > buf.length) {
        const nb = new Uint8Array(Math.max(need, buf.length * 2));
        nb.set(buf.subarray(start, end));
        end -= start;
        start = 0;
        buf = nb;
      } else if (start + need > buf.length) {
        buf.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      while (end - start < need && !eof) {
        const n = await f.read(buf.subarray(end));
        if (n === null) eof = true;
        else end += n;
      }
      return end - start >= need;
    };
    for (;;) {
      if (!(await fill(HEADER))) {
        if (end - start === 0) return;
        throw new TFRecordError(
          path,
          fileOffset,
          `truncated record header (${end - start} of ${HEADER} bytes before the end of the file)`,
        );
      }
      const header = buf.subarray(start, start + HEADER);
      const len = verify ? _checkHeader(header, path, fileOffset) : _u64(header, path, fileOffset);
      const total = HEADER + len + 4;
      if (!(await fill(total))) {
        throw new TFRecordError(
          path,
          fileOffset,
          `truncated record (needs ${total} bytes, only ${end - start} before the end of the file)`,
        );
      }
      const data = buf.slice(start + HEADER, start + HEADER + len);
      if (verify) _checkData(data, buf.subarray(start + HEADER + len, start + total), path, fileOffset);
      yield { data, offset: fileOffset };
      start += total;
      fileOffset += total;
    }
  } finally {
    f.close();
  }
}

/** Frames one payload as a TFRecord (header, data, CRCs). */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + data.length + 4);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length >>> 0, true);
  v.setUint32(4, Math.floor(data.length / 4294967296), true);
  v.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, HEADER);
  v.setUint32(HEADER + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * Writes `records` as one TFRecord file, atomically (`<path>.tmp-<pid>` then rename). Returns the byte offset of
 * each record.
 */
export async function writeTFRecordFile(path: string, records: Iterable<Uint8Array>): Promise<number[]> {
  const w = await TFRecordWriter.create(path);
  try {
    for (const r of records) await w.write(r);
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.close();
  return w.offsets;
}

/** Incremental atomic TFRecord writer: records go to `<path>.tmp-<pid>`, `close()` renames into place. */
export class TFRecordWriter {
  /** Byte offset of every record written so far. */
  readonly offsets: number[] = [];
  #bytes = 0;
  private constructor(readonly path: string, readonly tmp: string, private f: Deno.FsFile) {}

  /** Opens a writer for `path` (the file appears only on `close()`). */
  static async create(path: string): Promise<TFRecordWriter> {
    const tmp = `${path}.tmp-${Deno.pid}`;
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
    return new TFRecordWriter(path, tmp, f);
  }

  /** Appends one record. */
  async write(data: Uint8Array): Promise<void> {
    const framed = frameRecord(data);
    let off = 0;
    while (off < framed.length) off += await this.f.write(framed.subarray(off));
    this.offsets.push(this.#bytes);
    this.#bytes += framed.length;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Flushes and renames the file into place. */
  async close(): Promise<void> {
    await this.f.syncData();
    this.f.close();
    await Deno.rename(this.tmp, this.path);
  }

  /** Drops the temporary file. */
  async abort(): Promise<void> {
    try {
      this.f.close();
    } catch { /* already closed */ }
    await Deno.remove(this.tmp).catch(() => {});
  }
}

/** Reads through a whole file verifying every CRC; returns the record count and the file size. */
export async function countAndVerify(path: string): Promise<{ records: number; bytes: number }> {
  let records = 0;
  let bytes = 0;
  for await (const { data, offset } of readTFRecords(path)) {
    records++;
    bytes = offset + data.length + RECORD_OVERHEAD;
  }
  return { records, bytes };
}

/** Reads and verifies the record whose header starts at `offset`. */
export async function readRecordAt(path: string, offset: number): Promise<Uint8Array> {
  const f = await Deno.open(path, { read: true });
  try {
    return await readRecordFrom(f, path, offset);
  } finally {
    f.close();
  }
}

/**
 * Reads and verifies the record at `offset` from an already open file (used by the input pipeline, which keeps one
 * handle per shard). `length`, when known from an index, saves one read.
 */
export async function readRecordFrom(
  f: Deno.FsFile,
  path: string,
  offset: number,
  length?: number,
): Promise<Uint8Array> {
  await f.seek(offset, Deno.SeekMode.Start);
  if (length !== undefined) {
    const all = new Uint8Array(HEADER + length + 4);
    const got = await _readFull(f, all);
    return _parseWhole(all, got, path, offset, length);
  }
  const header = new Uint8Array(HEADER);
  const got = await _readFull(f, header);
  if (got < HEADER) {
    throw new TFRecordError(path, offset, `truncated record header (${got} of ${HEADER} bytes)`);
  }
  const len = _checkHeader(header, path, offset);
  const rest = new Uint8Array(len + 4);
  const got2 = await _readFull(f, rest);
  if (got2 < rest.length) {
    throw new TFRecordError(
      path,
      offset,
      `truncated record (needs ${len + 16} bytes, only ${HEADER + got2})`,
    );
  }
  const data = rest.subarray(0, len);
  _checkData(data, rest.subarray(len), path, offset);
  return data;
}

/** Synchronous `readRecordFrom` (for workers that prefer fewer awaits). */
export function readRecordFromSync(f: Deno.FsFile, path: string, offset: number, length: number): Uint8Array {
  f.seekSync(offset, Deno.SeekMode.Start);
  const all = new Uint8Array(HEADER + length + 4);
  const got = _readFullSync(f, all);
  return _parseWhole(all, got, path, offset, length);
}

function _parseWhole(all: Uint8Array, got: number, path: string, offset: number, length: number): Uint8Array {
  if (got < all.length) {
    throw new TFRecordError(path, offset, `truncated record (needs ${all.length} bytes, only ${got})`);
  }
  const len = _checkHeader(all.subarray(0, HEADER), path, offset);
  if (len !== length) {
    throw new TFRecordError(
      path,
      offset,
      `record length ${len} differs from the index's ${length} (stale index?)`,
    );
  }
  const data = all.subarray(HEADER, HEADER + len);
  _checkData(data, all.subarray(HEADER + len), path, offset);
  return data;
}
