#pragma once
// Deterministic test signals.
#include <cmath>
#include <cstdint>
#include <random>

#include "lathe/audio_buffer.hpp"

namespace lathe::test {

inline float db_to_amp(double db) {
  return static_cast<float>(std::pow(10.0, db / 20.0));
}

/// Sine of peak amplitude `peak_dbfs` on every channel.
inline audio_buffer sine(double freq_hz, double peak_dbfs, double seconds, double fs_hz, int channels = 2,
                         double phase_rad = 0.0) {
  const auto n = static_cast<std::size_t>(std::llround(seconds * fs_hz));
  audio_buffer b(channels, n);
  const double a = std::pow(10.0, peak_dbfs / 20.0);
  for (std::size_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(a * std::sin(2.0 * M_PI * freq_hz * static_cast<double>(i) / fs_hz + phase_rad));
    for (int c = 0; c < channels; ++c) b.channel(c)[i] = v;
  }
  return b;
}

/// Gaussian white noise with the given RMS in dBFS, independent per channel.
inline audio_buffer white_noise(double rms_dbfs, double seconds, double fs_hz, int channels = 2,
                                std::uint32_t seed = 1) {
  const auto n = static_cast<std::size_t>(std::llround(seconds * fs_hz));
  audio_buffer b(channels, n);
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, std::pow(10.0, rms_dbfs / 20.0));
  for (int c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < n; ++i) b.channel(c)[i] = static_cast<float>(g(rng));
  return b;
}

/// Amplitude of the f_hz component of x[first, last), by a least-squares fit of sin and cos
/// (exact for any window length, unlike an FFT bin).
inline double sine_amplitude(const float* x, std::size_t first, std::size_t last, double f_hz, double fs_hz) {
  double ss = 0, cc = 0, sc = 0, xs = 0, xc = 0;
  for (std::size_t i = first; i < last; ++i) {
    const double ph = 2.0 * M_PI * f_hz * static_cast<double>(i) / fs_hz;
    const double s = std::sin(ph), c = std::cos(ph);
    ss += s * s, cc += c * c, sc += s * c, xs += x[i] * s, xc += x[i] * c;
  }
  const double det = ss * cc - sc * sc;
  return std::hypot((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
}

/// Concatenates buffers of equal channel count.
inline audio_buffer concat(std::initializer_list<const audio_buffer*> parts) {
  std::size_t n = 0;
  int ch = 0;
  for (auto* p : parts) {
    n += p->frames();
    ch = p->channels();
  }
  audio_buffer out(ch, n);
  std::size_t pos = 0;
  for (auto* p : parts) {
    for (int c = 0; c < ch; ++c) std::copy(p->channel(c), p->channel(c) + p->frames(), out.channel(c) + pos);
    pos += p->frames();
  }
  return out;
}

}  // namespace lathe::test
