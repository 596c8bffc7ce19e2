// Backward of SS2D's folded four-direction scan (cross_scan_cpu.cpp) on the CPU, folded too:
// each path's inputs are gathered in the order the path walks them straight from the grid-
// order tensors the forward saw, and the gradients are scattered back to the grid, so the
// flipped, transposed and stacked copies the unfolded backward made (about a quarter of a
// small model's training step) never exist. The per-path maths is selective_scan_cpu.cpp's
// backward (one channel at a time, vectorised over the state, forward states recomputed).
//
// A thread takes one batch element at a time and runs all its channels, a few at a time, in
// all four directions: du, which sums the four paths, and dB and dC, which sum the channels,
// are each written by one thread in a fixed order. Gradients are then bit-identical however
// the work was scheduled and however many threads ran (a resumed training repeats the one
// it resumes), and need no per-thread copies to add up afterwards.
//
// All float32 and contiguous; K = 4, L = h * w:
//   u, dout, du          (batch, dim, L)        grid order (dout: the output's gradient
//                                               transposed to channels-first by the caller)
//   delta, ddelta        (batch, K, dim, L)     grid order, delta before bias and softplus
//   A                    (K * dim, dstate)
//   B, C                 (batch, K, L, dstate)  base order, as the forward took them
//   D, bias              (K * dim,)             may be null
//   dA_rows              (batch, K * dim, dstate)
//   dD_rows, dbias_rows  (batch, K * dim)
//   dB, dC               (batch, K, L, dstate), zeroed, base order
#include "scan_common.h"

namespace {

constexpr int K = 4;

struct BwdArgs {
    const float *u, *delta, *A, *B, *C, *D, *bias, *dout;
    int softplus;
    int64_t batch, dim, dstate, h, w;
    const int32_t* colpos;  // (L,) grid position of column-major step s
    float *du, *ddelta, *dA_rows, *dD_rows, *dbias_rows, *dB_acc, *dC_acc;
};

int64_t bwd_workspace(int64_t dstate, int64_t len) { return 7 * len + 2 * len * dstate; }

// Direction k at step t reads base index s (B, C) and grid position pos.
inline void step_index(const BwdArgs& p, int k, int64_t t, int64_t L, int64_t& s, int64_t& pos) {
    s = k < 2 ? t : L - 1 - t;
    pos = (k & 1) ? p.colpos[s] : s;
}

template <int NS>
void path_backward(const BwdArgs& p, int64_t b, int64_t d, int k, float* work) {
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.h * p.w;
    float *uP = work, *dt = uP + L, *dtu = dt + L, *y = dtu + L, *dy = y + L;
    float *draw = dy + L, *ddr = draw + L;
    float *xs = ddr + L, *es = xs + L * N;
    float h[NS > 0 ? NS : 256], q[NS > 0 ? NS : 256], da[NS > 0 ? NS : 256];
    const int64_t row = k * p.dim + d;  // row of A, D and bias
    const float* ug = p.u + (b * p.dim + d) * L;
    const float* dg = p.delta + ((b * K + k) * p.dim + d) * L;
    const float* gg = p.dout + (b * p.dim + d) * L;
    const float bias = p.bias ? p.bias[row] : 0.0f;
    const float Dd = p.D ? p.D[row] : 0.0f;
    const float* a = p.A + row * N;
    const int64_t goff = (b * K + k) * L * N;
    const float* Bk = p.B + goff;
    const float* Ck = p.C + goff;
    float* dBk = p.dB_acc + goff;
    float* dCk = p.dC_acc + goff;

    // Gather the row in path order: u, raw delta, dout.
    float dD = 0.0f;
    for (int64_t t = 0; t < L; ++t) {
        int64_t s, pos;
        step_index(p, k, t, L, s, pos);
        uP[t] = ug[pos];
        draw[t] = dg[pos] + bias;
        dy[t] = gg[pos];
        dD += dy[t] * uP[t];
    }
    if (p.softplus) {
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) dt[t] = fast_softplus(draw[t]);
    } else {
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) dt[t] = draw[t];
    }
