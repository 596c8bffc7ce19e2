// Selective scan (Mamba S6) on the CPU: one fused sequential loop over time per channel,
// so each state update costs a few vector instructions and no memory traffic.
//   forward:  CB channels of one group side by side in the vector lanes (no horizontal sums,
//             each B_t / C_t value loaded once for CB channels), blocks spread over threads.
//   backward: recomputes the forward states into a per-thread buffer, then sweeps back in
//             time. Short sequences (len x dstate <= LANE_MAX_STEPS) put CB channels in the
//             lanes as the forward does; a row's fixed costs (softplus, gates, sums across the
//             state) would otherwise outweigh the few steps of an M2S2L temporal scan
//             (len 2 to 8). Long ones take one channel at a time, vectorised over the state,
//             whose buffer (len x dstate) stays in cache. A work item is (batch element,
//             group): its thread runs the group's channels in order, so dB and dC, which sum
//             over those channels, are each written by one thread in a fixed order and the
//             gradients are bit-identical however many threads ran.
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

// Channels per block in the vector lanes: 16 floats fill an AVX-512 register (two AVX2).
constexpr int CB = 16;

// Copies rows r0 .. r0+nch-1 of a (rows, L) tensor into lanes: dst (L, CB); lanes past nch
// get 0. For a short L a block of channels is one contiguous (nch, L) slab.
void to_lanes(const float* src, int64_t r0, int nch, int64_t L, float* dst) {
    for (int c = 0; c < CB; ++c)
        for (int64_t t = 0; t < L; ++t) dst[t * CB + c] = c < nch ? src[(r0 + c) * L + t] : 0.0f;
}

void from_lanes(const float* srcT, int64_t r0, int nch, int64_t L, float* dst) {
    for (int c = 0; c < nch; ++c)
        for (int64_t t = 0; t < L; ++t) dst[(r0 + c) * L + t] = srcT[t * CB + c];
}

// Loads a block of up to CB channels (d0 .. d0+nch-1, all in one group) of batch b into
// lanes, (L, CB) each: dtT = delta after bias and softplus, dtuT = dtT * u, and where given
// uT = u and rawT = delta + bias (before softplus); a (N, CB). The softplus runs across the
// lanes: one row of a short scan is too short to vectorise. Lanes past nch get dt = 0,
// u = 0, A = 0, so their state stays 0 and they contribute nothing.
void load_lanes(const Args& p, int64_t b, int64_t d0, int nch, float* dtT, float* dtuT,
                float* uT, float* rawT, float* a) {
    const int64_t N = p.dstate, L = p.len;
    const int64_t r0 = b * p.dim + d0;
    to_lanes(p.delta, r0, nch, L, dtT);
    to_lanes(p.u, r0, nch, L, dtuT);
    float bias[CB], live[CB];
    for (int c = 0; c < CB; ++c) {
        live[c] = c < nch ? 1.0f : 0.0f;
        bias[c] = (c < nch && p.bias) ? p.bias[d0 + c] : 0.0f;
        for (int64_t n = 0; n < N; ++n) a[n * CB + c] = c < nch ? p.A[(d0 + c) * N + n] : 0.0f;
    }
    for (int64_t t = 0; t < L; ++t) {
        float* dt = dtT + t * CB;
        float* dtu = dtuT + t * CB;
#pragma omp simd
        for (int c = 0; c < CB; ++c) {
            const float x = dt[c] + bias[c];
            const float u = dtu[c];
            const float d = (p.softplus ? fast_softplus(x) : x) * live[c];
            if (uT) uT[t * CB + c] = u;
            if (rawT) rawT[t * CB + c] = x;
            dt[c] = d;
            dtu[c] = d * u;
        }
    }
}

// The recurrence of a block of lanes from a zero state: yT (L, CB) gets the scan output
// before D and z, x (N, CB) the last state. KEEP also stores every state and decay (L, N, CB)
// in xs and es, for the backward sweep.
template <int NS, bool KEEP>
void lane_recurrence(const Args& p, const float* Bg, const float* Cg, const float* dtT,
                     const float* dtuT, const float* a, float* x, float* yT, float* xs,
                     float* es) {
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.len;
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
                if constexpr (KEEP) {
                    xs[(t * N + n) * CB + c] = xn[c];
                    es[(t * N + n) * CB + c] = e;
                }
            }
        }
#pragma omp simd
        for (int c = 0; c < CB; ++c) yT[t * CB + c] = acc[c];
    }
}

// Forward for one block of up to CB channels (d0 .. d0+nch-1, all in one group) of batch b.
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

    load_lanes(p, b, d0, nch, dtT, dtuT, nullptr, nullptr, a);
    lane_recurrence<NS, false>(p, Bg, Cg, dtT, dtuT, a, x, yT, nullptr, nullptr);

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

