#include "lathe/polyphase.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <numeric>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "lathe/error.hpp"
#include "lathe/kaiser.hpp"

namespace lathe {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::uint64_t integer_rate(double hz, const char* which) {
  LATHE_EXPECTS(hz >= 1.0 && hz <= 1e7 && hz == std::floor(hz),
                std::string(which) + " must be an integer number of Hz in [1, 10'000'000] for polyphase resampling");
  return static_cast<std::uint64_t>(hz);
}

// One output as the reference computes it: four float64 partial sums over t mod 4, combined as
// (s0 + s1) + (s2 + s3). C and W are float (the reference) or double holding float values (the
// stream): the products are the same exact float64 values either way.
template <class C, class W>
float dot_portable(const C* c, const W* w, std::size_t taps) noexcept {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  std::size_t t = 0;
  for (; t + 4 <= taps; t += 4) {
    s[0] += static_cast<double>(c[t]) * static_cast<double>(w[t]);
    s[1] += static_cast<double>(c[t + 1]) * static_cast<double>(w[t + 1]);
    s[2] += static_cast<double>(c[t + 2]) * static_cast<double>(w[t + 2]);
    s[3] += static_cast<double>(c[t + 3]) * static_cast<double>(w[t + 3]);
  }
  for (; t < taps; ++t) s[t & 3] += static_cast<double>(c[t]) * static_cast<double>(w[t]);
  return static_cast<float>((s[0] + s[1]) + (s[2] + s[3]));
}

// L, M and the half length K of a design, without designing.
struct table_shape {
  std::uint64_t up, down, half_taps;
  std::uint64_t coefficients() const noexcept { return (2 * half_taps + 1) * up; }
};

table_shape shape_of(std::uint64_t in, std::uint64_t out, const polyphase_params& params) {
  const std::uint64_t g = std::gcd(in, out);
  const std::uint64_t up = out / g, down = in / g;
  if (up == 1 && down == 1) return {1, 1, 0};
  // At the conceptual upsampled rate fu = L * in = M * out, in cycles per sample of fu.
  const double fu = static_cast<double>(up) * static_cast<double>(in);
  const double nyquist_low = 0.5 * static_cast<double>(std::min(in, out));
  const double transition = (params.stopband_begin - params.passband_end) * nyquist_low / fu;
  // Kaiser's length estimate N - 1 = (A - 7.95) / (2.285 * 2 pi * transition); the half length
  // is rounded up to a multiple of L so every phase has the same 2K+1 taps (a longer window
  // with the same beta only narrows the transition).
  const double order = std::ceil((params.stopband_attenuation_db - 7.95) / (14.36 * transition));
  const auto half_min = static_cast<std::uint64_t>(std::ceil(0.5 * order));
  return {up, down, (half_min + up - 1) / up};
}

bool valid(const polyphase_params& p) noexcept {
  return p.passband_end > 0.0 && p.passband_end < p.stopband_begin && p.stopband_begin <= 1.0 &&
         p.stopband_attenuation_db >= 21.0 && p.stopband_attenuation_db <= 250.0;
}

bool integer_in_range(double hz) noexcept {
  return hz >= 1.0 && hz <= 1e7 && hz == std::floor(hz);
}

}  // namespace

bool polyphase_resampler::fits(double in_rate_hz, double out_rate_hz, const polyphase_params& params) noexcept {
  if (!integer_in_range(in_rate_hz) || !integer_in_range(out_rate_hz) || !valid(params)) return false;
  return shape_of(static_cast<std::uint64_t>(in_rate_hz), static_cast<std::uint64_t>(out_rate_hz), params)
             .coefficients() <= max_coefficients;
}

