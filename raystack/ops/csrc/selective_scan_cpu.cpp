// Selective scan (Mamba S6) on the CPU: one fused sequential loop over time per channel,
// so each state update costs a few vector instructions and no memory traffic.
//   forward:  CB channels of one group side by side in the vector lanes (no horizontal sums,
//             each B_t / C_t value loaded once for CB channels), blocks spread over threads.
//   backward: one channel at a time, vectorised over the state; recomputes the forward states
//             into a per-thread buffer (len x dstate), then sweeps back in time. A work item
//             is (batch element, group): its thread runs the group's channels in order, so
//             dB and dC, which sum over those channels, are each written by one thread in a
//             fixed order and the gradients are bit-identical however many threads ran.
//
// Plain C ABI (no torch headers) so that it compiles in about two seconds and loads with
// ctypes; raystack/ops/scan_native.py owns the calling convention. All tensors are float32
// and contiguous:
//   u, delta, z, out, du, ddelta, dz, dout   (batch, dim, len)
//   A                                        (dim, dstate)
//   B, C                                     (batch, groups, len, dstate)   time-major per group
//   D, delta_bias                            (dim,)      may be null
//   last_state, dlast_state                  (batch, dim, dstate)  may be null
//   dA_rows                                  (batch, dim, dstate)   summed over batch by the caller
//   dD_rows, dbias_rows                      (batch, dim)
//   dB_acc, dC_acc                           (batch, groups, len, dstate), zeroed
#include "scan_common.h"

namespace {

struct Args {
    const float *u, *delta, *A, *B, *C, *D, *z, *bias, *dout, *dlast;
    int softplus;
    int64_t batch, dim, dstate, len, groups;
    float *out, *last_state;
    float *du, *ddelta, *dz, *dA_rows, *dD_rows, *dbias_rows, *dB_acc, *dC_acc;
};

// delta after bias and softplus, and delta * u, for one row.
void prepare_row(const Args& p, int64_t row, float* dt, float* dtu) {
    const int64_t L = p.len;
    const float* ur = p.u + row * L;
    const float* dr = p.delta + row * L;
    const float bias = p.bias ? p.bias[row % p.dim] : 0.0f;
    if (p.softplus) {
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) dt[t] = fast_softplus(dr[t] + bias);
    } else {
#pragma omp simd
        for (int64_t t = 0; t < L; ++t) dt[t] = dr[t] + bias;
    }
#pragma omp simd
    for (int64_t t = 0; t < L; ++t) dtu[t] = dt[t] * ur[t];
}

// The recurrence for one row, keeping every state and decay for the backward sweep.
// NS > 0 fixes the state size at compile time (the common Mamba sizes); NS == 0 reads it
// from p.dstate. Writes y (before D and z).
template <int NS>
void recurrence(const Args& p, int64_t row, const float* dt, const float* dtu, float* y,
                float* xs, float* es) {
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.len;
    const int64_t b = row / p.dim, d = row % p.dim;
    const int64_t grp = d / (p.dim / p.groups);
    const float* Bg = p.B + (b * p.groups + grp) * L * N;
    const float* Cg = p.C + (b * p.groups + grp) * L * N;
    const float* a = p.A + d * N;
    float x[NS > 0 ? NS : 256];
    for (int64_t n = 0; n < N; ++n) x[n] = 0.0f;
    for (int64_t t = 0; t < L; ++t) {
        const float* bt = Bg + t * N;
        const float* ct = Cg + t * N;
        const float dtt = dt[t], dtut = dtu[t];
        float* xt = xs + t * N;
        float* et = es + t * N;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t n = 0; n < N; ++n) {
            float e = fast_exp(dtt * a[n]);
            x[n] = e * x[n] + dtut * bt[n];
            acc += ct[n] * x[n];
            xt[n] = x[n];
            et[n] = e;
        }
        y[t] = acc;
    }
}