// Output gate and skip of one row: dy = dL/dy of the scan output y (before D and z), from
// dout; writes dz when there is a gate and returns dD.
float gate_backward(const Args& p, int64_t row, float Dd, const float* y, float* dy) {
    const int64_t L = p.len;
    const float* ur = p.u + row * L;
    const float* go = p.dout + row * L;
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
    return dD;
}

// ddelta of one row holds dL/d(delta after softplus); carries it through softplus (in place)
// and returns dL/d(delta_bias) of the row.
float delta_backward(const Args& p, int64_t row, float bias, float* ddr) {
    const int64_t L = p.len;
    const float* dr = p.delta + row * L;
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
    return dbias;
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
        float* dur = p.du + row * L;
        float* ddr = p.ddelta + row * L;
        const float Dd = p.D ? p.D[d] : 0.0f;

        prepare_row(p, row, dt, dtu);
        recurrence<NS>(p, row, dt, dtu, y, xs, es);

        p.dD_rows[row] = gate_backward(p, row, Dd, y, dy);

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

        p.dbias_rows[row] = delta_backward(p, row, p.bias ? p.bias[d] : 0.0f, ddr);
    }
}


// Backward over channels in the lanes: a block of up to CB channels (d0 .. d0+nch-1, one
// group) of batch b, every per-element step (gate, softplus, du, ddelta) across the lanes.
// Lanes past nch run on zeros and write nothing; dB and dC get each step's sum over the
// block's lanes, in lane order.
constexpr int64_t LANE_MAX_STEPS = 4096;  // len * dstate: states and decays in L2

int64_t lane_backward_workspace(int64_t dstate, int64_t len) {
    return 9 * len * CB + 2 * len * dstate * CB + 3 * dstate * CB;
}