void polyphase_resampler::prepare(double in_rate_hz, double out_rate_hz, const polyphase_params& params) {
  const std::uint64_t in = integer_rate(in_rate_hz, "in_rate_hz");
  const std::uint64_t out = integer_rate(out_rate_hz, "out_rate_hz");
  LATHE_EXPECTS(
      params.passband_end > 0.0 && params.passband_end < params.stopband_begin && params.stopband_begin <= 1.0,
      "polyphase_params: need 0 < passband_end < stopband_begin <= 1 (fractions of the lower Nyquist)");
  LATHE_EXPECTS(params.stopband_attenuation_db >= 21.0 && params.stopband_attenuation_db <= 250.0,
                "polyphase_params: stopband_attenuation_db must be in [21, 250]");
  const table_shape shape = shape_of(in, out, params);
  in_rate_hz_ = in_rate_hz;
  out_rate_hz_ = out_rate_hz;
  params_ = params;
  up_ = static_cast<std::uint32_t>(shape.up);
  down_ = static_cast<std::uint32_t>(shape.down);
  if (up_ == 1 && down_ == 1) {
    // Equal rates: a copy, as lathe::resample does; no low-pass.
    half_taps_ = 0;
    beta_ = 0.0;
    cutoff_ = 1.0;
    coeffs_.assign(1, 1.0f);
    return;
  }

  const double L = static_cast<double>(up_);
  const double fu = L * static_cast<double>(in);
  const double nyquist_low = 0.5 * static_cast<double>(std::min(in, out));
  cutoff_ = 0.5 * (params.passband_end + params.stopband_begin);
  const double fc = cutoff_ * nyquist_low / fu;
  beta_ = kaiser::beta_for(params.stopband_attenuation_db);
  const std::uint64_t k = shape.half_taps;
  const std::uint64_t taps = 2 * k + 1;
  LATHE_EXPECTS(shape.coefficients() <= max_coefficients,
                "polyphase resampler " + std::to_string(in) + " -> " + std::to_string(out) + " Hz needs " +
                    std::to_string(shape.coefficients()) + " coefficients (over the limit " +
                    std::to_string(max_coefficients) + "); use lathe::resample (libsoxr) for this pair");
  half_taps_ = static_cast<std::size_t>(k);
  const std::int64_t h_half = static_cast<std::int64_t>(k * up_);  // H: prototype taps n in [-H, H]

  const double i0_beta = kaiser::bessel_i0(beta_);
  auto prototype = [&](std::int64_t n) {  // unnormalized, symmetric in n
    const double x = static_cast<double>(n) / static_cast<double>(h_half);
    const double w = kaiser::window(x, beta_, i0_beta);
    const double arg = 2.0 * fc * static_cast<double>(n);
    const double sinc = n == 0 ? 1.0 : std::sin(kPi * arg) / (kPi * arg);
    return 2.0 * fc * sinc * w;
  };
  // DC gain L (each output is an average over phases of unity gain): normalize by the float64
  // sum, smallest terms first so the sum is exact to rounding.
  double sum = 0.0;
  for (std::int64_t n = h_half; n >= 1; --n) sum += 2.0 * prototype(n);
  sum += prototype(0);
  const double scale = L / sum;

  // Phase r, tap t holds h(n) with n = (K - t) L + r: the taps run forward in input time, so a
  // dot product with x[q - K + t] is the convolution at output time q L + r.
  coeffs_.assign(static_cast<std::size_t>(taps * up_), 0.0f);
  for (std::int64_t n = -h_half; n <= h_half; ++n) {
    // n = (K - t) L + r  <=>  r = n mod L, t = K - (n - r) / L
    const std::int64_t r = ((n % static_cast<std::int64_t>(up_)) + up_) % up_;
    const std::int64_t t = static_cast<std::int64_t>(k) - (n - r) / static_cast<std::int64_t>(up_);
    coeffs_[static_cast<std::size_t>(r) * taps + static_cast<std::size_t>(t)] =
        static_cast<float>(scale * prototype(n < 0 ? -n : n));
  }
}

std::size_t polyphase_resampler::output_frames(std::size_t in_frames) const noexcept {
  // floor(n L / M + 1/2) in integers; n L < 2^64 for any track shorter than ~1e13 frames / L.
  return static_cast<std::size_t>((2 * static_cast<std::uint64_t>(in_frames) * up_ + down_) /
                                  (2 * std::uint64_t{down_}));
}

