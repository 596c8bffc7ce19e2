// SS2D's four-direction selective scan on the CPU, folded: VMamba's four paths over a
// feature map (row-major, column-major, and both reversed) are walked by index arithmetic
// on the grid, and their outputs summed there, so no flipped or transposed copy of an input
// or an output is ever made (the unfolded form spends about a tenth of the paper model's
// forward on those copies). Forward only: the backward unfolds and reuses
// selective_scan_cpu.cpp (raystack/ops/cross_scan.py).
//
// Same loop as selective_scan_cpu.cpp's forward: CB channels side by side in the vector
// lanes. A work item is (batch, channel block) and runs all four directions, so one thread
// owns its output block and the sum needs no atomics.
//
// All float32 and contiguous; K = 4 directions, L = h * w, positions in row-major grid order:
//   u          (batch, dim, L)        the map, shared by the four directions
//   delta      (batch, K, dim, L)     before bias and softplus
//   A          (K * dim, dstate)
//   B, C       (batch, K, L, dstate)  position-major, each path's in its base order:
//                                     row-major for k = 0, 2, column-major for k = 1, 3
//   D, bias    (K * dim,)             may be null
//   out        (batch, L, dim)        channels-last: sum over k of (scan_k + D_k * u)
// Direction k visits position pos_k(t) at step t: k = 0 row-major (t), k = 1 column-major
// (t = j * h + i -> i * w + j), k = 2 and 3 the same two orders backwards.
// (B and C come in base order because a copy is made anyway to make them position-major.)
#include "scan_common.h"

namespace {

constexpr int K = 4;
constexpr int CB = 16;

struct CrossArgs {
    const float *u, *delta, *A, *B, *C, *D, *bias;
    int softplus;
    int64_t batch, dim, dstate, h, w;
    const int32_t* colpos;  // (L,) grid position of column-major step s
    float* out;
};

int64_t cross_workspace(int64_t dstate, int64_t len) {
    return 5 * len * CB + len + 2 * dstate * CB;
}

// Buffers are kept in the order a path walks them (row-major for paths 0 and 2,
// column-major for 1 and 3), so every step reads and writes the next 64 bytes: the
// column paths on the grid would stride by a whole image row, a new page each step,
// which defeats the prefetchers.
template <int NS>
void cross_block(const CrossArgs& p, int64_t b, int64_t d0, int nch, float* work) {
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.h * p.w;
    float* uR = work;            // (L, CB) u, channel-minor, row-major order
    float* uC = uR + L * CB;     // (L, CB) u in column-major order
    float* dtT = uC + L * CB;    // (L, CB) delta after bias/softplus, the current path's base order
    float* yR = dtT + L * CB;    // (L, CB) sum of paths 0 and 2 (and the skips), row-major
    float* yC = yR + L * CB;     // (L, CB) sum of paths 1 and 3, column-major
    float* row = yC + L * CB;    // (L,) one channel's row, contiguous in grid order
    float* a = row + L;          // (N, CB)
    float* x = a + N * CB;       // (N, CB)
    const int32_t* colpos = p.colpos;

    float dsum[CB];
    for (int c = 0; c < CB; ++c) {
        dsum[c] = 0.0f;
        if (c < nch) {
            const float* ur = p.u + (b * p.dim + d0 + c) * L;
            for (int64_t t = 0; t < L; ++t) uR[t * CB + c] = ur[t];
            for (int64_t s = 0; s < L; ++s) uC[s * CB + c] = ur[colpos[s]];
            // u is the same map in every direction, so the four skips add up to one term
            if (p.D)
                for (int k = 0; k < K; ++k) dsum[c] += p.D[k * p.dim + d0 + c];
        } else {
            for (int64_t t = 0; t < L; ++t) uR[t * CB + c] = uC[t * CB + c] = 0.0f;
        }
    }
    for (int64_t t = 0; t < L; ++t) {
#pragma omp simd
        for (int c = 0; c < CB; ++c) {
            yR[t * CB + c] = dsum[c] * uR[t * CB + c];
            yC[t * CB + c] = 0.0f;
        }
    }

    for (int k = 0; k < K; ++k) {
        const bool cols = k & 1;
        const int64_t dk = k * p.dim + d0;  // first row of this block in A, D and bias
        for (int c = 0; c < CB; ++c) {
            if (c < nch) {
                const float* dr = p.delta + ((b * K + k) * p.dim + d0 + c) * L;
                const float bias = p.bias ? p.bias[dk + c] : 0.0f;
                if (p.softplus) {
#pragma omp simd
                    for (int64_t t = 0; t < L; ++t) row[t] = fast_softplus(dr[t] + bias);
                } else {
#pragma omp simd
                    for (int64_t t = 0; t < L; ++t) row[t] = dr[t] + bias;
                }
                if (cols)
                    for (int64_t s = 0; s < L; ++s) dtT[s * CB + c] = row[colpos[s]];
                else
                    for (int64_t t = 0; t < L; ++t) dtT[t * CB + c] = row[t];
                // A in log2 units: exp(delta A) = 2^(delta A log2 e), one multiply fewer per step
                for (int64_t n = 0; n < N; ++n)
                    a[n * CB + c] = p.A[(dk + c) * N + n] * 1.44269504088896341f;
            } else {
                // idle lanes: delta = A = 0 keeps their state at 0
                for (int64_t t = 0; t < L; ++t) dtT[t * CB + c] = 0.0f;
                for (int64_t n = 0; n < N; ++n) a[n * CB + c] = 0.0f;
            }
        }
        for (int64_t i = 0; i < N * CB; ++i) x[i] = 0.0f;
        const float* Bk = p.B + (b * K + k) * L * N;
        const float* Ck = p.C + (b * K + k) * L * N;
        const float* uB = cols ? uC : uR;
        float* yB = cols ? yC : yR;
        for (int64_t t = 0; t < L; ++t) {
            const int64_t s = k < 2 ? t : L - 1 - t;  // index in the base order
            const float* bt = Bk + s * N;
            const float* ct = Ck + s * N;
            const float* dtt = dtT + s * CB;
            const float* ut = uB + s * CB;
            float dtu[CB], acc[CB];
#pragma omp simd
            for (int c = 0; c < CB; ++c) {
                dtu[c] = dtt[c] * ut[c];
                acc[c] = 0.0f;
            }
            for (int64_t n = 0; n < N; ++n) {
                const float bn = bt[n], cn = ct[n];
                float* xn = x + n * CB;
                const float* an = a + n * CB;
#pragma omp simd
                for (int c = 0; c < CB; ++c) {
                    const float e = fast_exp2(dtt[c] * an[c]);
                    xn[c] = e * xn[c] + dtu[c] * bn;
                    acc[c] += cn * xn[c];
                }
            }
            float* yt = yB + s * CB;
#pragma omp simd
            for (int c = 0; c < CB; ++c) yt[c] += acc[c];
        }
    }

    for (int64_t i = 0; i < p.h; ++i) {
        for (int64_t j = 0; j < p.w; ++j) {
            const int64_t pos = i * p.w + j;
            const float* yr = yR + pos * CB;
            const float* yc = yC + (j * p.h + i) * CB;
            float* o = p.out + (b * L + pos) * p.dim + d0;
            for (int c = 0; c < nch; ++c) o[c] = yr[c] + yc[c];
        }
    }
}

template <int NS>
void cross_items(const CrossArgs& p, int64_t i0, int64_t i1, float* work) {
    FlushDenormals guard;
    const int64_t blocks = (p.dim + CB - 1) / CB;
    for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / blocks, blk = i % blocks;
        const int nch = static_cast<int>(std::min<int64_t>(CB, p.dim - blk * CB));
        cross_block<NS>(p, b, blk * CB, nch, work);
    }
}

}  // namespace

