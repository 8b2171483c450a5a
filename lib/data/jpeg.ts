/**
 * A small baseline-JPEG decoder in TypeScript, the fast path of `decode.ts` for small images.
 *
 * sharp costs ~0.6 ms of CPU per image however small (libvips pipeline setup), which caps a 32×32 CIFAR pipeline at
 * ~1,100 img/s on two cores; decoding a 32×32 baseline JPEG in JS takes a few tens of µs. To keep pixels identical to
 * sharp (libjpeg-turbo's defaults), this follows libjpeg's integer "islow" IDCT, its "fancy" (triangle) chroma
 * upsampling and its fixed-point YCbCr→RGB tables; `tests/data_decode_test.ts` compares both decoders on real shards.
 * Anything outside that well-trodden subset (progressive, arithmetic coding, 12-bit, Adobe/CMYK, unusual sampling)
 * returns null and the caller falls back to sharp.
 * @module
 */

/** A decoded image: RGB uint8 HWC. */
export interface JpegRgb {
  data: Uint8Array;
  height: number;
  width: number;
}

const ZIGZAG = new Int32Array([
  0,
  1,
  8,
  16,
  9,
  2,
  3,
  10,
  17,
  24,
  32,
  25,
  18,
  11,
  4,
  5,
  12,
  19,
  26,
  33,
  40,
  48,
  41,
  34,
  27,
  20,
  13,
  6,
  7,
  14,
  21,
  28,
  35,
  42,
  49,
  56,
  57,
  50,
  43,
  36,
  29,
  22,
  15,
  23,
  30,
  37,
  44,
  51,
  58,
  59,
  52,
  45,
  38,
  31,
  39,
  46,
  53,
  60,
  61,
  54,
  47,
  55,
  62,
  63,
]);

// libjpeg jidctint constants (CONST_BITS = 13)
const F0_298 = 2446,
  F0_390 = 3196,
  F0_541 = 4433,
  F0_765 = 6270,
  F0_899 = 7373,
  F1_175 = 9633,
  F1_501 = 12299,
  F1_847 = 15137,
  F1_961 = 16069,
  F2_053 = 16819,
  F2_562 = 20995,
  F3_072 = 25172;

// libjpeg jdcolor fixed-point tables (SCALEBITS = 16)
const CR_R = new Int32Array(256),
  CB_B = new Int32Array(256),
  CR_G = new Int32Array(256),
  CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (Math.round(1.402 * 65536) * x + 32768) >> 16;
  CB_B[i] = (Math.round(1.772 * 65536) * x + 32768) >> 16;
  CR_G[i] = -Math.round(0.71414 * 65536) * x;
  CB_G[i] = -Math.round(0.34414 * 65536) * x + 32768;
}

