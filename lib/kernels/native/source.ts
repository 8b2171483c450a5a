/**
 * The C source of funmatch's native convolution kernels (compiled on first use by ./build.ts).
 *
 * Why it is a TypeScript string: the runner decides staleness from each stage's Deno module graph, so code
 * that changes numbers must be a module in that graph. Editing this file reruns exactly the training stages.
 *
 * What it computes (NHWC activations, HWIO filters, float32, any stride, dilation and padding):
 * - `fm_conv2d`:          y[p, o]  = Σ_k col[p, k] · w[k, o]
 * - `fm_conv2d_dfilter`:  dw[k, o] = Σ_p col[p, k] · dy[p, o]
 * - `fm_conv2d_dinput`:   dx = col2im(dy · wᵀ)
 * - `fm_gn_relu` / `fm_gn_relu_grad`: ReLU(GroupNorm(x)) and its gradient, statistics summed in double, one
 *   pass for the statistics and one for the output (two and two backward) instead of a dozen wasm ops.
 * where p runs over output positions (b, y, x), k over (kh, kw, ci) and col is the im2col matrix of x. Each is
 * a register-blocked 6×16 outer-product kernel over an im2col block built with one memcpy per tap; GCC
 * vector extensions let `-march=native` pick the widest FMA the machine has.
 *
 * Threads split the *outputs* (positions, filter rows, or images), never a reduction (GroupNorm's per-image
 * parameter-gradient partials are summed in image order afterwards), so every output is summed in the same
 * order whatever the thread count: results are bit-identical for 1 and N threads.
 */