void polyphase_resampler::process(std::span<const float> in, std::size_t first_out,
                                  std::span<float> out) const noexcept {
  const std::size_t taps = taps_per_phase();
  const auto n_in = static_cast<std::int64_t>(in.size());
  const float* x = in.data();
  // j M = q L + r, stepped without division.
  const std::uint64_t jm = static_cast<std::uint64_t>(first_out) * down_;
  std::uint64_t q = jm / up_, r = jm % up_;
  const std::uint64_t q_step = down_ / up_, r_step = down_ % up_;
  for (std::size_t j = 0; j < out.size(); ++j) {
    const float* c = coeffs_.data() + r * taps;
    const std::int64_t start = static_cast<std::int64_t>(q) - static_cast<std::int64_t>(half_taps_);
    if (start >= 0 && start + static_cast<std::int64_t>(taps) <= n_in) {
      out[j] = dot_portable(c, x + start, taps);
    } else {
      double s[4] = {0.0, 0.0, 0.0, 0.0};
      // Near the lane's ends: the input is zero outside it (same operations as above, the
      // missing samples read as 0, so the result is the same as a zero-padded lane's).
      for (std::size_t t = 0; t < taps; ++t) {
        const std::int64_t i = start + static_cast<std::int64_t>(t);
        const float v = (i >= 0 && i < n_in) ? x[i] : 0.0f;
        s[t & 3] += static_cast<double>(c[t]) * static_cast<double>(v);
      }
      out[j] = static_cast<float>((s[0] + s[1]) + (s[2] + s[3]));
    }
    q += q_step;
    r += r_step;
    if (r >= up_) {
      r -= up_;
      ++q;
    }
  }
}

audio_buffer polyphase_resampler::process(const audio_buffer& in) const {
  audio_buffer out(in.channels(), output_frames(in.frames()));
  for (int c = 0; c < in.channels(); ++c) process(in.span(c), out.span(c));
  return out;
}

double polyphase_resampler::magnitude(double freq_hz) const {
  // Prototype tap n = (K - t) L + r at rate L * in; response / L.
  const std::size_t taps = taps_per_phase();
  const double w = 2.0 * kPi * freq_hz / (static_cast<double>(up_) * in_rate_hz_);
  std::complex<double> acc = 0.0;
  for (std::size_t r = 0; r < up_; ++r) {
    for (std::size_t t = 0; t < taps; ++t) {
      const double h = coeffs_[r * taps + t];
      if (h == 0.0) continue;
      const double n = (static_cast<double>(half_taps_) - static_cast<double>(t)) * up_ + static_cast<double>(r);
      acc += h * std::polar(1.0, -w * n);
    }
  }
  return std::abs(acc) / static_cast<double>(up_);
}

// ---- polyphase_stream ------------------------------------------------------------------------