interface Huff {
  lookup: Int32Array; // 9-bit lookahead: (length << 8) | value, 0 if longer
  maxcode: Int32Array; // per length 1..16 (index 17 sentinel)
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

function _buildHuff(counts: Uint8Array, values: Uint8Array): Huff {
  const maxcode = new Int32Array(18).fill(-1), valptr = new Int32Array(17), mincode = new Int32Array(17);
  const lookup = new Int32Array(512);
  let code = 0, k = 0;
  for (let l = 1; l <= 16; l++) {
    valptr[l] = k;
    mincode[l] = code;
    for (let i = 0; i < counts[l - 1]; i++) {
      if (l <= 9) {
        const shift = 9 - l;
        const base = code << shift;
        for (let j = 0; j < 1 << shift; j++) lookup[base + j] = (l << 8) | values[k];
      }
      code++;
      k++;
    }
    maxcode[l] = counts[l - 1] ? code - 1 : -1;
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { lookup, maxcode, valptr, mincode, values };
}

class _Unsupported extends Error {}

/**
 * Decodes a baseline (SOF0/SOF1, Huffman, 8-bit) JPEG with 1 or 3 components to RGB; returns null for anything else
 * (the caller then uses sharp). Throws on data that is corrupt within the supported subset.
 */
export function decodeJpeg(buf: Uint8Array): JpegRgb | null {
  try {
    return _decode(buf);
  } catch (e) {
    if (e instanceof _Unsupported) return null;
    throw e;
  }
}

function _decode(buf: Uint8Array): JpegRgb {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) throw new _Unsupported();
  const qt: Int32Array[] = [];
  const dcT: (Huff | undefined)[] = [], acT: (Huff | undefined)[] = [];
  let width = 0, height = 0, restart = 0;
  let comps: {
    id: number;
    h: number;
    v: number;
    tq: number;
    td: number;
    ta: number;
    bw: number;
    bh: number;
    data: Int16Array | Uint8Array;
  }[] = [];
  let hmax = 1, vmax = 1, mcux = 0, mcuy = 0;
  let pos = 2;
  let scanned = false;
  const u16 = (p: number) => (buf[p] << 8) | buf[p + 1];
  while (pos < buf.length) {
    if (buf[pos] !== 0xff) throw new Error(`JPEG marker expected at byte ${pos}`);
    const marker = buf[pos + 1];
    pos += 2;
    if (marker === 0xff) {
      pos--;
      continue;
    }
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) continue;
    const len = u16(pos);
    const seg = pos + 2, end = pos + len;
    if (end > buf.length) throw new Error("JPEG segment runs past the end of the data");
    switch (marker) {
      case 0xdb: { // DQT
        let p = seg;
        while (p < end) {
          const pq = buf[p] >> 4, tq = buf[p] & 15;
          p++;
          const t = new Int32Array(64);
          for (let i = 0; i < 64; i++) {
            t[ZIGZAG[i]] = pq ? u16(p + 2 * i) : buf[p + i];
          }
          p += pq ? 128 : 64;
          qt[tq] = t;
        }
        break;
      }
      case 0xc4: { // DHT
        let p = seg;
        while (p < end) {
          const tc = buf[p] >> 4, th = buf[p] & 15;
          const counts = buf.subarray(p + 1, p + 17);
          let n = 0;
          for (let i = 0; i < 16; i++) n += counts[i];
          const values = buf.slice(p + 17, p + 17 + n);
          (tc === 0 ? dcT : acT)[th] = _buildHuff(counts, values);
          p += 17 + n;
        }
        break;
      }
      case 0xc0:
      case 0xc1: { // SOF0/1
        if (buf[seg] !== 8) throw new _Unsupported();
        height = u16(seg + 1);
        width = u16(seg + 3);
        const nc = buf[seg + 5];
        if ((nc !== 1 && nc !== 3) || height === 0 || width === 0) throw new _Unsupported();
        comps = [];
        for (let i = 0; i < nc; i++) {
          const p = seg + 6 + 3 * i;
          comps.push({
            id: buf[p],
            h: buf[p + 1] >> 4,
            v: buf[p + 1] & 15,
            tq: buf[p + 2],
            td: 0,
            ta: 0,
            bw: 0,
            bh: 0,
            data: new Uint8Array(0),
          });
        }
        hmax = Math.max(...comps.map((c) => c.h));
        vmax = Math.max(...comps.map((c) => c.v));
        if (nc === 1) {
          hmax =
            vmax =
            comps[0].h =
            comps[0].v =
              1; // a single component is never interleaved
        }
        if (nc === 3) {
          // supported: luma h,v in {1,2}, chroma 1×1
          const [y, cb, cr] = comps;
          if (y.h > 2 || y.v > 2 || cb.h !== 1 || cb.v !== 1 || cr.h !== 1 || cr.v !== 1) {
            throw new _Unsupported();
          }
        }
        mcux = Math.ceil(width / (8 * hmax));
        mcuy = Math.ceil(height / (8 * vmax));
        for (const c of comps) {
          c.bw = mcux * c.h;
          c.bh = mcuy * c.v;
          c.data = new Uint8Array(c.bw * 8 * c.bh * 8);
        }
        break;
      }
      case 0xc2:
      case 0xc3:
      case 0xc5:
      case 0xc6:
      case 0xc7:
      case 0xc9:
      case 0xca:
      case 0xcb:
      case 0xcd:
      case 0xce:
      case 0xcf:
        throw new _Unsupported(); // progressive, lossless, arithmetic, hierarchical
      case 0xee: // Adobe APP14: colour transform flags we leave to libvips
        throw new _Unsupported();
      case 0xdd:
        restart = u16(seg);
        break;
      case 0xda: { // SOS
        if (scanned || comps.length === 0) throw new _Unsupported();
        const ns = buf[seg];
        if (ns !== comps.length) throw new _Unsupported(); // non-interleaved multi-scan baseline: rare
        for (let i = 0; i < ns; i++) {
          const cid = buf[seg + 1 + 2 * i];
          const c = comps.find((x) => x.id === cid);
          if (!c) throw new Error("JPEG scan names an unknown component");
          c.td = buf[seg + 2 + 2 * i] >> 4;
          c.ta = buf[seg + 2 + 2 * i] & 15;
        }
        pos = _scan(buf, end, comps, qt, dcT, acT, mcux, mcuy, restart);
        scanned = true;
        continue;
      }
      default:
        break; // APPn, COM, …
    }
    pos = end;
  }
  if (!scanned) throw new Error("JPEG has no image data");
  return _toRgb(comps, width, height, hmax, vmax);
}