#pragma omp simd
    for (int64_t t = 0; t < L; ++t) dtu[t] = dt[t] * uP[t];

    // Recompute the forward states and decays of this path.
    float x[NS > 0 ? NS : 256];
    for (int64_t n = 0; n < N; ++n) x[n] = 0.0f;
    for (int64_t t = 0; t < L; ++t) {
        const int64_t s = k < 2 ? t : L - 1 - t;
        const float* bt = Bk + s * N;
        const float dtt = dt[t], dtut = dtu[t];
        float* xt = xs + t * N;
        float* et = es + t * N;
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
            const float e = fast_exp(dtt * a[n]);
            x[n] = e * x[n] + dtut * bt[n];
            xt[n] = x[n];
            et[n] = e;
        }
    }

    // Reverse sweep: h = dL/dx_t, carried back through the decay exp(dt * A).
    for (int64_t n = 0; n < N; ++n) h[n] = da[n] = 0.0f;
    for (int64_t t = L - 1; t >= 0; --t) {
        const int64_t s = k < 2 ? t : L - 1 - t;
        const float* bt = Bk + s * N;
        const float* ct = Ck + s * N;
        const float* xt = xs + t * N;
        const float* et = es + t * N;
        float* dbt = dBk + s * N;
        float* dct = dCk + s * N;
        const float dyt = dy[t], dtt = dt[t], dtut = dtu[t];
        float sa = 0.0f;
        const float sb = reverse_step(N, t > 0, dyt, dtt, dtut, bt, ct, xt,
                                      t > 0 ? xs + (t - 1) * N : nullptr, et, a, h, q, da,
                                      dbt, dct, sa);
        y[t] = dyt * Dd + dtt * sb;  // du of this path, reusing y's buffer
        ddr[t] = uP[t] * sb + sa;    // dL/d(delta after softplus)
    }
    const int64_t arow = b * K * p.dim + row;
    for (int64_t n = 0; n < N; ++n) p.dA_rows[arow * N + n] = da[n];
    p.dD_rows[arow] = dD;

    float dbias = 0.0f;
    if (p.softplus) {
#pragma omp simd reduction(+ : dbias)
        for (int64_t t = 0; t < L; ++t) {
            ddr[t] *= fast_sigmoid(draw[t]);
            dbias += ddr[t];
        }
    } else {
#pragma omp simd reduction(+ : dbias)
        for (int64_t t = 0; t < L; ++t) dbias += ddr[t];
    }
    p.dbias_rows[arow] = dbias;

    // Scatter back to the grid; du sums the four paths (k = 0 initialises it).
    float* dug = p.du + (b * p.dim + d) * L;
    float* ddg = p.ddelta + ((b * K + k) * p.dim + d) * L;
    for (int64_t t = 0; t < L; ++t) {
        int64_t s, pos;
        step_index(p, k, t, L, s, pos);
        ddg[pos] = ddr[t];
        dug[pos] = k == 0 ? y[t] : dug[pos] + y[t];
    }
}

// Channels per block. A path's dB and dC accumulators (2 L dstate floats) are re-read by
// every channel of the block, so a block walks one path over all its channels before the
// next path: the accumulators stay in L2 even at 64x64 maps (all four at once did not).
constexpr int64_t CH = 8;

template <int NS>
void bwd_batch(const BwdArgs& p, int64_t b0, int64_t b1, float* work) {
    FlushDenormals guard;
    for (int64_t b = b0; b < b1; ++b)
        for (int64_t d0 = 0; d0 < p.dim; d0 += CH) {
            const int64_t d1 = std::min(p.dim, d0 + CH);
            for (int k = 0; k < K; ++k)
                for (int64_t d = d0; d < d1; ++d) path_backward<NS>(p, b, d, k, work);
        }
}

}  // namespace

extern "C" {

int rs_cross_bwd_abi_version() { return 2; }

// Floats of scratch per thread that the caller passes as `work` (nthreads of them).
int64_t rs_cross_backward_workspace(int64_t dstate, int64_t len) {
    return bwd_workspace(dstate, len);
}

// Returns 0 on success, 1 when dstate exceeds what the kernel supports.
int rs_cross_backward(const float* u, const float* delta, const float* A, const float* B,
                      const float* C, const float* D, const float* bias, int softplus,
                      int64_t batch, int64_t dim, int64_t dstate, int64_t h, int64_t w,
                      const float* dout, float* du, float* ddelta, float* dA_rows,
                      float* dD_rows, float* dbias_rows, float* dB_acc, float* dC_acc,
                      float* work, int nthreads) {
    if (dstate > 256) return 1;
    const int64_t L = h * w;
    std::vector<int32_t> colpos(L);
    for (int64_t j = 0; j < w; ++j)
        for (int64_t i = 0; i < h; ++i) colpos[j * h + i] = static_cast<int32_t>(i * w + j);
    BwdArgs p{};
    p.u = u; p.delta = delta; p.A = A; p.B = B; p.C = C; p.D = D; p.bias = bias;
    p.dout = dout; p.softplus = softplus;
    p.batch = batch; p.dim = dim; p.dstate = dstate; p.h = h; p.w = w;
    p.colpos = colpos.data();
    p.du = du; p.ddelta = ddelta; p.dA_rows = dA_rows; p.dD_rows = dD_rows;
    p.dbias_rows = dbias_rows; p.dB_acc = dB_acc; p.dC_acc = dC_acc;
    const int64_t ws = bwd_workspace(dstate, L);
    auto run = [&](int64_t b0, int64_t b1, int k) {
        float* w = work + k * ws;
        with_dstate(dstate, [&](auto ns) { bwd_batch<decltype(ns)::value>(p, b0, b1, w); });
    };
    parallel_for(batch, nthreads, run);
    return 0;
}

}  // extern "C"