export const NATIVE_SOURCE = String.raw`
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
static inline v8 ld8(const float* p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void st8(float* p, v8 v) { memcpy(p, &v, sizeof v); }

enum { MR = 6, NR = 16, MAX_THREADS = 64, CHUNK = 96 };

/* the 6×16 accumulator block of the micro-kernels: twelve 8-wide registers */
#define ACC_LOAD                                                                                      \
  v8 c00 = ld8(acc + 0), c01 = ld8(acc + 8), c10 = ld8(acc + 16), c11 = ld8(acc + 24);                 \
  v8 c20 = ld8(acc + 32), c21 = ld8(acc + 40), c30 = ld8(acc + 48), c31 = ld8(acc + 56);               \
  v8 c40 = ld8(acc + 64), c41 = ld8(acc + 72), c50 = ld8(acc + 80), c51 = ld8(acc + 88)
#define ACC_FMA                                                                                       \
  c00 += a0 * b0; c01 += a0 * b1; c10 += a1 * b0; c11 += a1 * b1; c20 += a2 * b0; c21 += a2 * b1;     \
  c30 += a3 * b0; c31 += a3 * b1; c40 += a4 * b0; c41 += a4 * b1; c50 += a5 * b0; c51 += a5 * b1
#define ACC_STORE                                                                                     \
  st8(acc + 0, c00); st8(acc + 8, c01); st8(acc + 16, c10); st8(acc + 24, c11);                        \
  st8(acc + 32, c20); st8(acc + 40, c21); st8(acc + 48, c30); st8(acc + 56, c31);                      \
  st8(acc + 64, c40); st8(acc + 72, c41); st8(acc + 80, c50); st8(acc + 88, c51)

/* acc[6][16] += sum_i a_i ⊗ b_i, where a_i = (a[0], a[rs], ..., a[5 rs]) then a += step, b_i = b[0..16), b += 16. */
static void mk(int n, const float* a, long rs, long step, const float* b, float* acc) {
  ACC_LOAD;
  for (int i = 0; i < n; i++) {
    v8 b0 = ld8(b), b1 = ld8(b + 8);
    float a0 = a[0], a1 = a[rs], a2 = a[2 * rs], a3 = a[3 * rs], a4 = a[4 * rs], a5 = a[5 * rs];
    ACC_FMA;
    a += step;
    b += NR;
  }
  ACC_STORE;
}

typedef struct {
  int B, H, W, Ci, KH, KW, Co, sh, sw, dh, dw, pt, pl, Ho, Wo;
} geom;

/* im2col row of output position p (length KH*KW*Ci, zeros where the tap falls in the padding). */
static void im2col_row(const geom* g, const float* x, long p, float* row) {
  const long hw = (long)g->Ho * g->Wo;
  const int b = (int)(p / hw), rem = (int)(p % hw), oy = rem / g->Wo, ox = rem % g->Wo;
  const size_t ci = (size_t)g->Ci;
  for (int i = 0; i < g->KH; i++) {
    const int iy = oy * g->sh + i * g->dh - g->pt;
    for (int j = 0; j < g->KW; j++, row += ci) {
      const int ix = ox * g->sw + j * g->dw - g->pl;
      if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W) memset(row, 0, sizeof(float) * ci);
      else memcpy(row, x + (((size_t)b * g->H + iy) * g->W + ix) * ci, sizeof(float) * ci);
    }
  }
}

/* m[k][n] (row-major, ld = n) → panels [ceil(n/16)][k][16], zero-padded. */
static float* pack_panels(const float* m, int k, int n) {
  const int np = (n + NR - 1) / NR;
  float* out = malloc(sizeof(float) * (size_t)np * k * NR);
  for (int p = 0; p < np; p++)
    for (int r = 0; r < k; r++) {
      float* d = out + ((size_t)p * k + r) * NR;
      for (int j = 0; j < NR; j++) {
        const int c = p * NR + j;
        d[j] = c < n ? m[(size_t)r * n + c] : 0.f;
      }
    }
  return out;
}

typedef struct {
  const geom* g;
  const float *x, *dy, *panels;
  float* out;
  int t, nt;
} job;

static void run_jobs(job* jobs, int nt, void* (*fn)(void*)) {
  pthread_t th[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], 0, fn, &jobs[t]) == 0;
  fn(&jobs[0]);
  for (int t = 1; t < nt; t++) {
    if (started[t]) pthread_join(th[t], 0);
    else fn(&jobs[t]); /* could not start a thread: do its share here, same result */
  }
}

static int clamp_threads(int t) { return t < 1 ? 1 : t > MAX_THREADS ? MAX_THREADS : t; }

/* acc[6][16] += Σ_taps Σ_c a_r,t[c] ⊗ b: a_r,t = 6 pointers per tap (x at that tap of each output position, or
   zeros), b = packed panel rows, Ci per tap. Direct convolution: nothing is copied into an im2col buffer. */
static void mk_taps(int ntaps, int ci, const float* const* ap, const float* b, float* acc) {
  ACC_LOAD;
  for (int t = 0; t < ntaps; t++, ap += MR) {
    const float *p0 = ap[0], *p1 = ap[1], *p2 = ap[2], *p3 = ap[3], *p4 = ap[4], *p5 = ap[5];
    for (int i = 0; i < ci; i++) {
      v8 b0 = ld8(b), b1 = ld8(b + 8);
      float a0 = p0[i], a1 = p1[i], a2 = p2[i], a3 = p3[i], a4 = p4[i], a5 = p5[i];
      ACC_FMA;
      b += NR;
    }
  }
  ACC_STORE;
}

/* the 8-wide variant for a last panel of at most 8 channels (narrow layers waste half of a 16-wide panel) */
static void mk_taps8(int ntaps, int ci, const float* const* ap, const float* b, float* acc) {
  v8 c0 = ld8(acc + 0), c1 = ld8(acc + 16), c2 = ld8(acc + 32), c3 = ld8(acc + 48), c4 = ld8(acc + 64),
     c5 = ld8(acc + 80);
  for (int t = 0; t < ntaps; t++, ap += MR) {
    const float *p0 = ap[0], *p1 = ap[1], *p2 = ap[2], *p3 = ap[3], *p4 = ap[4], *p5 = ap[5];
    for (int i = 0; i < ci; i++) {
      v8 b0 = ld8(b);
      c0 += p0[i] * b0; c1 += p1[i] * b0; c2 += p2[i] * b0;
      c3 += p3[i] * b0; c4 += p4[i] * b0; c5 += p5[i] * b0;
      b += NR;
    }
  }
  st8(acc + 0, c0); st8(acc + 16, c1); st8(acc + 32, c2); st8(acc + 48, c3); st8(acc + 64, c4); st8(acc + 80, c5);
}

/* ---- forward: blocks of 6 output positions over a zero-padded copy of x, so every tap is in bounds and
   (without dilation) the KW taps of a kernel row are one contiguous run of KW·Ci inputs ---- */
static void* fwd_worker(void* arg) {
  job* j = arg;
  const geom* g = j->g; /* geometry of the padded input: no padding left */
  const int K = g->KH * g->KW * g->Ci, np = (g->Co + NR - 1) / NR;
  const int merged = g->dw == 1, ntaps = merged ? g->KH : g->KH * g->KW, run = merged ? g->KW * g->Ci : g->Ci;
  const long P = (long)g->B * g->Ho * g->Wo, nblk = (P + MR - 1) / MR, hw = (long)g->Ho * g->Wo;
  const long b0 = nblk * j->t / j->nt, b1 = nblk * (j->t + 1) / j->nt;
  const float** ap = malloc(sizeof(float*) * (size_t)ntaps * MR);
  float acc[MR * NR];
  for (long blk = b0; blk < b1; blk++) {
    const long p0 = blk * MR;
    const int mr = P - p0 < MR ? (int)(P - p0) : MR;
    /* (b, oy, ox) of the block's first position, then stepped: no divisions per row */
    int b = (int)(p0 / hw), rem = (int)(p0 % hw), oy = rem / g->Wo, ox = rem % g->Wo;
    for (int r = 0; r < MR; r++) {
      if (r < mr) { /* rows past the end keep the last position's pointers and are not stored */
        const float* base = j->x + (((size_t)b * g->H + (size_t)oy * g->sh) * g->W + (size_t)ox * g->sw) * g->Ci;
        int t = 0;
        for (int i = 0; i < g->KH; i++) {
          const float* row = base + (size_t)i * g->dh * g->W * g->Ci;
          if (merged) ap[t++ * MR + r] = row;
          else for (int jj = 0; jj < g->KW; jj++) ap[t++ * MR + r] = row + (size_t)jj * g->dw * g->Ci;
        }
        if (++ox == g->Wo) { ox = 0; if (++oy == g->Ho) { oy = 0; b++; } }
      } else {
        for (int t = 0; t < ntaps; t++) ap[t * MR + r] = ap[t * MR + r - 1];
      }
    }
    for (int pn = 0; pn < np; pn++) {
      const int nr = g->Co - pn * NR < NR ? g->Co - pn * NR : NR;
      memset(acc, 0, sizeof acc);
      if (nr <= 8) mk_taps8(ntaps, run, ap, j->panels + (size_t)pn * K * NR, acc);
      else mk_taps(ntaps, run, ap, j->panels + (size_t)pn * K * NR, acc);
      for (int r = 0; r < mr; r++) {
        memcpy(j->out + (size_t)(p0 + r) * g->Co + (size_t)pn * NR, acc + r * NR, sizeof(float) * nr);
      }
    }
  }
  free(ap);
  return 0;
}

void fm_conv2d(const float* x, const float* w, float* y, const int32_t* gi, int threads) {
  geom g = {gi[0], gi[1], gi[2], gi[3], gi[4], gi[5], gi[6], gi[7], gi[8], gi[9], gi[10], gi[11], gi[12], gi[13], gi[14]};
  const int K = g.KH * g.KW * g.Ci, nt = clamp_threads(threads);
  /* the rows and columns the output reads, padding included */
  const int Hp = (g.Ho - 1) * g.sh + (g.KH - 1) * g.dh + 1, Wp = (g.Wo - 1) * g.sw + (g.KW - 1) * g.dw + 1;
  float* xp = 0;
  geom gp = g;
  if (g.pt > 0 || g.pl > 0 || Hp > g.H || Wp > g.W) {
    const size_t ci = (size_t)g.Ci;
    xp = calloc((size_t)g.B * Hp * Wp * ci, sizeof(float));
    const int x0 = g.pl > 0 ? g.pl : 0, ix0 = x0 - g.pl;
    int n = g.W - ix0;
    if (n > Wp - x0) n = Wp - x0;
    for (int b = 0; b < g.B && n > 0; b++)
      for (int yy = 0; yy < Hp; yy++) {
        const int iy = yy - g.pt;
        if (iy < 0 || iy >= g.H) continue;
        memcpy(xp + (((size_t)b * Hp + yy) * Wp + x0) * ci, x + (((size_t)b * g.H + iy) * g.W + ix0) * ci,
               sizeof(float) * (size_t)n * ci);
      }
    gp.H = Hp;
    gp.W = Wp;
    gp.pt = gp.pl = 0;
  }
  float* panels = pack_panels(w, K, g.Co);
  job jobs[MAX_THREADS];
  for (int t = 0; t < nt; t++) jobs[t] = (job){&gp, xp ? xp : x, 0, panels, y, t, nt};
  run_jobs(jobs, nt, fwd_worker);
  free(panels);
  free(xp);
}

/* ---- filter gradient: each thread owns a range of 6-row blocks of dw; positions in chunks ---- */
static void* dfilter_worker(void* arg) {
  job* j = arg;
  const geom* g = j->g;
  const int K = g->KH * g->KW * g->Ci, np = (g->Co + NR - 1) / NR, nkb = (K + MR - 1) / MR;
  const int kb0 = (int)((long)nkb * j->t / j->nt), kb1 = (int)((long)nkb * (j->t + 1) / j->nt);
  if (kb0 >= kb1) return 0;
  const long P = (long)g->B * g->Ho * g->Wo;
  /* K + MR: the last block of a row may read past K into the next row (or this padding); those rows are dropped */
  float* col = calloc((size_t)CHUNK * K + MR, sizeof(float));
  float* dyp = malloc(sizeof(float) * (size_t)np * CHUNK * NR);
  float* acc = calloc((size_t)(kb1 - kb0) * np * MR * NR, sizeof(float));
  for (long p0 = 0; p0 < P; p0 += CHUNK) {
    const int n = P - p0 < CHUNK ? (int)(P - p0) : CHUNK;
    for (int r = 0; r < n; r++) im2col_row(g, j->x, p0 + r, col + (size_t)r * K);
    for (int pn = 0; pn < np; pn++) {
      const int nr = g->Co - pn * NR < NR ? g->Co - pn * NR : NR;
      for (int r = 0; r < n; r++) {
        float* d = dyp + ((size_t)pn * CHUNK + r) * NR;
        memcpy(d, j->dy + (size_t)(p0 + r) * g->Co + (size_t)pn * NR, sizeof(float) * nr);
        for (int c = nr; c < NR; c++) d[c] = 0.f;
      }
    }
    for (int kb = kb0; kb < kb1; kb++)
      for (int pn = 0; pn < np; pn++) {
        mk(n, col + (size_t)kb * MR, 1, K, dyp + (size_t)pn * CHUNK * NR,
           acc + ((size_t)(kb - kb0) * np + pn) * MR * NR);
      }
  }
  for (int kb = kb0; kb < kb1; kb++)
    for (int pn = 0; pn < np; pn++) {
      const float* a = acc + ((size_t)(kb - kb0) * np + pn) * MR * NR;
      const int nr = g->Co - pn * NR < NR ? g->Co - pn * NR : NR;
      for (int r = 0; r < MR && kb * MR + r < K; r++) {
        memcpy(j->out + (size_t)(kb * MR + r) * g->Co + (size_t)pn * NR, a + r * NR, sizeof(float) * nr);
      }
    }
  free(col);
  free(dyp);
  free(acc);
  return 0;
}

void fm_conv2d_dfilter(const float* x, const float* dy, float* dw, const int32_t* gi, int threads) {
  geom g = {gi[0], gi[1], gi[2], gi[3], gi[4], gi[5], gi[6], gi[7], gi[8], gi[9], gi[10], gi[11], gi[12], gi[13], gi[14]};
  const int nt = clamp_threads(threads);
  job jobs[MAX_THREADS];
  for (int t = 0; t < nt; t++) jobs[t] = (job){&g, x, dy, 0, dw, t, nt};
  run_jobs(jobs, nt, dfilter_worker);
}

/* ---- input gradient: dcol = dy · wᵀ per block of 6 positions, scattered back; each thread owns images ---- */
static void* dinput_worker(void* arg) {
  job* j = arg;
  const geom* g = j->g;
  const int K = g->KH * g->KW * g->Ci, npk = (K + NR - 1) / NR;
  const int b0 = (int)((long)g->B * j->t / j->nt), b1 = (int)((long)g->B * (j->t + 1) / j->nt);
  const long hw = (long)g->Ho * g->Wo;
  float* dyrows = malloc(sizeof(float) * (size_t)MR * g->Co);
  float* dcol = malloc(sizeof(float) * (size_t)MR * npk * NR);
  float acc[MR * NR];
  const size_t ci = (size_t)g->Ci;
  for (int b = b0; b < b1; b++) {
    memset(j->out + (size_t)b * g->H * g->W * ci, 0, sizeof(float) * (size_t)g->H * g->W * ci);
    for (long q0 = 0; q0 < hw; q0 += MR) {
      const int mr = hw - q0 < MR ? (int)(hw - q0) : MR;
      for (int r = 0; r < MR; r++) {
        if (r < mr) memcpy(dyrows + (size_t)r * g->Co, j->dy + ((size_t)b * hw + q0 + r) * g->Co, sizeof(float) * g->Co);
        else memset(dyrows + (size_t)r * g->Co, 0, sizeof(float) * g->Co);
      }
      for (int pn = 0; pn < npk; pn++) {
        memset(acc, 0, sizeof acc);
        mk(g->Co, dyrows, g->Co, 1, j->panels + (size_t)pn * g->Co * NR, acc);
        for (int r = 0; r < MR; r++) memcpy(dcol + ((size_t)r * npk + pn) * NR, acc + r * NR, sizeof(float) * NR);
      }
      for (int r = 0; r < mr; r++) {
        const int q = (int)(q0 + r), oy = q / g->Wo, ox = q % g->Wo;
        const float* src = dcol + (size_t)r * npk * NR;
        for (int i = 0; i < g->KH; i++) {
          const int iy = oy * g->sh + i * g->dh - g->pt;
          for (int jj = 0; jj < g->KW; jj++, src += ci) {
            const int ix = ox * g->sw + jj * g->dw - g->pl;
            if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W) continue;
            float* d = j->out + (((size_t)b * g->H + iy) * g->W + ix) * ci;
            for (size_t c = 0; c < ci; c++) d[c] += src[c];
          }
        }
      }
    }
  }
  free(dyrows);
  free(dcol);
  return 0;
}

void fm_conv2d_dinput(const float* dy, const float* w, float* dx, const int32_t* gi, int threads) {
  geom g = {gi[0], gi[1], gi[2], gi[3], gi[4], gi[5], gi[6], gi[7], gi[8], gi[9], gi[10], gi[11], gi[12], gi[13], gi[14]};
  const int K = g.KH * g.KW * g.Ci, nt = clamp_threads(threads);
  /* wᵀ: [Co][K] */
  float* wt = malloc(sizeof(float) * (size_t)K * g.Co);
  for (int k = 0; k < K; k++)
    for (int o = 0; o < g.Co; o++) wt[(size_t)o * K + k] = w[(size_t)k * g.Co + o];
  float* panels = pack_panels(wt, g.Co, K);
  free(wt);
  job jobs[MAX_THREADS];
  for (int t = 0; t < nt; t++) jobs[t] = (job){&g, 0, dy, panels, dx, t, nt};
  run_jobs(jobs, nt, dinput_worker);
  free(panels);
}

/* ---- GroupNorm + ReLU over NHWC: y = max(0, (x − μ_bg)·rstd_bg·γ_c + β_c); statistics in double ---- */
typedef struct {
  const float *x, *dy, *gamma, *beta;
  float *y, *mean, *rstd, *dx;
  double *dgamma, *dbeta; /* [B][C] partials, summed over b in order by the caller */
  int B, HW, C, G;
  float eps;
  int t, nt;
} gn_job;

static void gn_stats(const float* x, int HW, int C, int G, float eps, double* s1, double* s2, float* mean, float* rstd) {
  const int cg = C / G;
  for (int c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
  for (int i = 0; i < HW; i++, x += C)
    for (int c = 0; c < C; c++) { const double v = x[c]; s1[c] += v; s2[c] += v * v; }
  const double n = (double)HW * cg;
  for (int g = 0; g < G; g++) {
    double a = 0.0, b = 0.0;
    for (int c = g * cg; c < (g + 1) * cg; c++) { a += s1[c]; b += s2[c]; }
    const double m = a / n;
    double var = b / n - m * m;
    if (var < 0.0) var = 0.0;
    mean[g] = (float)m;
    rstd[g] = (float)(1.0 / sqrt(var + (double)eps));
  }
}

static void gn_apply(const float* restrict x, float* restrict y, int HW, int C, const float* restrict a,
                     const float* restrict sh) {
  for (int i = 0; i < HW; i++, x += C, y += C)
    for (int c = 0; c < C; c++) { const float v = x[c] * a[c] + sh[c]; y[c] = v > 0.f ? v : 0.f; }
}

static void* gn_fwd_worker(void* arg) {
  gn_job* j = arg;
  const int b0 = (int)((long)j->B * j->t / j->nt), b1 = (int)((long)j->B * (j->t + 1) / j->nt), C = j->C;
  const int cg = C / j->G;
  double* s = malloc(sizeof(double) * 2 * C);
  float* ab = malloc(sizeof(float) * 2 * C);
  for (int b = b0; b < b1; b++) {
    const size_t off = (size_t)b * j->HW * C;
    gn_stats(j->x + off, j->HW, C, j->G, j->eps, s, s + C, j->mean + (size_t)b * j->G, j->rstd + (size_t)b * j->G);
    for (int c = 0; c < C; c++) {
      const float r = j->rstd[(size_t)b * j->G + c / cg], m = j->mean[(size_t)b * j->G + c / cg];
      ab[c] = r * j->gamma[c];
      ab[C + c] = j->beta[c] - m * ab[c];
    }
    gn_apply(j->x + off, j->y + off, j->HW, C, ab, ab + C);
  }
  free(s);
  free(ab);
  return 0;
}

static void gn_run(gn_job* base, int threads, void* (*fn)(void*)) {
  const int nt = clamp_threads(threads);
  pthread_t th[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  gn_job jobs[MAX_THREADS];
  for (int t = 0; t < nt; t++) { jobs[t] = *base; jobs[t].t = t; jobs[t].nt = nt; }
  for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], 0, fn, &jobs[t]) == 0;
  fn(&jobs[0]);
  for (int t = 1; t < nt; t++) {
    if (started[t]) pthread_join(th[t], 0);
    else fn(&jobs[t]);
  }
}

/* gi = [B, HW, C, G]; mean, rstd: [B][G] */
void fm_gn_relu(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                const int32_t* gi, float eps, int threads) {
  gn_job j = {x, 0, gamma, beta, y, mean, rstd, 0, 0, 0, gi[0], gi[1], gi[2], gi[3], eps, 0, 1};
  gn_run(&j, threads, gn_fwd_worker);
}

/* One image's backward: pass 1 sums g = dy·[pre > 0] and g·x̂ per channel (float partials over row blocks,
   added into double), pass 2 writes dx = g·k0 + x̂·k1 + k2. Pointers are restrict so loops over c vectorise. */
static void gn_bwd_image(const float* restrict x, const float* restrict dy, float* restrict dx, int HW, int C, int G,
                         const float* restrict gamma, const float* restrict a, const float* restrict sh,
                         const float* restrict r, const float* restrict m, double* restrict s1,
                         double* restrict s2, float* restrict k, float* restrict p1, float* restrict p2) {
  const int cg = C / G;
  const double n = (double)HW * cg;
  for (int c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
  for (int i0 = 0; i0 < HW; i0 += 64) {
    const int i1 = HW - i0 < 64 ? HW : i0 + 64;
    for (int c = 0; c < C; c++) p1[c] = p2[c] = 0.f;
    for (int i = i0; i < i1; i++) {
      const float* restrict xr = x + (size_t)i * C;
      const float* restrict dr = dy + (size_t)i * C;
      for (int c = 0; c < C; c++) {
        const float pre = xr[c] * a[c] + sh[c];
        const float g = pre > 0.f ? dr[c] : 0.f;
        p1[c] += g;
        p2[c] += g * ((xr[c] - m[c]) * r[c]);
      }
    }
    for (int c = 0; c < C; c++) { s1[c] += p1[c]; s2[c] += p2[c]; }
  }
  for (int gi = 0; gi < G; gi++) {
    double m1 = 0.0, m2 = 0.0;
    for (int c = gi * cg; c < (gi + 1) * cg; c++) { m1 += gamma[c] * s1[c]; m2 += gamma[c] * s2[c]; }
    m1 /= n;
    m2 /= n;
    for (int c = gi * cg; c < (gi + 1) * cg; c++) {
      k[c] = r[c] * gamma[c];
      k[C + c] = (float)(-r[c] * m2);
      k[2 * C + c] = (float)(-r[c] * m1);
    }
  }
  for (int i = 0; i < HW; i++) {
    const float* restrict xr = x + (size_t)i * C;
    const float* restrict dr = dy + (size_t)i * C;
    float* restrict out = dx + (size_t)i * C;
    for (int c = 0; c < C; c++) {
      const float pre = xr[c] * a[c] + sh[c];
      const float g = pre > 0.f ? dr[c] : 0.f;
      out[c] = g * k[c] + ((xr[c] - m[c]) * r[c]) * k[C + c] + k[2 * C + c];
    }
  }
}

static void* gn_bwd_worker(void* arg) {
  gn_job* j = arg;
  const int b0 = (int)((long)j->B * j->t / j->nt), b1 = (int)((long)j->B * (j->t + 1) / j->nt), C = j->C;
  const int G = j->G, cg = C / G;
  float* f = malloc(sizeof(float) * 9 * C); /* a, shift, rstd, mean per channel; k[3C]; p1, p2 */
  double* s = malloc(sizeof(double) * 2 * C);
  for (int b = b0; b < b1; b++) {
    const size_t off = (size_t)b * j->HW * C;
    for (int c = 0; c < C; c++) {
      const float r = j->rstd[(size_t)b * G + c / cg], m = j->mean[(size_t)b * G + c / cg];
      f[c] = r * j->gamma[c];
      f[C + c] = j->beta[c] - m * f[c];
      f[2 * C + c] = r;
      f[3 * C + c] = m;
    }
    gn_bwd_image(j->x + off, j->dy + off, j->dx + off, j->HW, C, G, j->gamma, f, f + C, f + 2 * C, f + 3 * C, s,
                 s + C, f + 4 * C, f + 7 * C, f + 8 * C);
    for (int c = 0; c < C; c++) { j->dbeta[(size_t)b * C + c] = s[c]; j->dgamma[(size_t)b * C + c] = s[C + c]; }
  }
  free(f);
  free(s);
  return 0;
}

void fm_gn_relu_grad(const float* dy, const float* x, const float* gamma, const float* beta, const float* mean,
                     const float* rstd, float* dx, float* dgamma, float* dbeta, const int32_t* gi, int threads) {
  const int B = gi[0], C = gi[2];
  double* pg = malloc(sizeof(double) * (size_t)B * C);
  double* pb = malloc(sizeof(double) * (size_t)B * C);
  gn_job j = {x, dy, gamma, beta, 0, (float*)mean, (float*)rstd, dx, pg, pb, B, gi[1], C, gi[3], 0.f, 0, 1};
  gn_run(&j, threads, gn_bwd_worker);
  for (int c = 0; c < C; c++) {
    double a = 0.0, b = 0.0;
    for (int i = 0; i < B; i++) { a += pg[(size_t)i * C + c]; b += pb[(size_t)i * C + c]; }
    dgamma[c] = (float)a;
    dbeta[c] = (float)b;
  }
  free(pg);
  free(pb);
}

int fm_abi_version(void) { return 2; }
`;
