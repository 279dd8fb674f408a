#pragma once
// The per-thread bodies of the GPU limiter's gain-law kernels (kernels/dsp/limiter.cu), written once
// as plain functions that compile for the device (under nvcc) and for the host (under g++), so a
// CPU unit test (tests/dsp/gpu_limiter_host_test.cpp) runs exactly this code over the same chunk
// and block decomposition and compares it with lathe::detail::limiter_gain_law. Host-compilable:
// no CUDA headers; LATHE_GPU_HD expands to nothing outside nvcc.
//
// The law (limiter.cpp) per track, stream time t in [0, T), T = frames + latency:
//   d[t] = gain * max(p[t-2], p[t-1], p[t]),  p[t] = max over the track's two lanes (p[<0] = 0)
//   r[t] = d > c ? c / d : 1
//   e[t] = min(r[t], snap(e[t-1] + (1 - e[t-1]) a)),  e[-1] = 1,  snap(x) = x >= 1 - 2^-32 ? 1 : x
//   h[t] = min(e[t-L .. t])          (e[<0] = 1, which never wins because e <= 1)
//   q[t] = floor(h[t] 2^32)          (uint64; the window sum of q is exact integer arithmetic)
//   g[t] = (Q[t] - Q[t-W]) / (W 2^32),  Q = inclusive prefix sum of q, W = L + 1
//   y[m] = x[m] * (gain * g[m + latency])
//
// Release recurrence in parallel. With u = 1 - e the step is u[t] = max(1 - r[t], S(b u[t-1])),
// b = 1 - a, S(v) = 0 where 1 - v >= 1 - 2^-32, else v. S and v -> b v are nondecreasing, so
// they commute with max, and S(b S(b v)) = S(b^2 v); hence over k steps of a chunk that starts
// with u_in:  u[start + k - 1] = max(U_local[k - 1], S(b^k u_in)),  U_local = the same steps
// from u_in = 0 (e_in = 1). Each chunk runs its local steps serially in e form, exactly as the
// CPU does (release_local_chunk); a short serial pass per track carries e_in across chunks
// (release_carry_track); every frame then takes min(E_local, release_from(e_in, k)).
//
// How this differs from the CPU's serial float64 recurrence: the carried term uses b^k from a
// table of std::pow values (correctly rounded to ~1 ulp) instead of k repeated multiply-adds,
// and 1 - b^k (1 - e_in) instead of the CPU's e + (1 - e) a form, so where the carry decides
// a frame, e differs from the CPU by a few ulps (relative ~1e-15). Where the carry is exactly 1
// (fully released, snapped) or the local term decides, e is bit-identical. q rounds e down to
// 2^-32, so g is bit-identical except where an ulp-level difference of e crosses a quantum
// boundary; then g differs by 2^-32 / W per crossing (<= 2.4e-10 relative). Matches the CPU
// within that tolerance, not bitwise.
//
// All arithmetic is plain IEEE double with no contraction (host_device.hpp: nvcc would fuse
// e + (1 - e) a into an FMA, the CPU build does not), division is IEEE (nvcc's default
// -prec-div=true), so the device and the host emulation compute the same bits given the same
// tables.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "host_device.hpp"  // relative: CPU tests include this header by path