namespace {

#if defined(__x86_64__)
// The taps from t on (fewer than four) and the reference's final sum, for four accumulators
// whose lane k holds partial sum s[k].
__attribute__((target("avx2,fma"))) inline void finish4(__m256d a0, __m256d a1, __m256d a2, __m256d a3,
                                                        const double* const c[4], const double* const w[4],
                                                        std::size_t t, std::size_t taps, float out[4]) noexcept {
  alignas(32) double s[4][4];
  _mm256_store_pd(s[0], a0);
  _mm256_store_pd(s[1], a1);
  _mm256_store_pd(s[2], a2);
  _mm256_store_pd(s[3], a3);
  for (int k = 0; k < 4; ++k) {
    for (std::size_t u = t; u < taps; ++u) s[k][u & 3] += c[k][u] * w[k][u];
    out[k] = static_cast<float>((s[k][0] + s[k][1]) + (s[k][2] + s[k][3]));
  }
}

// Four independent dot products at once (four dependency chains hide the add latency); each
// vector lane k of accumulator a holds the reference's partial sum s[k]. c[i] * w[i] is exact
// in float64 (both hold float32 values), so fmadd rounds as the reference's add.
__attribute__((target("avx2,fma"))) void dot4_avx2(const double* const c[4], const double* const w[4], std::size_t taps,
                                                   float out[4]) noexcept {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  std::size_t t = 0;
  for (; t + 4 <= taps; t += 4) {
    a0 = _mm256_fmadd_pd(_mm256_loadu_pd(c[0] + t), _mm256_loadu_pd(w[0] + t), a0);
    a1 = _mm256_fmadd_pd(_mm256_loadu_pd(c[1] + t), _mm256_loadu_pd(w[1] + t), a1);
    a2 = _mm256_fmadd_pd(_mm256_loadu_pd(c[2] + t), _mm256_loadu_pd(w[2] + t), a2);
    a3 = _mm256_fmadd_pd(_mm256_loadu_pd(c[3] + t), _mm256_loadu_pd(w[3] + t), a3);
  }
  finish4(a0, a1, a2, a3, c, w, t, taps, out);
}

// The same for two outputs of a stereo pair: jobs 0 and 1 share the coefficient row c01, jobs
// 2 and 3 the row c23 (one load for two channels).
__attribute__((target("avx2,fma"))) void dot2x2_avx2(const double* c01, const double* c23, const double* const w[4],
                                                     std::size_t taps, float out[4]) noexcept {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  std::size_t t = 0;
  for (; t + 4 <= taps; t += 4) {
    const __m256d x = _mm256_loadu_pd(c01 + t), y = _mm256_loadu_pd(c23 + t);
    a0 = _mm256_fmadd_pd(x, _mm256_loadu_pd(w[0] + t), a0);
    a1 = _mm256_fmadd_pd(x, _mm256_loadu_pd(w[1] + t), a1);
    a2 = _mm256_fmadd_pd(y, _mm256_loadu_pd(w[2] + t), a2);
    a3 = _mm256_fmadd_pd(y, _mm256_loadu_pd(w[3] + t), a3);
  }
  const double* const c[4] = {c01, c01, c23, c23};
  finish4(a0, a1, a2, a3, c, w, t, taps, out);
}
#endif

}  // namespace

bool polyphase_stream::avx2_available() noexcept {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

void polyphase_stream::use_avx2(bool on) {
  LATHE_EXPECTS(!on || avx2_available(), "this CPU has no AVX2 and FMA");
  avx2_ = on;
}

polyphase_stream::polyphase_stream(const polyphase_resampler& design, int channels, std::size_t in_frames)
    : channels_(channels),
      taps_(design.taps_per_phase()),
      up_(design.up()),
      down_(design.down()),
      half_taps_(static_cast<std::int64_t>(design.half_taps())),
      coeffs_(design.coefficients().begin(), design.coefficients().end()),
      capacity_(chunk_frames + design.taps_per_phase()),
      window_begin_(-static_cast<std::int64_t>(design.half_taps())),
      in_frames_(in_frames),
      out_frames_(design.output_frames(in_frames)),
      avx2_(avx2_available()) {
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "channel count out of range");
  window_.assign(static_cast<std::size_t>(channels) * capacity_, 0.0);
  // The K zeros the reference reads before the lane.
  window_frames_ = static_cast<std::size_t>(half_taps_);
  out_.resize(channels, chunk_frames);
}

void polyphase_stream::compact() {
  // The next output reads from lane index q - K on; nothing before it is read again.
  const std::int64_t keep_from = static_cast<std::int64_t>(q_) - half_taps_;
  const std::int64_t drop =
      std::min<std::int64_t>(keep_from - window_begin_, static_cast<std::int64_t>(window_frames_));
  if (drop <= 0) return;
  const auto d = static_cast<std::size_t>(drop);
  for (int c = 0; c < channels_; ++c) {
    double* w = window_.data() + static_cast<std::size_t>(c) * capacity_;
    std::copy(w + d, w + window_frames_, w);
  }
  window_frames_ -= d;
  window_begin_ += drop;
}