// Channels per forward block: 16 floats fill an AVX-512 register (two AVX2 registers).
constexpr int CB = 16;

// Forward for one block of up to CB channels (d0 .. d0+nch-1, all in one group) of batch b.
// Lanes past nch see delta = 0, A = 0, u = 0: their state stays 0 and nothing is written.
template <int NS>
void forward_block(const Args& p, int64_t b, int64_t d0, int nch, float* work) {
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.len;
    const int64_t grp = d0 / (p.dim / p.groups);
    const float* Bg = p.B + (b * p.groups + grp) * L * N;
    const float* Cg = p.C + (b * p.groups + grp) * L * N;
    float* dtT = work;            // (L, CB) delta after bias/softplus, channel-minor
    float* dtuT = dtT + L * CB;   // (L, CB) delta * u
    float* yT = dtuT + L * CB;    // (L, CB) scan output before D and z
    float* row = yT + L * CB;     // (2, L) one channel's dt and dtu, contiguous in time
    float* a = row + 2 * L;       // (N, CB)
    float* x = a + N * CB;        // (N, CB)

    for (int c = 0; c < CB; ++c) {
        if (c < nch) {
            const int64_t r = b * p.dim + d0 + c;
            prepare_row(p, r, row, row + L);
            for (int64_t t = 0; t < L; ++t) {
                dtT[t * CB + c] = row[t];
                dtuT[t * CB + c] = row[L + t];
            }
            for (int64_t n = 0; n < N; ++n) a[n * CB + c] = p.A[(d0 + c) * N + n];
        } else {
            for (int64_t t = 0; t < L; ++t) dtT[t * CB + c] = dtuT[t * CB + c] = 0.0f;
            for (int64_t n = 0; n < N; ++n) a[n * CB + c] = 0.0f;
        }
    }
    for (int64_t i = 0; i < N * CB; ++i) x[i] = 0.0f;

    for (int64_t t = 0; t < L; ++t) {
        const float* bt = Bg + t * N;
        const float* ct = Cg + t * N;
        const float* dtt = dtT + t * CB;
        const float* dtut = dtuT + t * CB;
        float acc[CB] = {};
        for (int64_t n = 0; n < N; ++n) {
            const float bn = bt[n], cn = ct[n];
            float* xn = x + n * CB;
            const float* an = a + n * CB;
#pragma omp simd
            for (int c = 0; c < CB; ++c) {
                const float e = fast_exp(dtt[c] * an[c]);
                xn[c] = e * xn[c] + dtut[c] * bn;
                acc[c] += cn * xn[c];
            }
        }
#pragma omp simd
        for (int c = 0; c < CB; ++c) yT[t * CB + c] = acc[c];
    }

    for (int c = 0; c < nch; ++c) {
        const int64_t r = b * p.dim + d0 + c;
        if (p.last_state)
            for (int64_t n = 0; n < N; ++n) p.last_state[r * N + n] = x[n * CB + c];
        float* y = row;
        for (int64_t t = 0; t < L; ++t) y[t] = yT[t * CB + c];
        const float* ur = p.u + r * L;
        const float Dd = p.D ? p.D[d0 + c] : 0.0f;
        float* o = p.out + r * L;
        if (p.z) {
            const float* zr = p.z + r * L;
#pragma omp simd
            for (int64_t t = 0; t < L; ++t) o[t] = (y[t] + Dd * ur[t]) * zr[t] * fast_sigmoid(zr[t]);
        } else {
#pragma omp simd
            for (int64_t t = 0; t < L; ++t) o[t] = y[t] + Dd * ur[t];
        }
    }
}

// Work item i = (batch, group, channel block); items [i0, i1) on one thread.
int64_t forward_workspace(int64_t dstate, int64_t len) {
    return 3 * len * CB + 2 * len + 2 * dstate * CB;
}