extern "C" {

int rs_cross_abi_version() { return 2; }

// Floats of scratch per thread that the caller passes as `work` (nthreads of them).
int64_t rs_cross_forward_workspace(int64_t dstate, int64_t len) {
    return cross_workspace(dstate, len);
}

// Returns 0 on success, 1 when dstate exceeds what the kernel supports.
int rs_cross_forward(const float* u, const float* delta, const float* A, const float* B,
                     const float* C, const float* D, const float* bias, int softplus,
                     int64_t batch, int64_t dim, int64_t dstate, int64_t h, int64_t w,
                     float* out, float* work, int nthreads) {
    if (dstate > 256) return 1;
    const int64_t L = h * w;
    std::vector<int32_t> colpos(L);
    for (int64_t j = 0; j < w; ++j)
        for (int64_t i = 0; i < h; ++i) colpos[j * h + i] = static_cast<int32_t>(i * w + j);
    CrossArgs p{};
    p.u = u; p.delta = delta; p.A = A; p.B = B; p.C = C; p.D = D; p.bias = bias;
    p.softplus = softplus;
    p.batch = batch; p.dim = dim; p.dstate = dstate; p.h = h; p.w = w;
    p.colpos = colpos.data(); p.out = out;
    const int64_t ws = cross_workspace(dstate, L);
    auto run = [&](int64_t i0, int64_t i1, int k) {
        float* w = work + k * ws;
        with_dstate(dstate, [&](auto ns) { cross_items<decltype(ns)::value>(p, i0, i1, w); });
    };
    parallel_for(batch * ((dim + CB - 1) / CB), nthreads, run);
    return 0;
}

}  // extern "C"