template <int NS>
void backward_block(const Args& p, int64_t b, int64_t d0, int nch, float* work) {
    const int64_t N = NS > 0 ? NS : p.dstate;
    const int64_t L = p.len;
    const int64_t r0 = b * p.dim + d0;
    const int64_t goff = (b * p.groups + d0 / (p.dim / p.groups)) * L * N;
    const float* Bg = p.B + goff;
    const float* Cg = p.C + goff;
    float* dBg = p.dB_acc + goff;
    float* dCg = p.dC_acc + goff;
    float* dtT = work;            // (L, CB) delta after bias and softplus
    float* dtuT = dtT + L * CB;   // (L, CB) delta * u
    float* uT = dtuT + L * CB;    // (L, CB) u
    float* rawT = uT + L * CB;    // (L, CB) delta + bias, before softplus
    float* dyT = rawT + L * CB;   // (L, CB) dout, then dL/dy (y: scan output before D and z)
    float* zT = dyT + L * CB;     // (L, CB) z, then dz
    float* yT = zT + L * CB;      // (L, CB)
    float* sbT = yT + L * CB;     // (L, CB) sum over the state of h * B_t, then du
    float* saT = sbT + L * CB;    // (L, CB) sum over the state of q * A, then ddelta
    float* xs = saT + L * CB;     // (L, N, CB) states
    float* es = xs + L * N * CB;  // (L, N, CB) decays exp(dt * A)
    float* a = es + L * N * CB;   // (N, CB)
    float* h = a + N * CB;        // (N, CB) dL/dx_t
    float* da = h + N * CB;       // (N, CB)

    load_lanes(p, b, d0, nch, dtT, dtuT, uT, rawT, a);
    // Forward again, keeping every state and decay (h holds the running state meanwhile).
    lane_recurrence<NS, true>(p, Bg, Cg, dtT, dtuT, a, h, yT, xs, es);

    // Output gate and skip: dy = dL/dy, dz, and dD summed over time.
    float Dv[CB], dD[CB] = {};
    for (int c = 0; c < CB; ++c) Dv[c] = (c < nch && p.D) ? p.D[d0 + c] : 0.0f;
    to_lanes(p.dout, r0, nch, L, dyT);
    if (p.z) to_lanes(p.z, r0, nch, L, zT);
    for (int64_t t = 0; t < L; ++t) {
        float* dy = dyT + t * CB;
        float* z = zT + t * CB;
        const float* y = yT + t * CB;
        const float* u = uT + t * CB;
        if (p.z) {
#pragma omp simd
            for (int c = 0; c < CB; ++c) {
                const float zc = z[c], go = dy[c];
                const float sg = fast_sigmoid(zc);
                z[c] = go * (y[c] + Dv[c] * u[c]) * sg * (1.0f + zc * (1.0f - sg));  // dz
                dy[c] = go * zc * sg;
                dD[c] += dy[c] * u[c];
            }
        } else {
#pragma omp simd
            for (int c = 0; c < CB; ++c) dD[c] += dy[c] * u[c];
        }
    }
    if (p.z) from_lanes(zT, r0, nch, L, p.dz);

    // Reverse sweep, as reverse_step but across lanes; the sums over the lanes go to dB, dC.
    for (int c = 0; c < CB; ++c)
        for (int64_t n = 0; n < N; ++n) {
            h[n * CB + c] = (c < nch && p.dlast) ? p.dlast[(r0 + c) * N + n] : 0.0f;
            da[n * CB + c] = 0.0f;
        }
    for (int64_t t = L - 1; t >= 0; --t) {
        const float* bt = Bg + t * N;
        const float* ct = Cg + t * N;
        float* dbt = dBg + t * N;
        float* dct = dCg + t * N;
        const float* dyt = dyT + t * CB;
        const float* dtt = dtT + t * CB;
        const float* dtut = dtuT + t * CB;
        float sb[CB] = {}, sa[CB] = {};
        for (int64_t n = 0; n < N; ++n) {
            const float bn = bt[n], cn = ct[n];
            float* hn = h + n * CB;
            const float* xn = xs + (t * N + n) * CB;
            float sum_c = 0.0f, sum_b = 0.0f;
#pragma omp simd reduction(+ : sum_c, sum_b)
            for (int c = 0; c < CB; ++c) {
                hn[c] += dyt[c] * cn;
                sum_c += dyt[c] * xn[c];
                sum_b += hn[c] * dtut[c];
                sb[c] += hn[c] * bn;
            }
            dct[n] += sum_c;
            dbt[n] += sum_b;
            if (t > 0) {
                const float* xp = xs + ((t - 1) * N + n) * CB;
                const float* en = es + (t * N + n) * CB;
                const float* an = a + n * CB;
                float* dan = da + n * CB;
#pragma omp simd
                for (int c = 0; c < CB; ++c) {
                    const float q = hn[c] * xp[c] * en[c];
                    sa[c] += q * an[c];
                    dan[c] += q * dtt[c];
                    hn[c] *= en[c];
                }
            }
        }
#pragma omp simd
        for (int c = 0; c < CB; ++c) {
            sbT[t * CB + c] = sb[c];
            saT[t * CB + c] = sa[c];
        }
    }

    // du and ddelta (through softplus), and ddelta_bias summed over time.
    float dbias[CB] = {};
    for (int64_t t = 0; t < L; ++t) {
        float* du = sbT + t * CB;
        float* dd = saT + t * CB;
        const float* dy = dyT + t * CB;
        const float* dt = dtT + t * CB;
        const float* u = uT + t * CB;
        const float* raw = rawT + t * CB;
#pragma omp simd
        for (int c = 0; c < CB; ++c) {
            const float sbc = du[c];
            float ddc = u[c] * sbc + dd[c];  // dL/d(delta after softplus)
            if (p.softplus) ddc *= fast_sigmoid(raw[c]);
            du[c] = dy[c] * Dv[c] + dt[c] * sbc;
            dd[c] = ddc;
            dbias[c] += ddc;
        }
    }
    from_lanes(sbT, r0, nch, L, p.du);
    from_lanes(saT, r0, nch, L, p.ddelta);
    for (int c = 0; c < nch; ++c) {
        for (int64_t n = 0; n < N; ++n) p.dA_rows[(r0 + c) * N + n] = da[n * CB + c];
        p.dD_rows[r0 + c] = dD[c];
        p.dbias_rows[r0 + c] = dbias[c];
    }
}

template <int NS>
void backward_blocks(const Args& p, int64_t b, int64_t g, float* work) {
    FlushDenormals guard;
    const int64_t per_group = p.dim / p.groups;
    for (int64_t c0 = 0; c0 < per_group; c0 += CB) {
        const int nch = static_cast<int>(std::min<int64_t>(CB, per_group - c0));
        backward_block<NS>(p, b, g * per_group + c0, nch, work);
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
    return len * dstate <= LANE_MAX_STEPS ? lane_backward_workspace(dstate, len)
                                          : backward_workspace(dstate, len);
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
    const bool lanes = len * dstate <= LANE_MAX_STEPS;
    const int64_t ws = rs_scan_backward_workspace(dstate, len);
    const int64_t per_group = dim / groups;
    // item (b, g): the group's channels are rows b * dim + g * per_group onwards
    auto run = [&](int64_t i0, int64_t i1, int k) {
        float* w = work + k * ws;
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / groups, g = i % groups;
            const int64_t r0 = b * dim + g * per_group;
            with_dstate(dstate, [&](auto ns) {
                constexpr int NS = decltype(ns)::value;
                if (lanes) backward_blocks<NS>(p, b, g, w);
                else backward_rows<NS>(p, r0, r0 + per_group, w);
            });
        }
    };
    parallel_for(batch * groups, nthreads, run);
    return 0;
}

}  // extern "C"
