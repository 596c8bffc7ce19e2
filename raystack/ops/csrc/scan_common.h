// Shared by the native scan kernels: fast float math, denormal flushing and the thread
// pool. Everything sits in an anonymous namespace, so each kernel gets its own copy.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace {

// Denormals appear when a state decays for many steps; on x86 each one costs ~100 cycles.
// Flushing them to zero changes results by < 1e-38. Only our own threads are touched.
struct FlushDenormals {
#if defined(__SSE__)
    unsigned int saved;
    FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

inline float bits_to_float(int32_t i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}

inline int32_t float_to_bits(float f) {
    int32_t i;
    std::memcpy(&i, &f, sizeof i);
    return i;
}

// exp with Cephes' expf polynomial (about 2 ulp); branch-free so loops over it vectorise.
// Arguments below -88 give 0 or a denormal that the flush above turns into 0.
inline float fast_exp(float x) {
    x = std::min(std::max(x, -88.0f), 88.0f);
    float fx = std::floor(x * 1.44269504088896341f + 0.5f);
    float r = x - fx * 0.693359375f;
    r = r + fx * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    return p * bits_to_float((static_cast<int32_t>(fx) + 127) << 23);
}

// 2^y: round to the nearest integer n, then 2^f for f = y - n in [-0.5, 0.5] by its Taylor
// polynomial (degree 6, relative error about 1e-7) times 2^n built in the exponent bits.
// A few operations fewer than fast_exp: the caller folds log2(e) into a constant once.
inline float fast_exp2(float y) {
    y = std::min(std::max(y, -126.0f), 126.0f);
    const float fx = std::floor(y + 0.5f);
    const float f = y - fx;
    float p = 1.5403530393e-4f;
    p = p * f + 1.3333558146e-3f;
    p = p * f + 9.6181291076e-3f;
    p = p * f + 5.5504108665e-2f;
    p = p * f + 2.4022650696e-1f;
    p = p * f + 6.9314718056e-1f;
    p = p * f + 1.0f;
    return p * bits_to_float((static_cast<int32_t>(fx) + 127) << 23);
}

// log for x in [1, 2] (all softplus needs), Cephes' logf polynomial.
inline float fast_log_1_2(float x) {
    int32_t i = float_to_bits(x);
    float e = static_cast<float>(((i >> 23) & 0xff) - 126);
    float m = bits_to_float((i & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
    bool small = m < 0.707106781186547524f;
    e = small ? e - 1.0f : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    float y = p * m * z - 2.12194440e-4f * e - 0.5f * z;
    return m + y + 0.693359375f * e;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)), stable for all x.
inline float fast_softplus(float x) {
    return std::max(x, 0.0f) + fast_log_1_2(1.0f + fast_exp(-std::fabs(x)));
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

// One step of the scan's reverse sweep at time t > 0 (has_prev) or t == 0, for both
// backward kernels. h = dL/dx_t carried back through the decay et = exp(dt * A): adds
// dy_t * C_t to h, accumulates dC_t += dy_t * x_t and dB_t += h * dt_t * u_t, and dA += (h *
// x_{t-1} * et) * dt_t, then decays h. Returns sb = sum(h * B_t) (the du and ddelta of the
// step need it) and adds sum(q * A) to sa. q is scratch of N floats.
inline float reverse_step(int64_t N, bool has_prev, float dyt, float dtt, float dtut,
                          const float* bt, const float* ct, const float* xt, const float* xp,
                          const float* et, const float* a, float* h, float* q, float* da,
                          float* dbt, float* dct, float& sa) {
    float sb = 0.0f, s_a = 0.0f;
    if (has_prev) {
#pragma omp simd reduction(+ : sb, s_a)
        for (int64_t n = 0; n < N; ++n) {
            h[n] += dyt * ct[n];
            dct[n] += dyt * xt[n];
            dbt[n] += h[n] * dtut;
            sb += h[n] * bt[n];
            q[n] = h[n] * xp[n] * et[n];
            s_a += q[n] * a[n];
            da[n] += q[n] * dtt;
            h[n] *= et[n];
        }
    } else {
#pragma omp simd reduction(+ : sb)
        for (int64_t n = 0; n < N; ++n) {
            h[n] += dyt * ct[n];
            dct[n] += dyt * xt[n];
            dbt[n] += h[n] * dtut;
            sb += h[n] * bt[n];
        }
    }
    sa += s_a;
    return sb;
}

// Calls fn(std::integral_constant<int, NS>{}) with NS = dstate for the state sizes the
// kernels are compiled for (their inner loops then have a fixed trip count and unroll), or
// NS = 0, the generic loop, for any other size.
template <typename Fn>
void with_dstate(int64_t dstate, Fn fn) {
    switch (dstate) {
        case 4: fn(std::integral_constant<int, 4>{}); break;
        case 8: fn(std::integral_constant<int, 8>{}); break;
        case 16: fn(std::integral_constant<int, 16>{}); break;
        case 32: fn(std::integral_constant<int, 32>{}); break;
        case 64: fn(std::integral_constant<int, 64>{}); break;
        default: fn(std::integral_constant<int, 0>{});
    }
}

// Runs fn(i0, i1, thread) over [0, items) on nthreads threads (the caller's among them).
// Threads take small batches from a shared counter, so a core that another process holds
// for a while delays only its current batch instead of a fixed half of the work.
template <typename Fn>
void parallel_for(int64_t items, int nthreads, Fn fn) {
    nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, items)));
    const int64_t grain = std::max<int64_t>(1, items / (8 * nthreads));
    std::atomic<int64_t> next{0};
    auto worker = [&](int k) {
        for (;;) {
            const int64_t i0 = next.fetch_add(grain);
            if (i0 >= items) break;
            fn(i0, std::min(items, i0 + grain), k);
        }
    };
    std::vector<std::thread> pool;
    for (int k = 1; k < nthreads; ++k) pool.emplace_back(worker, k);
    worker(0);
    for (auto& th : pool) th.join();
}

}  // namespace