template <int NS>
void forward_items(const Args& p, int64_t i0, int64_t i1, float* work) {
    FlushDenormals guard;
    const int64_t per_group = p.dim / p.groups;
    const int64_t blocks = (per_group + CB - 1) / CB;
    for (int64_t i = i0; i < i1; ++i) {
        const int64_t blk = i % blocks, bg = i / blocks;
        const int64_t b = bg / p.groups, g = bg % p.groups;
        const int64_t d0 = g * per_group + blk * CB;
        const int nch = static_cast<int>(std::min<int64_t>(CB, per_group - blk * CB));
        forward_block<NS>(p, b, d0, nch, work);
    }
}

int64_t backward_workspace(int64_t dstate, int64_t len) { return 4 * len + 2 * len * dstate; }

template <int NS>
void backward_rows(const Args& p, int64_t r0, int64_t r1, float* work) {
    FlushDenormals guard;
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.len;
    float *dt = work, *dtu = dt + L, *y = dtu + L, *dy = y + L;
    float *xs = dy + L, *es = xs + L * N;
    float h[NS > 0 ? NS : 256], q[NS > 0 ? NS : 256], da[NS > 0 ? NS : 256];
    for (int64_t row = r0; row < r1; ++row) {
        const int64_t b = row / p.dim, d = row % p.dim;
        const int64_t grp = d / (p.dim / p.groups);
        const int64_t goff = (b * p.groups + grp) * L * N;
        const float* Bg = p.B + goff;
        const float* Cg = p.C + goff;
        float* dBg = p.dB_acc + goff;
        float* dCg = p.dC_acc + goff;
        const float* a = p.A + d * N;
        const float* ur = p.u + row * L;
        const float* go = p.dout + row * L;
        float* dur = p.du + row * L;
        float* ddr = p.ddelta + row * L;
        const float Dd = p.D ? p.D[d] : 0.0f;

        prepare_row(p, row, dt, dtu);
        recurrence<NS>(p, row, dt, dtu, y, xs, es);

        // Output gate and skip: dy = dL/dy (the scan's output before D and z).
        float dD = 0.0f;
        if (p.z) {
            const float* zr = p.z + row * L;
            float* dzr = p.dz + row * L;
#pragma omp simd reduction(+ : dD)
            for (int64_t t = 0; t < L; ++t) {
                float s = fast_sigmoid(zr[t]);
                float pre = y[t] + Dd * ur[t];
                dzr[t] = go[t] * pre * s * (1.0f + zr[t] * (1.0f - s));
                dy[t] = go[t] * zr[t] * s;
                dD += dy[t] * ur[t];
            }
        } else {
#pragma omp simd reduction(+ : dD)
            for (int64_t t = 0; t < L; ++t) {
                dy[t] = go[t];
                dD += go[t] * ur[t];
            }
        }
        p.dD_rows[row] = dD;

        // Reverse sweep: h = dL/dx_t, carried back through the decay exp(dt * A).
        for (int64_t n = 0; n < N; ++n) {
            h[n] = p.dlast ? p.dlast[row * N + n] : 0.0f;
            da[n] = 0.0f;
        }
        for (int64_t t = L - 1; t >= 0; --t) {
            const float* bt = Bg + t * N;
            const float* ct = Cg + t * N;
            const float* xt = xs + t * N;
            const float* et = es + t * N;
            float* dbt = dBg + t * N;
            float* dct = dCg + t * N;
            const float dyt = dy[t], dtt = dt[t], dtut = dtu[t];
            float sa = 0.0f;
            const float sb = reverse_step(N, t > 0, dyt, dtt, dtut, bt, ct, xt,
                                          t > 0 ? xs + (t - 1) * N : nullptr, et, a, h, q, da,
                                          dbt, dct, sa);
            dur[t] = dyt * Dd + dtt * sb;
            ddr[t] = ur[t] * sb + sa;  // dL/d(delta after softplus); chain rule below
        }
        for (int64_t n = 0; n < N; ++n) p.dA_rows[row * N + n] = da[n];

        const float* dr = p.delta + row * L;
        const float bias = p.bias ? p.bias[d] : 0.0f;
        float dbias = 0.0f;
        if (p.softplus) {
#pragma omp simd reduction(+ : dbias)
            for (int64_t t = 0; t < L; ++t) {
                ddr[t] *= fast_sigmoid(dr[t] + bias);
                dbias += ddr[t];
            }
        } else {
#pragma omp simd reduction(+ : dbias)
            for (int64_t t = 0; t < L; ++t) dbias += ddr[t];
        }
        p.dbias_rows[row] = dbias;
    }
}

}  // namespace

