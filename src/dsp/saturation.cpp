#include "lathe/saturation.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lathe/error.hpp"
#include "lathe/kaiser.hpp"

namespace lathe {
namespace {

constexpr double pi = 3.14159265358979323846;

// One 2x stage's zero-phase prototype h[0..c] (h[-k] = h[k]) at the stage's high rate: a
// Kaiser-windowed sinc with cutoff fc (cycles per sample) and the length that Kaiser's estimate
// gives for `transition` (cycles per sample) and attenuation a_db (Oppenheim & Schafer 7.62-63).
// A half-band (fc = 1/4) gets an odd c, so its outermost taps are non-zero.
std::vector<double> kaiser_prototype(double fc, double transition, double a_db, bool half_band) {
  const double beta = kaiser::beta_for(a_db);
  const double order = std::ceil((a_db - 7.95) / (14.36 * transition));
  auto c = static_cast<std::size_t>(std::ceil(0.5 * order));
  if (half_band && c % 2 == 0) ++c;
  const double i0_beta = kaiser::bessel_i0(beta);
  std::vector<double> h(c + 1);
  for (std::size_t k = 0; k <= c; ++k) {
    const double x = static_cast<double>(k) / static_cast<double>(c);
    const double w = kaiser::window(x, beta, i0_beta);
    const double arg = 2.0 * fc * static_cast<double>(k);
    h[k] = 2.0 * fc * (k == 0 ? 1.0 : std::sin(pi * arg) / (pi * arg)) * w;
  }
  if (half_band) {
    // Exact zeros at even k and h[0] = 1/2 (the sinc's zeros are not exact in float64), the
    // odd taps scaled to sum to 1/2: unity DC gain, and the interpolator's even phase is a copy.
    double odd_sum = 0.0;
    for (std::size_t k = c; k >= 1 && k <= c; k -= 2) odd_sum += 2.0 * h[k];  // smallest first (c is odd)
    for (std::size_t k = 1; k <= c; ++k) h[k] = k % 2 == 1 ? h[k] * 0.5 / odd_sum : 0.0;
    h[0] = 0.5;
  } else {
    double sum = 0.0;
    for (std::size_t k = c; k >= 1; --k) sum += 2.0 * h[k];
    sum += h[0];
    for (double& v : h) v /= sum;
  }
  return h;
}

// out[i] = sum_t coeff[t] * src[t][i] for i < n: per output one float accumulator from +0 in
// ascending t (the order the GPU kernel uses), vectorized across outputs in register tiles.
void tap_sum(const float* const* src, const float* coeff, std::size_t taps, float* out, std::size_t n) noexcept {
  constexpr std::size_t tile = 16;
  std::size_t i0 = 0;
  for (; i0 + tile <= n; i0 += tile) {
    float acc[tile] = {};
    for (std::size_t t = 0; t < taps; ++t) {
      const float c = coeff[t];
      const float* s = src[t] + i0;
      for (std::size_t k = 0; k < tile; ++k) acc[k] += c * s[k];
    }
    std::memcpy(out + i0, acc, sizeof acc);
  }
  for (; i0 < n; ++i0) {
    float acc = 0.0f;
    for (std::size_t t = 0; t < taps; ++t) acc += coeff[t] * src[t][i0];
    out[i0] = acc;
  }
}

}  // namespace

saturation_design design_saturation(const saturation_params& p) {
  LATHE_EXPECTS(std::isfinite(p.drive_db) && p.drive_db >= -24.0 && p.drive_db <= 36.0,
                "saturation drive_db must be in [-24, 36]");
  LATHE_EXPECTS(std::isfinite(p.output_db) && p.output_db >= -48.0 && p.output_db <= 24.0,
                "saturation output_db must be in [-48, 24]");
  LATHE_EXPECTS(p.mix >= 0.0 && p.mix <= 1.0, "saturation mix must be in [0, 1]");
  LATHE_EXPECTS(
      p.oversampling >= 1 && p.oversampling <= 16 && std::has_single_bit(static_cast<unsigned>(p.oversampling)),
      "saturation oversampling must be 1, 2, 4, 8 or 16 (a cascade of 2x stages)");
  LATHE_EXPECTS(p.filter_attenuation_db >= 21.0 && p.filter_attenuation_db <= 250.0,
                "saturation filter_attenuation_db must be in [21, 250]");
  saturation_design d;
  d.factor = static_cast<std::size_t>(p.oversampling);
  d.drive = static_cast<float>(std::pow(10.0, p.drive_db / 20.0));
  d.trim = static_cast<float>(std::pow(10.0, p.output_db / 20.0));
  d.wet = static_cast<float>(p.mix);
  d.dry = static_cast<float>(1.0 - p.mix);
  const auto stages = static_cast<std::size_t>(std::countr_zero(d.factor));
  constexpr double passband_end = 0.91;  // of the original Nyquist

  // Prototypes. Frequencies in cycles per sample of the stage's high rate 2^(s+1) fs.
  std::vector<std::vector<double>> h(stages);
  for (std::size_t s = 0; s < stages; ++s) {
    const double high = std::ldexp(1.0, static_cast<int>(s + 1));  // in units of fs
    if (s == 0) {
      const double fp = passband_end * 0.5 / high, fs = 0.5 / high;
      h[s] = kaiser_prototype(0.5 * (fp + fs), fs - fp, p.filter_attenuation_db, false);
    } else {
      const double fp = 0.5 / high, fs = 0.5 - 0.5 / high;  // keep [0, fs/2]; reject its mirror
      h[s] = kaiser_prototype(0.25, fs - fp, p.filter_attenuation_db, true);
    }
  }

  // Delays of the causal cascade, in samples of each level (level s runs at 2^s fs). Going up,
  // interpolation s delays by c_s at level s+1: x_{s+1}[m] is the zero-phase result at m - o_{s+1}.
  // Coming down, decimation s emits output i once u_{s+1}[2i + 1] exists, so its zero-phase
  // window centre 2(i - o'_s) + o'_{s+1} must stay c_s - 1 behind that: o'_s = floor((c_s +
  // o'_{s+1}) / 2), and the window is centred beta_s = 2 o'_s - o'_{s+1} samples back.
  std::vector<std::int64_t> o_up(stages + 1, 0), o_down(stages + 1, 0);
  for (std::size_t s = 0; s < stages; ++s) o_up[s + 1] = 2 * o_up[s] + static_cast<std::int64_t>(h[s].size() - 1);
  o_down[stages] = o_up[stages];
  for (std::size_t s = stages; s-- > 0;) o_down[s] = (static_cast<std::int64_t>(h[s].size() - 1) + o_down[s + 1]) / 2;
  d.latency_frames = static_cast<std::size_t>(o_down[0]);

  for (std::size_t s = 0; s < stages; ++s) {
    saturation_oversampling_stage st;
    const auto c = static_cast<std::int64_t>(h[s].size() - 1);
    st.half_taps = static_cast<std::size_t>(c);
    st.half_band = s > 0;
    auto tap = [&](std::int64_t k) { return h[s][static_cast<std::size_t>(k < 0 ? -k : k)]; };
    // Interpolation phase r: x_{s+1}[2j + r] takes x_s[j + (r - c - k) / 2] for k of that parity.
    for (int r = 0; r < 2; ++r) {
      for (std::int64_t k = c; k >= -c; --k) {  // ascending position
        if (((r - c - k) & 1) != 0 || tap(k) == 0.0) continue;
        st.up[r].pos.push_back(static_cast<std::int32_t>((r - c - k) / 2));
        st.up[r].coeff.push_back(static_cast<float>(2.0 * tap(k)));
      }
    }
    const std::int64_t beta = 2 * o_down[s] - o_down[s + 1];
    for (std::int64_t k = c; k >= -c; --k) {
      if (tap(k) == 0.0) continue;
      st.down.pos.push_back(static_cast<std::int32_t>(-beta - k));
      st.down.coeff.push_back(static_cast<float>(tap(k)));
    }
    d.stages.push_back(std::move(st));
  }
  return d;
}

std::size_t saturation_stage::up_taps() const noexcept {
  return design_.stages.empty() ? 1 : design_.stages[0].up[0].size();
}

std::size_t saturation_stage::down_taps() const noexcept {
  return design_.stages.empty() ? 1 : design_.stages[0].down.size();
}

void saturation_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.max_block_frames > 0, "max_block_frames must be positive");
  design_ = design_saturation(params_);
  channels_ = spec.channels;
  max_block_ = spec.max_block_frames;
  const std::size_t stages = design_.stages.size();
  levels_.assign(stages, level{});
  std::size_t max_taps = 1, max_split = 0;
  for (std::size_t s = 0; s < stages; ++s) {
    const saturation_oversampling_stage& st = design_.stages[s];
    const auto reach = static_cast<std::size_t>(-std::min(st.up[0].min_pos(), st.up[1].min_pos()));
    levels_[s].x_hist = s == 0 ? std::max(reach, design_.latency_frames) : reach;  // x_0 also feeds the dry path
    const auto back = static_cast<std::size_t>(-st.down.min_pos());
    levels_[s].u_hist = back + (back & 1);  // even, so the parity split lines up with the new samples
    max_taps = std::max({max_taps, st.up[0].size(), st.up[1].size(), st.down.size()});
    max_split = std::max(max_split, (levels_[s].u_hist + (max_block_ << (s + 1))) / 2);
  }
  x_.assign(static_cast<std::size_t>(channels_), {});
  u_.assign(static_cast<std::size_t>(channels_), {});
  for (auto& per_stage : x_) {
    for (std::size_t s = 0; s < stages; ++s) per_stage.emplace_back(levels_[s].x_hist + (max_block_ << s), 0.0f);
  }
  for (auto& per_stage : u_) {
    for (std::size_t s = 0; s < stages; ++s) per_stage.emplace_back(levels_[s].u_hist + (max_block_ << (s + 1)), 0.0f);
  }
  const std::size_t top_inputs = stages ? max_block_ << (stages - 1) : 0;
  for (auto& ph : phase_) ph.assign(top_inputs, 0.0f);
  even_.assign(max_split, 0.0f);
  odd_.assign(max_split, 0.0f);
  wet_.assign(max_block_, 0.0f);
  srcs_.assign(max_taps, nullptr);
}

