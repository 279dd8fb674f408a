#include "lathe/true_peak.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "lathe/error.hpp"
#include "lathe/kaiser.hpp"

namespace lathe {
namespace {

// Vectors of floats: arithmetic on them is elementwise IEEE exactly as scalar code (no
// reassociation; no FMA, as the build has -ffp-contract=off), so every path below gives
// identical peaks.
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));

// peak[i] = max(peak[i], |sum_k c[k] x[i + k]|) for i < n. The dot products run over 8 vectors
// of outputs at once, tap by tap: each output still sums its taps in order from 0.0f
// (bit-identical to a plain per-output dot product), but the inner loop is over independent
// outputs, so it vectorizes without reassociating a float sum and hides the add latency (~5x
// faster than per-output loops).
template <class V>
inline __attribute__((always_inline)) void phase_peaks_body(const float* c, std::size_t taps, const float* x,
                                                            float* peak, std::size_t n) noexcept {
  constexpr std::size_t width = sizeof(V) / sizeof(float), vecs = 8, lanes = width * vecs;
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    V acc[vecs] = {};
    for (std::size_t k = 0; k < taps; ++k) {
      const V ck = V{} + c[k];
      const float* xk = x + i + k;
      for (std::size_t v = 0; v < vecs; ++v) {
        V xv;
        std::memcpy(&xv, xk + width * v, sizeof xv);  // unaligned load
        acc[v] += ck * xv;
      }
    }
    for (std::size_t v = 0; v < vecs; ++v) {
      for (std::size_t j = 0; j < width; ++j) {
        float& out = peak[i + width * v + j];
        out = std::max(out, std::abs(acc[v][j]));
      }
    }
  }
  for (; i < n; ++i) {
    float acc = 0.0f;
    for (std::size_t k = 0; k < taps; ++k) acc += c[k] * x[i + k];
    peak[i] = std::max(peak[i], std::abs(acc));
  }
}

using phase_peaks_fn = void (*)(const float*, std::size_t, const float*, float*, std::size_t) noexcept;

void phase_peaks_baseline(const float* c, std::size_t taps, const float* x, float* peak, std::size_t n) noexcept {
  phase_peaks_body<vec8>(c, taps, x, peak, n);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx"))) void phase_peaks_avx(const float* c, std::size_t taps, const float* x, float* peak,
                                                    std::size_t n) noexcept {
  phase_peaks_body<vec8>(c, taps, x, peak, n);
}

// 16 floats per register, 128 outputs per step.
__attribute__((target("avx512f"))) void phase_peaks_avx512(const float* c, std::size_t taps, const float* x,
                                                           float* peak, std::size_t n) noexcept {
  phase_peaks_body<vec16>(c, taps, x, peak, n);
}
#endif

// The widest path this CPU runs, chosen once.
phase_peaks_fn pick_phase_peaks() noexcept {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f")) return phase_peaks_avx512;
  if (__builtin_cpu_supports("avx")) return phase_peaks_avx;
#endif
  return phase_peaks_baseline;
}

void phase_peaks(const float* c, std::size_t taps, const float* x, float* peak, std::size_t n) noexcept {
  static const phase_peaks_fn fn = pick_phase_peaks();
  fn(c, taps, x, peak, n);
}

}  // namespace

namespace detail {
bool phase_peaks_with(const char* isa, const float* c, std::size_t taps, const float* x, float* peak,
                      std::size_t n) noexcept {
  const std::string_view name(isa);
  if (name == "baseline") {
    phase_peaks_baseline(c, taps, x, peak, n);
    return true;
  }
#if defined(__x86_64__) && defined(__GNUC__)
  if (name == "avx" && __builtin_cpu_supports("avx")) {
    phase_peaks_avx(c, taps, x, peak, n);
    return true;
  }
  if (name == "avx512f" && __builtin_cpu_supports("avx512f")) {
    phase_peaks_avx512(c, taps, x, peak, n);
    return true;
  }
#endif
  return false;
}
}  // namespace detail

