#include "lathe/dither.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "lathe/error.hpp"

namespace lathe {
namespace {

constexpr std::uint64_t golden_gamma = 0x9E3779B97F4A7C15ull;  // SplitMix64's increment

constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The (seed, channel, substream) part of dither_uniform, hoisted out of the per-frame loop.
constexpr std::uint64_t stream_key(std::uint64_t seed, int channel, int substream) noexcept {
  const std::uint64_t stream =
      (static_cast<std::uint64_t>(static_cast<std::uint32_t>(channel)) << 32) | static_cast<std::uint32_t>(substream);
  return mix64(seed ^ mix64(stream + golden_gamma));
}

inline double uniform_from_key(std::uint64_t key, std::uint64_t frame) noexcept {
  return static_cast<double>(mix64(key + (frame + 1) * golden_gamma) >> 11) * 0x1.0p-53;
}

// Wannamaker's 9-tap F-weighted error-feedback filter (R. A. Wannamaker, "Psychoacoustically
// optimal noise shaping", JAES 40(7/8), 1992), as tabulated in SoX's dither effect (fwe44,
// used for 46 kHz +-5%, i.e. 44.1 and 48 kHz) with the same sign convention (d -= c_k e[n-k]).
constexpr std::array<double, 9> f_weighted_44k = {2.412, -3.370, 3.937, -4.174, 3.353, -2.205, 1.281, -0.569, 0.0847};

bool f_weighted_rate(double sample_rate_hz) {
  return std::abs(sample_rate_hz - 46'000.0) <= 0.05 * 46'000.0;
}

struct channel_job {
  const float* in;
  std::size_t frames;
  std::size_t stride;  // channels, for the interleaved output
  std::int32_t* out;
  double scale;   // 2^(b-1)
  double lo, hi;  // integer range
  std::uint64_t key0, key1;
  std::uint64_t first_frame;  // the dither counter of in[0]
  double* err;                // e[n-1-k] before in[0], updated to after the last frame
};

// Order: shaper length (0, 1 or 9), resolved once per channel so the loop has no mode branches.
template <std::size_t Order, bool Dither>
std::size_t quantize_channel(const channel_job& job, const double* coeffs) noexcept {
  std::array<double, Order == 0 ? 1 : Order> err{};  // err[k] = e[n-1-k]
  for (std::size_t k = 0; k < Order; ++k) err[k] = job.err[k];
  std::size_t clipped = 0;
  for (std::size_t n = 0; n < job.frames; ++n) {
    double w = static_cast<double>(job.in[n]) * job.scale;
    for (std::size_t k = 0; k < Order; ++k) w -= coeffs[k] * err[k];
    double t = 0.0;
    if constexpr (Dither) {
      const std::uint64_t frame = job.first_frame + n;
      t = (uniform_from_key(job.key0, frame) - 0.5) + (uniform_from_key(job.key1, frame) - 0.5);
    }
    double q = std::nearbyint(w + t);
    if constexpr (Order > 0) {
      for (std::size_t k = Order - 1; k > 0; --k) err[k] = err[k - 1];
      err[0] = q - w;
    }
    if (q < job.lo) {
      q = job.lo;
      ++clipped;
    } else if (q > job.hi) {
      q = job.hi;
      ++clipped;
    }
    job.out[n * job.stride] = static_cast<std::int32_t>(q);
  }
  for (std::size_t k = 0; k < Order; ++k) job.err[k] = err[k];
  return clipped;
}

template <bool Dither>
std::size_t quantize_channel_any(const channel_job& job, const std::vector<double>& coeffs) noexcept {
  switch (coeffs.size()) {
    case 0:
      return quantize_channel<0, Dither>(job, coeffs.data());
    case 1:
      return quantize_channel<1, Dither>(job, coeffs.data());
    default:
      return quantize_channel<f_weighted_44k.size(), Dither>(job, coeffs.data());
  }
}

}  // namespace

bool parse_noise_shaping(const std::string& name, noise_shaping& out) {
  if (name == "none") {
    out = noise_shaping::none;
  } else if (name == "first_order" || name == "first-order") {
    out = noise_shaping::first_order;
  } else if (name == "f_weighted" || name == "f-weighted") {
    out = noise_shaping::f_weighted;
  } else {
    return false;
  }
  return true;
}

const char* to_string(noise_shaping s) noexcept {
  switch (s) {
    case noise_shaping::none:
      return "none";
    case noise_shaping::first_order:
      return "first_order";
    case noise_shaping::f_weighted:
      return "f_weighted";
  }
  return "unknown";
}

double dither_uniform(std::uint64_t seed, int channel, std::uint64_t frame, int substream) noexcept {
  return uniform_from_key(stream_key(seed, channel, substream), frame);
}

std::vector<double> noise_shaping_coefficients(noise_shaping shaping, double sample_rate_hz) {
  switch (shaping) {
    case noise_shaping::none:
      return {};
    case noise_shaping::first_order:
      return {1.0};  // NTF 1 - z^-1: |NTF|^2 = 4 sin^2(pi f/fs)
    case noise_shaping::f_weighted:
      if (f_weighted_rate(sample_rate_hz)) return {f_weighted_44k.begin(), f_weighted_44k.end()};
      return {1.0};  // the filter is only valid near 44.1/48 kHz
  }
  return {};
}

quantizer::quantizer(const quantize_params& params, int channels)
    : channels_(channels), dither_(params.dither), scale_(std::ldexp(1.0, params.bit_depth - 1)) {
  LATHE_EXPECTS(params.bit_depth >= 8 && params.bit_depth <= 24, "bit_depth must lie in [8, 24]");
  LATHE_EXPECTS(params.shaping != noise_shaping::f_weighted || params.sample_rate_hz > 0.0,
                "f_weighted noise shaping needs quantize_params::sample_rate_hz");
  LATHE_EXPECTS(channels >= 0 && channels <= max_channels, "the quantizer takes 0 to 8 channels");
  coeffs_ = noise_shaping_coefficients(params.shaping, params.sample_rate_hz);
  static_assert(f_weighted_44k.size() == max_order);
  for (int c = 0; c < channels; ++c) {
    keys_[static_cast<std::size_t>(c)] = {stream_key(params.seed, c, 0), stream_key(params.seed, c, 1)};
  }
}

void quantizer::reset() noexcept {
  for (auto& e : err_) e.fill(0.0);
  frame_ = 0;
  stats_ = {};
}

void quantizer::process(const_block_view in, std::span<std::int32_t> out) noexcept {
  for (int c = 0; c < channels_; ++c) {
    const auto i = static_cast<std::size_t>(c);
    const channel_job job{in[c],          in.frames,     static_cast<std::size_t>(channels_),
                          out.data() + c, scale_,        -scale_,
                          scale_ - 1.0,   keys_[i][0],   keys_[i][1],
                          frame_,         err_[i].data()};
    stats_.clipped_samples +=
        dither_ ? quantize_channel_any<true>(job, coeffs_) : quantize_channel_any<false>(job, coeffs_);
  }
  frame_ += in.frames;
}

quantize_stats quantize(const audio_buffer& in, const quantize_params& params, std::vector<std::int32_t>& out) {
  quantizer q(params, in.channels());
  out.assign(static_cast<std::size_t>(in.channels()) * in.frames(), 0);
  q.process(in.view(), out);
  return q.stats();
}

}  // namespace lathe