namespace lathe::gpu::detail {

inline constexpr double held_scale = 4294967296.0;              // 2^32, as limiter.cpp
inline constexpr double release_snap = 1.0 - 1.0 / held_scale;  // as limiter.cpp

/// std::min's semantics (returns x unless y < x), so ties and signed zeros behave as on the CPU.
LATHE_GPU_HD inline double min_d(double x, double y) {
  return y < x ? y : x;
}
LATHE_GPU_HD inline float max_f(float x, float y) {
  return x < y ? y : x;  // std::max's semantics
}

/// Constants of one batch's law (one limiter_params and sample rate for every track).
struct law_constants {
  double ceiling = 1.0;            // c, linear, margin included
  double release_coeff = 0.0;      // a
  std::uint32_t window = 1;        // W = L + 1
  std::uint32_t chunk_frames = 1;  // release chunk length C; pow_b holds b^0 .. b^C
};

/// Where one track's data lie (element offsets into the batch arrays).
struct track_desc {
  std::uint64_t in0 = 0, in1 = 0;      // audio lanes 2t, 2t+1
  std::uint64_t peak0 = 0, peak1 = 0;  // their peak arrays (frames + latency each)
  std::uint64_t frames = 0;            // audio frames of the track
  std::uint64_t stream_frames = 0;     // T = frames + latency
  std::uint64_t stream_offset = 0;     // first frame of the track in the work arrays
  std::uint64_t chunk_offset = 0;      // first release chunk of the track
};

/// Linked, windowed peak of stream frame t of one track (lanes p0, p1), as window_peak does.
LATHE_GPU_HD inline float linked_peak(const float* p0, const float* p1, std::size_t t) {
  return max_f(max_f(0.0f, p0[t]), p1[t]);
}
LATHE_GPU_HD inline float window_peak_at(const float* p0, const float* p1, std::size_t t) {
  const float l0 = linked_peak(p0, p1, t);
  const float l1 = t >= 1 ? linked_peak(p0, p1, t - 1) : 0.0f;
  const float l2 = t >= 2 ? linked_peak(p0, p1, t - 2) : 0.0f;
  return max_f(max_f(l2, l1), l0);
}

/// One step of the CPU law from envelope e (limiter_gain_law::step's first three lines).
LATHE_GPU_HD inline double law_step(double e, double detection, const law_constants& k) {
  const double required = detection > k.ceiling ? k.ceiling / detection : 1.0;
  double released = add_rn(e, mul_rn(sub_rn(1.0, e), k.release_coeff));
  if (released >= release_snap) released = 1.0;
  return min_d(required, released);
}

/// Chunk [start, start + len) of one track from e_in = 1: writes the local envelope to
/// e_local[start ..] and returns its last value. One GPU thread per chunk.
LATHE_GPU_HD inline double release_local_chunk(const float* p0, const float* p1, std::size_t start, std::size_t len,
                                               double gain, const law_constants& k, double* e_local) {
  double e = 1.0;
  for (std::size_t i = 0; i < len; ++i) {
    const std::size_t t = start + i;
    e = law_step(e, mul_rn(gain, static_cast<double>(window_peak_at(p0, p1, t))), k);
    e_local[t] = e;
  }
  return e;
}

/// The envelope k frames after e_in with no new reduction: snap(1 - b^k (1 - e_in)).
LATHE_GPU_HD inline double release_from(double e_in, const double* pow_b, std::size_t steps) {
  if (e_in == 1.0) return 1.0;
  const double released = sub_rn(1.0, mul_rn(pow_b[steps], sub_rn(1.0, e_in)));
  return released >= release_snap ? 1.0 : released;
}

/// Serial pass over one track's chunks (n_chunks of them; all but the last chunk_frames long,
/// the last `last_len`): carry_in[j] = the envelope before chunk j. One GPU thread per track.
LATHE_GPU_HD inline void release_carry_track(const double* chunk_final, std::size_t n_chunks, std::size_t last_len,
                                             const law_constants& k, const double* pow_b, double* carry_in) {
  double carry = 1.0;
  for (std::size_t j = 0; j < n_chunks; ++j) {
    carry_in[j] = carry;
    const std::size_t len = j + 1 == n_chunks ? last_len : k.chunk_frames;
    carry = min_d(chunk_final[j], release_from(carry, pow_b, len));
  }
}

/// The final envelope of stream frame t from its local value and its chunk's carry.
LATHE_GPU_HD inline double release_fix(double e_local, const double* carry_in, const double* pow_b, std::size_t t,
                                       const law_constants& k) {
  const std::size_t j = t / k.chunk_frames;
  return min_d(e_local, release_from(carry_in[j], pow_b, t - j * k.chunk_frames + 1));
}

// Sliding minimum over W frames by van Herk / Gil-Werman: time is cut into blocks of W frames
// starting at t = 0; within block B, suffix[t] = min(e[t .. end of B]) and prefix[t] =
// min(e[start of B .. t]); h[t] = min(suffix[t - L], prefix[t]) when t - L lies in the previous
// block, else prefix[t] (t - L < 0 in block 0: the past is e = 1, which never wins; and t the
// last frame of its block, where the window is the block itself). One GPU thread per block
// and pass; 3 min operations per frame for any L.

/// Pass 1 over block [start, start + len) of one track: finalizes e in place (release_fix) and
/// writes suffix minima.
LATHE_GPU_HD inline void sliding_min_suffix_block(double* e, double* suffix, std::size_t start, std::size_t len,
                                                  const double* carry_in, const double* pow_b, const law_constants& k) {
  double m = 1.0;
  for (std::size_t i = len; i-- > 0;) {
    const std::size_t t = start + i;
    const double v = release_fix(e[t], carry_in, pow_b, t, k);
    e[t] = v;
    m = min_d(m, v);
    suffix[t] = m;
  }
}

/// h quantized down to a multiple of 2^-32 (exact: h in [0, 1], the product is a power-of-two
/// scaling and the conversion truncates).
LATHE_GPU_HD inline std::uint64_t quantize_held(double h) {
  return static_cast<std::uint64_t>(h * held_scale);
}

/// Stores q's bit pattern in a double slot (the scan then reads the array as uint64).
LATHE_GPU_HD inline void store_bits(double* slot, std::uint64_t q) {
  static_assert(sizeof(double) == sizeof(std::uint64_t));
#ifdef __CUDA_ARCH__
  *slot = __longlong_as_double(static_cast<long long>(q));
#else
  std::memcpy(slot, &q, sizeof q);
#endif
}

/// Pass 2 over block [start, start + len): forward prefix minima, h, and q written in place of
/// e (same 8 bytes per frame: `eq` is read as double at t and then overwritten with q's bits).
/// Reads suffix[] of the previous block only, which pass 1 finished.
LATHE_GPU_HD inline void sliding_min_prefix_block(double* e_in_q_out, const double* suffix, std::size_t start,
                                                  std::size_t len, const law_constants& k) {
  const std::size_t lookahead = k.window - 1;
  double m = 1.0;
  for (std::size_t i = 0; i < len; ++i) {
    const std::size_t t = start + i;
    m = min_d(m, e_in_q_out[t]);
    // t - L lies in the previous block exactly when t - L >= 0 and i < L (i + 1 < W).
    const double h = (t >= lookahead && i < lookahead) ? min_d(suffix[t - lookahead], m) : m;
    store_bits(e_in_q_out + t, quantize_held(h));
  }
}

/// g at stream frame t >= W from the inclusive prefix sums Q of q (uint64, wrapping: the
/// difference of two prefixes is exact whatever the overflow).
LATHE_GPU_HD inline double gain_from_prefix(const std::uint64_t* prefix, std::size_t t, std::uint32_t window) {
  const std::uint64_t sum = prefix[t] - prefix[t - window];
  return static_cast<double>(sum) / (static_cast<double>(window) * held_scale);
}

/// Number of pieces of length `piece` covering n frames.
LATHE_GPU_HD inline std::size_t pieces(std::size_t n, std::size_t piece) {
  return (n + piece - 1) / piece;
}

}  // namespace lathe::gpu::detail