extern "C" {

int rs_scan_abi_version() { return 2; }

// Floats of scratch per thread that the caller passes as `work` (nthreads of them).
int64_t rs_scan_forward_workspace(int64_t dstate, int64_t len) {
    return forward_workspace(dstate, len);
}

int64_t rs_scan_backward_workspace(int64_t dstate, int64_t len) {
    return backward_workspace(dstate, len);
}

// Returns 0 on success, 1 when dstate exceeds what the kernel supports.
int rs_scan_forward(const float* u, const float* delta, const float* A, const float* B,
                    const float* C, const float* D, const float* z, const float* bias,
                    int softplus, int64_t batch, int64_t dim, int64_t dstate, int64_t len,
                    int64_t groups, float* out, float* last_state, float* work, int nthreads) {
    if (dstate > 256) return 1;
    Args p{};
    p.u = u; p.delta = delta; p.A = A; p.B = B; p.C = C; p.D = D; p.z = z; p.bias = bias;
    p.softplus = softplus;
    p.batch = batch; p.dim = dim; p.dstate = dstate; p.len = len; p.groups = groups;
    p.out = out; p.last_state = last_state;
    const int64_t ws = forward_workspace(dstate, len);
    auto run = [&](int64_t i0, int64_t i1, int k) {
        float* w = work + k * ws;
        with_dstate(dstate, [&](auto ns) { forward_items<decltype(ns)::value>(p, i0, i1, w); });
    };
    const int64_t per_group = dim / groups;
    parallel_for(batch * groups * ((per_group + CB - 1) / CB), nthreads, run);
    return 0;
}

int rs_scan_backward(const float* u, const float* delta, const float* A, const float* B,
                     const float* C, const float* D, const float* z, const float* bias,
                     int softplus, int64_t batch, int64_t dim, int64_t dstate, int64_t len,
                     int64_t groups, const float* dout, const float* dlast, float* du,
                     float* ddelta, float* dz, float* dA_rows, float* dD_rows,
                     float* dbias_rows, float* dB_acc, float* dC_acc, float* work,
                     int nthreads) {
    if (dstate > 256) return 1;
    Args p{};
    p.u = u; p.delta = delta; p.A = A; p.B = B; p.C = C; p.D = D; p.z = z; p.bias = bias;
    p.softplus = softplus;
    p.batch = batch; p.dim = dim; p.dstate = dstate; p.len = len; p.groups = groups;
    p.dout = dout; p.dlast = dlast;
    p.du = du; p.ddelta = ddelta; p.dz = dz; p.dA_rows = dA_rows; p.dD_rows = dD_rows;
    p.dbias_rows = dbias_rows; p.dB_acc = dB_acc; p.dC_acc = dC_acc;
    const int64_t ws = backward_workspace(dstate, len);
    const int64_t per_group = dim / groups;
    // item (b, g): the group's channels are rows b * dim + g * per_group onwards
    auto run = [&](int64_t i0, int64_t i1, int k) {
        float* w = work + k * ws;
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t r0 = (i / groups) * dim + (i % groups) * per_group;
            const int64_t r1 = r0 + per_group;
            with_dstate(dstate,
                        [&](auto ns) { backward_rows<decltype(ns)::value>(p, r0, r1, w); });
        }
    };
    parallel_for(batch * groups, nthreads, run);
    return 0;
}

}  // extern "C"