void saturation_stage::reset() noexcept {
  for (auto& per_stage : x_)
    for (auto& v : per_stage) std::fill(v.begin(), v.end(), 0.0f);
  for (auto& per_stage : u_)
    for (auto& v : per_stage) std::fill(v.begin(), v.end(), 0.0f);
}

void saturation_stage::process_channel(int c, const float* in, float* out, std::size_t n) noexcept {
  const saturation_design& d = design_;
  const float drive = d.drive, trim = d.trim, wet = d.wet, dry = d.dry;
  const std::size_t stages = d.stages.size();
  if (stages == 0) {
    for (std::size_t i = 0; i < n; ++i) {
      const float x = in[i];
      out[i] = wet * saturation_shape(x, drive, trim) + dry * x;
    }
    return;
  }
  auto& xs = x_[static_cast<std::size_t>(c)];
  auto& us = u_[static_cast<std::size_t>(c)];
  std::memcpy(xs[0].data() + levels_[0].x_hist, in, n * sizeof(float));  // before out is written (in place)

  // Up: each stage writes its two phases, then interleaves them into the next level.
  for (std::size_t s = 0; s < stages; ++s) {
    const saturation_oversampling_stage& st = d.stages[s];
    const std::size_t ns = n << s;
    const float* x = xs[s].data() + levels_[s].x_hist;  // x_s[J], the first new sample
    for (int r = 0; r < 2; ++r) {
      const saturation_taps& taps = st.up[r];
      for (std::size_t t = 0; t < taps.size(); ++t) srcs_[t] = x + taps.pos[t];
      tap_sum(srcs_.data(), taps.coeff.data(), taps.size(), phase_[r].data(), ns);
    }
    float* dst =
        s + 1 < stages ? xs[s + 1].data() + levels_[s + 1].x_hist : us[stages - 1].data() + levels_[stages - 1].u_hist;
    const float* p0 = phase_[0].data();
    const float* p1 = phase_[1].data();
    for (std::size_t j = 0; j < ns; ++j) {
      dst[2 * j] = p0[j];
      dst[2 * j + 1] = p1[j];
    }
  }
  // Shape the top level in place.
  {
    float* top = us[stages - 1].data() + levels_[stages - 1].u_hist;
    const std::size_t m = n << stages;
    for (std::size_t k = 0; k < m; ++k) top[k] = saturation_shape(top[k], drive, trim);
  }
  // Down: split each level by sample parity so every tap reads a contiguous stream.
  for (std::size_t s = stages; s-- > 0;) {
    const saturation_oversampling_stage& st = d.stages[s];
    const std::size_t no = n << s;
    const std::size_t h = levels_[s].u_hist;
    const float* u = us[s].data();
    const std::size_t half = (h + 2 * no) / 2;
    float* ev = even_.data();
    float* od = odd_.data();
    for (std::size_t q = 0; q < half; ++q) {
      ev[q] = u[2 * q];
      od[q] = u[2 * q + 1];
    }
    // Output i (relative to this block) reads u[h + 2i + pos].
    for (std::size_t t = 0; t < st.down.size(); ++t) {
      const auto off = static_cast<std::size_t>(static_cast<std::int64_t>(h) + st.down.pos[t]);
      srcs_[t] = (off & 1) ? od + (off - 1) / 2 : ev + off / 2;
    }
    float* dst = s > 0 ? us[s - 1].data() + levels_[s - 1].u_hist : wet_.data();
    tap_sum(srcs_.data(), st.down.coeff.data(), st.down.size(), dst, no);
  }
  const float* dry_x = xs[0].data() + levels_[0].x_hist - d.latency_frames;
  const float* w = wet_.data();
  for (std::size_t i = 0; i < n; ++i) out[i] = wet * w[i] + dry * dry_x[i];

  // Keep each level's history for the next block.
  for (std::size_t s = 0; s < stages; ++s) {
    std::vector<float>& xv = xs[s];
    std::memmove(xv.data(), xv.data() + (n << s), levels_[s].x_hist * sizeof(float));
    std::vector<float>& uv = us[s];
    std::memmove(uv.data(), uv.data() + (n << (s + 1)), levels_[s].u_hist * sizeof(float));
  }
}

void saturation_stage::process(const_block_view in, block_view out) noexcept {
  for (int c = 0; c < in.channels; ++c) process_channel(c, in[c], out[c], in.frames);
}

}  // namespace lathe