function _scan(
  buf: Uint8Array,
  start: number,
  comps: {
    h: number;
    v: number;
    tq: number;
    td: number;
    ta: number;
    bw: number;
    data: Uint8Array | Int16Array;
  }[],
  qt: Int32Array[],
  dcT: (Huff | undefined)[],
  acT: (Huff | undefined)[],
  mcux: number,
  mcuy: number,
  restart: number,
): number {
  let pos = start;
  let bits = 0, nbits = 0;
  let hitMarker = false;
  const fill = () => {
    while (nbits <= 24) {
      let b = 0;
      if (!hitMarker && pos < buf.length) {
        b = buf[pos];
        if (b === 0xff) {
          const nx = buf[pos + 1];
          if (nx === 0) pos += 2;
          else {
            hitMarker = true;
            b = 0;
          }
        } else pos++;
      }
      bits = (bits << 8) | b;
      nbits += 8;
    }
  };
  const decodeHuff = (t: Huff): number => {
    if (nbits < 16) fill();
    const look = (bits >>> (nbits - 9)) & 511;
    const e = t.lookup[look];
    if (e !== 0) {
      nbits -= e >> 8;
      return e & 255;
    }
    let l = 10;
    let code = (bits >>> (nbits - 10)) & 1023;
    while (l <= 16 && code > t.maxcode[l]) {
      l++;
      code = (bits >>> (nbits - l)) & ((1 << l) - 1);
    }
    if (l > 16) throw new Error("JPEG Huffman code is invalid (corrupt data)");
    nbits -= l;
    return t.values[t.valptr[l] + code - t.mincode[l]];
  };
  const receive = (s: number): number => {
    if (s === 0) return 0;
    if (nbits < s) fill();
    const v = (bits >>> (nbits - s)) & ((1 << s) - 1);
    nbits -= s;
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  };
  const pred = new Int32Array(comps.length);
  const coef = new Int32Array(64);
  const ws = new Int32Array(64);
  const tables = comps.map((c) => {
    const q = qt[c.tq], dc = dcT[c.td], ac = acT[c.ta];
    if (!q || !dc || !ac) throw new Error("JPEG scan refers to a missing quantisation or Huffman table");
    return { q, dc, ac };
  });
  let mcu = 0;
  const total = mcux * mcuy;
  for (let my = 0; my < mcuy; my++) {
    for (let mx = 0; mx < mcux; mx++) {
      if (restart && mcu > 0 && mcu % restart === 0) {
        // byte-align, expect RSTn
        nbits = 0;
        bits = 0;
        hitMarker = false;
        while (pos < buf.length && !(buf[pos] === 0xff && buf[pos + 1] >= 0xd0 && buf[pos + 1] <= 0xd7)) {
          pos++;
        }
        pos += 2;
        pred.fill(0);
      }
      for (let ci = 0; ci < comps.length; ci++) {
        const c = comps[ci], t = tables[ci];
        for (let by = 0; by < c.v; by++) {
          for (let bx = 0; bx < c.h; bx++) {
            coef.fill(0);
            const s = decodeHuff(t.dc);
            pred[ci] += receive(s);
            coef[0] = pred[ci] * t.q[0];
            for (let k = 1; k < 64;) {
              const rs = decodeHuff(t.ac);
              const r = rs >> 4, sz = rs & 15;
              if (sz === 0) {
                if (r !== 15) break;
                k += 16;
                continue;
              }
              k += r;
              if (k > 63) throw new Error("JPEG coefficient index out of range (corrupt data)");
              const z = ZIGZAG[k];
              coef[z] = receive(sz) * t.q[z];
              k++;
            }
            const row = (my * c.v + by) * 8, col = (mx * c.h + bx) * 8;
            _idct(coef, ws, c.data as Uint8Array, row * c.bw * 8 + col, c.bw * 8);
          }
        }
      }
      mcu++;
    }
  }
  void total;
  // skip to the marker that ends the scan
  while (
    pos < buf.length &&
    !(buf[pos] === 0xff && buf[pos + 1] !== 0 && !(buf[pos + 1] >= 0xd0 && buf[pos + 1] <= 0xd7))
  ) {
    pos++;
  }
  return pos;
}