void true_peak_interpolator::prepare(double sample_rate_hz) {
  LATHE_EXPECTS(sample_rate_hz > 0.0, "sample rate must be positive");
  factor_ = sample_rate_hz < 88'200.0 ? 8 : 4;
  // 32 taps per phase: Kaiser beta 6 gives ~60 dB image rejection and passband ripple of a few
  // hundredths of a dB up to 20 kHz at 44.1 kHz, well inside BS.1770's +0.2/-0.4 dB.
  taps_per_phase_ = 32;
  const std::size_t length = taps_per_phase_ * static_cast<std::size_t>(factor_) + 1;  // odd, symmetric
  const double centre = 0.5 * static_cast<double>(length - 1);
  const double beta = 6.0;
  const double i0_beta = kaiser::bessel_i0(beta);
  std::vector<double> h(length);
  for (std::size_t j = 0; j < length; ++j) {
    const double t = (static_cast<double>(j) - centre) / factor_;  // in input samples
    const double sinc = t == 0.0 ? 1.0 : std::sin(M_PI * t) / (M_PI * t);
    const double r = (static_cast<double>(j) - centre) / centre;
    const double w = kaiser::window(r, beta, i0_beta);
    h[j] = sinc * w;
  }
  const std::size_t phase_len = taps_per_phase_ + 1;
  coeffs_.assign(static_cast<std::size_t>(factor_) * phase_len, 0.0f);
  for (int p = 0; p < factor_; ++p) {
    // y[n*factor + p] = sum_i h[i*factor + p] x[n - i]; store reversed so the loop runs forward.
    for (std::size_t i = 0; i < phase_len; ++i) {
      const std::size_t j = i * static_cast<std::size_t>(factor_) + static_cast<std::size_t>(p);
      const double v = j < length ? h[j] : 0.0;
      coeffs_[static_cast<std::size_t>(p) * phase_len + (phase_len - 1 - i)] = static_cast<float>(v);
    }
  }
  work_.assign(phase_len - 1 + chunk_frames, 0.0f);
}

void true_peak_interpolator::reset() noexcept {
  std::fill(work_.begin(), work_.end(), 0.0f);
}

void true_peak_interpolator::process(const float* in, float* peak_out, std::size_t frames) noexcept {
  const std::size_t phase_len = taps_per_phase_ + 1;
  const std::size_t hist = phase_len - 1;
  const int factor = factor_;
  const float* coeffs = coeffs_.data();
  // Phase 0's output is exactly the delayed input (the sinc vanishes at every other integer), so
  // it is read directly; phases 1..factor-1 are computed.
  while (frames > 0) {
    const std::size_t n = std::min(frames, chunk_frames);
    float* w = work_.data();
    std::copy(in, in + n, w + hist);
    const float* centre = w + hist - taps_per_phase_ / 2;
    for (std::size_t i = 0; i < n; ++i) peak_out[i] = std::abs(centre[i]);
    for (int p = 1; p < factor; ++p) {
      phase_peaks(coeffs + static_cast<std::size_t>(p) * phase_len, phase_len, w, peak_out, n);
    }
    std::copy(w + n, w + n + hist, w);
    in += n;
    peak_out += n;
    frames -= n;
  }
}

true_peak_meter::true_peak_meter(double sample_rate_hz, int channels) : peaks_(1024) {
  LATHE_EXPECTS(channels >= 1 && channels <= 8, "true_peak_meter channel count out of range");
  tp_.resize(static_cast<std::size_t>(channels));
  for (true_peak_interpolator& t : tp_) t.prepare(sample_rate_hz);
}

void true_peak_meter::run(true_peak_interpolator& t, const float* x, std::size_t n) noexcept {
  for (std::size_t pos = 0; pos < n; pos += peaks_.size()) {
    const std::size_t m = std::min(peaks_.size(), n - pos);
    t.process(x + pos, peaks_.data(), m);
    best_ = std::max(best_, *std::max_element(peaks_.begin(), peaks_.begin() + static_cast<std::ptrdiff_t>(m)));
  }
}

void true_peak_meter::add(const float* const* channels, std::size_t frames) noexcept {
  for (std::size_t c = 0; c < tp_.size(); ++c) run(tp_[c], channels[c], frames);
}

float true_peak_meter::finish() {
  for (true_peak_interpolator& t : tp_) {
    const std::vector<float> tail(t.latency_frames() + 1, 0.0f);
    run(t, tail.data(), tail.size());
  }
  return best_;
}

float true_peak_of(const float* channel, std::size_t frames, double sample_rate_hz) {
  true_peak_meter m(sample_rate_hz, 1);
  m.add(&channel, frames);
  return m.finish();
}

}  // namespace lathe