void polyphase_stream::append(const_block_view in) {
  for (int c = 0; c < channels_; ++c) {
    double* w = window_.data() + static_cast<std::size_t>(c) * capacity_ + window_frames_;
    const float* x = in[c];
    for (std::size_t i = 0; i < in.frames; ++i) w[i] = static_cast<double>(x[i]);
  }
  window_frames_ += in.frames;
}

void polyphase_stream::append_zeros(std::size_t frames) {
  for (int c = 0; c < channels_; ++c) {
    double* w = window_.data() + static_cast<std::size_t>(c) * capacity_ + window_frames_;
    std::fill_n(w, frames, 0.0);
  }
  window_frames_ += frames;
}

void polyphase_stream::emit_ready(const frame_sink& out) {
  const std::int64_t window_end = window_begin_ + static_cast<std::int64_t>(window_frames_);
  const std::uint64_t q_step = down_ / up_, r_step = down_ % up_;
  while (emitted_ < out_frames_) {
    // Outputs j, j+1, ... whose last tap, lane index q + K, is in the window (at most a chunk).
    std::size_t n = 0;
    const std::size_t limit = std::min(out_frames_ - emitted_, out_.frames());
    std::uint64_t q = q_, r = r_;
    // Job (output i of the chunk, channel c): its coefficient row and its window position.
    constexpr std::size_t group = 4;
    const double* cj[group];
    const double* wj[group];
    float* yj[group];
    std::size_t queued = 0;
    auto flush = [&](std::size_t count) {
#if defined(__x86_64__)
      if (avx2_) {
        for (std::size_t k = count; k < group; ++k) cj[k] = cj[0], wj[k] = wj[0];  // results dropped
        float y[group];
        if (cj[0] == cj[1] && cj[2] == cj[3])
          dot2x2_avx2(cj[0], cj[2], wj, taps_, y);
        else
          dot4_avx2(cj, wj, taps_, y);
        for (std::size_t k = 0; k < count; ++k) *yj[k] = y[k];
        return;
      }
#endif
      for (std::size_t k = 0; k < count; ++k) *yj[k] = dot_portable(cj[k], wj[k], taps_);
    };
    while (n < limit && static_cast<std::int64_t>(q) + half_taps_ < window_end) {
      const double* c = coeffs_.data() + r * taps_;
      const auto offset = static_cast<std::size_t>(static_cast<std::int64_t>(q) - half_taps_ - window_begin_);
      for (int ch = 0; ch < channels_; ++ch) {
        cj[queued] = c;
        wj[queued] = window_.data() + static_cast<std::size_t>(ch) * capacity_ + offset;
        yj[queued] = out_.channel(ch) + n;
        if (++queued == group) {
          flush(group);
          queued = 0;
        }
      }
      ++n;
      q += q_step;
      r += r_step;
      if (r >= up_) {
        r -= up_;
        ++q;
      }
    }
    if (queued > 0) flush(queued);
    if (n == 0) return;
    q_ = q;
    r_ = r;
    out(out_.view(0, n));
    emitted_ += n;
  }
}

void polyphase_stream::push(const_block_view in, frame_sink out) {
  LATHE_EXPECTS(in.channels == channels_, "polyphase_stream channel count differs");
  LATHE_EXPECTS(in.frames <= in_frames_ - pushed_, "more frames pushed than the stream was made for");
  for (std::size_t done = 0; done < in.frames;) {
    compact();
    const std::size_t n = std::min(capacity_ - window_frames_, in.frames - done);
    append(in.sub(done, n));
    done += n;
    pushed_ += n;
    emit_ready(out);
  }
}

void polyphase_stream::finish(frame_sink out) {
  LATHE_EXPECTS(pushed_ == in_frames_, "polyphase_stream finished before all its frames were pushed");
  // The zeros the reference reads after the lane, as many as the remaining outputs reach.
  while (emitted_ < out_frames_) {
    compact();
    append_zeros(capacity_ - window_frames_);
    emit_ready(out);
  }
}

}  // namespace lathe