/** libjpeg's jpeg_idct_islow: two 1-D passes, PASS1_BITS = 2, output range-limited to 0..255. */
function _idct(inp: Int32Array, ws: Int32Array, out: Uint8Array, o: number, stride: number): void {
  for (let c = 0; c < 8; c++) {
    if (
      inp[8 + c] === 0 && inp[16 + c] === 0 && inp[24 + c] === 0 && inp[32 + c] === 0 && inp[40 + c] === 0 &&
      inp[48 + c] === 0 && inp[56 + c] === 0
    ) {
      const dc = inp[c] << 2;
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
      continue;
    }
    let z2 = inp[16 + c], z3 = inp[48 + c];
    let z1 = (z2 + z3) * F0_541;
    let tmp2 = z1 - z3 * F1_847;
    let tmp3 = z1 + z2 * F0_765;
    z2 = inp[c];
    z3 = inp[32 + c];
    let tmp0 = (z2 + z3) << 13;
    let tmp1 = (z2 - z3) << 13;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = inp[56 + c];
    tmp1 = inp[40 + c];
    tmp2 = inp[24 + c];
    tmp3 = inp[8 + c];
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F1_175;
    tmp0 *= F0_298;
    tmp1 *= F2_053;
    tmp2 *= F3_072;
    tmp3 *= F1_501;
    z1 *= -F0_899;
    z2 *= -F2_562;
    z3 = z3 * -F1_961 + z5;
    z4 = z4 * -F0_390 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const R = 1 << 10;
    ws[c] = (tmp10 + tmp3 + R) >> 11;
    ws[56 + c] = (tmp10 - tmp3 + R) >> 11;
    ws[8 + c] = (tmp11 + tmp2 + R) >> 11;
    ws[48 + c] = (tmp11 - tmp2 + R) >> 11;
    ws[16 + c] = (tmp12 + tmp1 + R) >> 11;
    ws[40 + c] = (tmp12 - tmp1 + R) >> 11;
    ws[24 + c] = (tmp13 + tmp0 + R) >> 11;
    ws[32 + c] = (tmp13 - tmp0 + R) >> 11;
  }
  const R2 = 1 << 17;
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const p = o + r * stride;
    let z2 = ws[w + 2], z3 = ws[w + 6];
    let z1 = (z2 + z3) * F0_541;
    let tmp2 = z1 - z3 * F1_847;
    let tmp3 = z1 + z2 * F0_765;
    let tmp0 = (ws[w] + ws[w + 4]) << 13;
    let tmp1 = (ws[w] - ws[w + 4]) << 13;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7];
    tmp1 = ws[w + 5];
    tmp2 = ws[w + 3];
    tmp3 = ws[w + 1];
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F1_175;
    tmp0 *= F0_298;
    tmp1 *= F2_053;
    tmp2 *= F3_072;
    tmp3 *= F1_501;
    z1 *= -F0_899;
    z2 *= -F2_562;
    z3 = z3 * -F1_961 + z5;
    z4 = z4 * -F0_390 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    out[p] = _clamp(((tmp10 + tmp3 + R2) >> 18) + 128);
    out[p + 7] = _clamp(((tmp10 - tmp3 + R2) >> 18) + 128);
    out[p + 1] = _clamp(((tmp11 + tmp2 + R2) >> 18) + 128);
    out[p + 6] = _clamp(((tmp11 - tmp2 + R2) >> 18) + 128);
    out[p + 2] = _clamp(((tmp12 + tmp1 + R2) >> 18) + 128);
    out[p + 5] = _clamp(((tmp12 - tmp1 + R2) >> 18) + 128);
    out[p + 3] = _clamp(((tmp13 + tmp0 + R2) >> 18) + 128);
    out[p + 4] = _clamp(((tmp13 - tmp0 + R2) >> 18) + 128);
  }
}