// ---- host-side plan (shared by the dispatch in limiter.cu and the CPU emulation test) --------
#include <cmath>
#include <vector>

#include "lathe/limiter.hpp"
#include "lathe/true_peak.hpp"

namespace lathe::gpu::detail {

/// The law's constants taken from the CPU class itself, so both paths use identical values.
/// Validates params (limiter_gain_law::prepare throws lathe::error).
inline law_constants make_law_constants(const limiter_params& params, double sample_rate_hz, std::size_t chunk_frames) {
  lathe::detail::limiter_gain_law law;
  law.prepare(params, sample_rate_hz);
  law_constants k;
  k.ceiling = law.ceiling_linear();
  k.release_coeff = law.release_coeff();
  k.window = static_cast<std::uint32_t>(law.lookahead_frames() + 1);
  k.chunk_frames = static_cast<std::uint32_t>(chunk_frames);
  return k;
}

/// b^0 .. b^C, b = 1 - a, each from std::pow (not by repeated multiplication, so every entry
/// is within ~1 ulp of the true power).
inline std::vector<double> make_release_powers(const law_constants& k) {
  std::vector<double> p(static_cast<std::size_t>(k.chunk_frames) + 1);
  const double b = 1.0 - k.release_coeff;
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = std::pow(b, static_cast<double>(i));
  return p;
}

/// offline_limiter's latency: the detector's delay, its 3-frame window, and the lookahead.
inline std::size_t limiter_latency(const limiter_params& params, double sample_rate_hz) {
  true_peak_interpolator detector;
  detector.prepare(sample_rate_hz);
  const law_constants k = make_law_constants(params, sample_rate_hz, 1);
  return detector.latency_frames() + 1 + (k.window - 1);
}

}  // namespace lathe::gpu::detail
