/* Vectorised micro-benchmarks of codesign.hwmodels.host, compiled for this CPU at measure time
 * (cc -O2 -march=native).  Each compute kernel runs `iters` iterations of ACC independent
 * vector multiply-accumulates held in registers (enough chains to cover the FMA latency on
 * two pipes) and returns the operations done (a MAC = 2 operations); the caller times it.
 * The read kernel sums a buffer `passes` times with vector loads and returns the bytes read.
 * Every result feeds a returned checksum so the compiler cannot drop the loop.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#define ACC 12

#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif

typedef float vf32 __attribute__((vector_size(VBYTES)));
typedef double vf64 __attribute__((vector_size(VBYTES)));

static volatile double sink;

int cs_vector_bytes(void) { return VBYTES; }

double cs_fma_f32(long iters) {
    vf32 acc[ACC];
    vf32 a = {0}, b = {0};
    for (int k = 0; k < (int)(VBYTES / 4); ++k) { a[k] = 1.0f + 1e-7f * k; b[k] = 1e-7f; }
    for (int j = 0; j < ACC; ++j) acc[j] = a * (float)j;
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; ++j) acc[j] = acc[j] * a + b;
    }
    float s = 0;
    for (int j = 0; j < ACC; ++j) s += acc[j][0];
    sink = s;
    return 2.0 * (double)iters * ACC * (VBYTES / 4);
}

double cs_fma_f64(long iters) {
    vf64 acc[ACC];
    vf64 a = {0}, b = {0};
    for (int k = 0; k < (int)(VBYTES / 8); ++k) { a[k] = 1.0 + 1e-12 * k; b[k] = 1e-12; }
    for (int j = 0; j < ACC; ++j) acc[j] = a * (double)j;
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; ++j) acc[j] = acc[j] * a + b;
    }
    double s = 0;
    for (int j = 0; j < ACC; ++j) s += acc[j][0];
    sink = s;
    return 2.0 * (double)iters * ACC * (VBYTES / 8);
}

/* fp16: native half FMAs where the ISA has them (AVX512-FP16); otherwise fp16 operands are
 * converted with F16C and multiplied-added in fp32, which is what compiled fp16 code does. */
double cs_fma_f16(long iters) {
#if defined(__AVX512FP16__)
    __m512h acc[ACC];
    __m512h a = _mm512_set1_ph((_Float16)1.0001f), b = _mm512_set1_ph((_Float16)0.0001f);
    for (int j = 0; j < ACC; ++j) acc[j] = _mm512_set1_ph((_Float16)j);
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; ++j) acc[j] = _mm512_fmadd_ph(acc[j], a, b);
    }
    float s = 0;
    for (int j = 0; j < ACC; ++j) s += (float)acc[j][0];
    sink = s;
    return 2.0 * (double)iters * ACC * 32;
#elif defined(__AVX512F__)
    __m512 acc[ACC];
    __m256i h[ACC];
    const __m256i flip = _mm256_set1_epi16(1); /* toggles the lowest mantissa bit */
    const __m512 b = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < ACC; ++j) {
        acc[j] = _mm512_set1_ps((float)j);
        h[j] = _mm256_set1_epi16((short)(0x3c00 + j)); /* about 1.0 in fp16 */
    }
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; ++j) {
            acc[j] = _mm512_fmadd_ps(acc[j], _mm512_cvtph_ps(h[j]), b);
            h[j] = _mm256_xor_si256(h[j], flip);
        }
    }
    float s = 0;
    for (int j = 0; j < ACC; ++j) s += _mm512_reduce_add_ps(acc[j]);
    sink = s;
    return 2.0 * (double)iters * ACC * 16;
#else
    (void)iters;
    return 0.0;
#endif
}

/* int8: u8 x s8 products summed into int32 lanes -- VNNI (vpdpbusd, 4 MACs per lane) where
 * present, else AVX2 vpmaddubsw + vpmaddwd. */
double cs_mac_i8(long iters) {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
    __m512i acc[ACC];
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    for (int j = 0; j < ACC; ++j) acc[j] = _mm512_set1_epi32(j);
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
    }
    int64_t s = 0;
    for (int j = 0; j < ACC; ++j) s += _mm512_reduce_add_epi32(acc[j]);
    sink = (double)s;
    return 2.0 * (double)iters * ACC * 64;
#elif defined(__AVX2__)
    __m256i acc[ACC];
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    for (int j = 0; j < ACC; ++j) acc[j] = _mm256_set1_epi32(j);
    for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
        for (int j = 0; j < ACC; ++j)
            acc[j] = _mm256_add_epi32(acc[j], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
    }
    int s = 0;
    for (int j = 0; j < ACC; ++j) s += _mm256_extract_epi32(acc[j], 0);
    sink = (double)s;
    return 2.0 * (double)iters * ACC * 32;
#else
    (void)iters;
    return 0.0;
#endif
}

/* Read `bytes` (a multiple of 4 * VBYTES) from `buf` `passes` times with vector loads. */
double cs_read(const float *buf, size_t bytes, long passes) {
    size_t n = bytes / VBYTES;
    const vf32 *v = (const vf32 *)buf;
    vf32 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (long p = 0; p < passes; ++p) {
        for (size_t i = 0; i + 4 <= n; i += 4) {
            s0 += v[i]; s1 += v[i + 1]; s2 += v[i + 2]; s3 += v[i + 3];
        }
        __asm__ volatile("" ::: "memory");
    }
    vf32 s = s0 + s1 + s2 + s3;
    sink = s[0];
    return (double)passes * (double)(n - n % 4) * VBYTES;
}