function _clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Upsamples a chroma plane by (h, v) ∈ {1,2}² with libjpeg's fancy (triangle) filter, to width×height. */
function _upsample(
  src: Uint8Array,
  stride: number,
  cw: number,
  ch: number,
  h: number,
  v: number,
  width: number,
  height: number,
): Uint8Array {
  const out = new Uint8Array(width * height);
  if (h === 1 && v === 1) {
    for (let y = 0; y < height; y++) out.set(src.subarray(y * stride, y * stride + width), y * width);
    return out;
  }
  const ow = cw * h; // full upsampled row (may exceed width by one)
  const row = new Uint16Array(ow);
  const outRows = ch * v;
  for (let oy = 0; oy < Math.min(outRows, height); oy++) {
    const cy = v === 2 ? oy >> 1 : oy;
    if (v === 2) {
      // vertical: 3*nearer + further, further = row above for even output rows, below for odd (edges replicate)
      const ny = oy & 1 ? Math.min(cy + 1, ch - 1) : Math.max(cy - 1, 0);
      const a = cy * stride, b = ny * stride;
      const sums = new Int32Array(cw);
      for (let x = 0; x < cw; x++) sums[x] = src[a + x] * 3 + src[b + x];
      if (h === 2) {
        if (cw === 1) {
          row[0] = (sums[0] * 4 + 8) >> 4;
          row[1] = (sums[0] * 4 + 7) >> 4;
        } else {
          row[0] = (sums[0] * 4 + 8) >> 4;
          row[1] = (sums[0] * 3 + sums[1] + 7) >> 4;
          for (let x = 1; x < cw - 1; x++) {
            row[2 * x] = (sums[x] * 3 + sums[x - 1] + 8) >> 4;
            row[2 * x + 1] = (sums[x] * 3 + sums[x + 1] + 7) >> 4;
          }
          const l = cw - 1;
          row[2 * l] = (sums[l] * 3 + sums[l - 1] + 8) >> 4;
          row[2 * l + 1] = (sums[l] * 4 + 7) >> 4;
        }
      } else {
        const bias = oy & 1 ? 2 : 1; // libjpeg-turbo h1v2: upper row +1, lower row +2
        for (let x = 0; x < cw; x++) row[x] = (sums[x] + bias) >> 2;
      }
    } else {
      // h2v1
      const a = cy * stride;
      if (cw === 1) {
        row[0] = row[1] = src[a];
      } else {
        row[0] = src[a];
        row[1] = (src[a] * 3 + src[a + 1] + 2) >> 2;
        for (let x = 1; x < cw - 1; x++) {
          const iv = src[a + x] * 3;
          row[2 * x] = (iv + src[a + x - 1] + 1) >> 2;
          row[2 * x + 1] = (iv + src[a + x + 1] + 2) >> 2;
        }
        const l = cw - 1;
        row[2 * l] = (src[a + l] * 3 + src[a + l - 1] + 1) >> 2;
        row[2 * l + 1] = src[a + l];
      }
    }
    const o = oy * width;
    for (let x = 0; x < width; x++) out[o + x] = row[x];
  }
  return out;
}

function _toRgb(
  comps: { h: number; v: number; bw: number; data: Uint8Array | Int16Array }[],
  width: number,
  height: number,
  hmax: number,
  vmax: number,
): JpegRgb {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const Y = comps[0];
  const ys = Y.bw * 8;
  if (comps.length === 1) {
    const d = Y.data as Uint8Array;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = d[y * ys + x], o = (y * width + x) * 3;
        out[o] = out[o + 1] = out[o + 2] = v;
      }
    }
    return { data: out, height, width };
  }
  const h = hmax / comps[1].h, v = vmax / comps[1].v;
  // downsampled chroma size as libjpeg computes it
  const cw = Math.ceil((width * comps[1].h) / hmax), ch = Math.ceil((height * comps[1].v) / vmax);
  const cs = comps[1].bw * 8;
  const cb = _upsample(comps[1].data as Uint8Array, cs, cw, ch, h, v, width, height);
  const cr = _upsample(comps[2].data as Uint8Array, cs, cw, ch, h, v, width, height);
  const yd = Y.data as Uint8Array;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const yy = yd[y * ys + x], b = cb[i], r = cr[i];
      const o = i * 3;
      out[o] = _clamp(yy + CR_R[r]);
      out[o + 1] = _clamp(yy + ((CB_G[b] + CR_G[r]) >> 16));
      out[o + 2] = _clamp(yy + CB_B[b]);
    }
  }
  return { data: out, height, width };
}

/** Width and height from a JPEG's SOF marker without decoding, or null when not a JPEG / no SOF found. */
export function jpegSize(buf: Uint8Array): { width: number; height: number } | null {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) return null;
  let pos = 2;
  while (pos + 9 < buf.length) {
    if (buf[pos] !== 0xff) return null;
    const m = buf[pos + 1];
    if (m === 0xff) {
      pos++;
      continue;
    }
    if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7)) {
      pos += 2;
      continue;
    }
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      return { height: (buf[pos + 5] << 8) | buf[pos + 6], width: (buf[pos + 7] << 8) | buf[pos + 8] };
    }
    if (m === 0xda || m === 0xd9) return null;
    pos += 2 + ((buf[pos + 2] << 8) | buf[pos + 3]);
  }
  return null;
}
