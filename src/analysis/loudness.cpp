#include "lathe/loudness.hpp"

#include <algorithm>
#include <cmath>

#include "lathe/error.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <xmmintrin.h>
#define LATHE_HAVE_MXCSR 1
#endif

namespace lathe {
namespace {

// BS.1770 analog prototype, as libebur128 derives it from the 48 kHz table.
constexpr double shelf_f0_hz = 1681.974450955533;
constexpr double shelf_gain_db = 3.999843853973347;
constexpr double shelf_q = 0.7071752369554196;
constexpr double highpass_f0_hz = 38.13547087602444;
constexpr double highpass_q = 0.5003270373238773;

constexpr double lufs_offset_db = -0.691;
constexpr double relative_gate_db = -10.0;      // BS.1770-4 integrated
constexpr double lra_relative_gate_db = -20.0;  // Tech 3342
constexpr double lra_low_percentile = 0.10;
constexpr double lra_high_percentile = 0.95;

// -70 LUFS as an energy, computed like libebur128 so block gating agrees at the boundary.
double absolute_gate_energy() noexcept {
  static const double e = std::pow(10.0, (-70.0 - lufs_offset_db) / 10.0);
  return e;
}

// Flushes denormals to zero while the K-weighting recursions run: the 38 Hz high-pass decays into
// denormals within seconds of digital silence, where x86 arithmetic is ~100x slower. Only values
// below 2^-1022 are affected, so results are unchanged. Restores the caller's mode.
class denormal_guard {
 public:
#if LATHE_HAVE_MXCSR
  denormal_guard() noexcept : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | 0x8040u);
  }  // FTZ | DAZ
  ~denormal_guard() {
    _mm_setcsr(saved_);
  }

 private:
  unsigned int saved_;
#endif
};

}  // namespace

double energy_to_lufs(double energy) noexcept {
  if (!(energy > 0.0)) return silence_lufs;
  return lufs_offset_db + 10.0 * std::log10(energy);
}

k_weighting_coeffs design_k_weighting(double sample_rate_hz) {
  LATHE_EXPECTS(sample_rate_hz > 2.0 * shelf_f0_hz, "K-weighting needs a sample rate above 3364 Hz");
  k_weighting_coeffs k;
  {
    const double kk = std::tan(M_PI * shelf_f0_hz / sample_rate_hz);
    const double vh = std::pow(10.0, shelf_gain_db / 20.0);
    const double vb = std::pow(vh, 0.4996667741545416);
    const double a0 = 1.0 + kk / shelf_q + kk * kk;
    k.shelf.b0 = (vh + vb * kk / shelf_q + kk * kk) / a0;
    k.shelf.b1 = 2.0 * (kk * kk - vh) / a0;
    k.shelf.b2 = (vh - vb * kk / shelf_q + kk * kk) / a0;
    k.shelf.a1 = 2.0 * (kk * kk - 1.0) / a0;
    k.shelf.a2 = (1.0 - kk / shelf_q + kk * kk) / a0;
  }
  {
    const double kk = std::tan(M_PI * highpass_f0_hz / sample_rate_hz);
    const double a0 = 1.0 + kk / highpass_q + kk * kk;
    // Numerator 1, -2, 1 unnormalized, as in BS.1770's table and libebur128 (passband gain a0,
    // +0.04 dB at 48 kHz, is part of the standard's calibration).
    k.highpass.b0 = 1.0;
    k.highpass.b1 = -2.0;
    k.highpass.b2 = 1.0;
    k.highpass.a1 = 2.0 * (kk * kk - 1.0) / a0;
    k.highpass.a2 = (1.0 - kk / highpass_q + kk * kk) / a0;
  }
  return k;
}

// ---- loudness_blocks ---------------------------------------------------------------------------

void loudness_blocks::merge(const loudness_blocks& other) {
  momentary_energy.insert(momentary_energy.end(), other.momentary_energy.begin(), other.momentary_energy.end());
  short_term_energy.insert(short_term_energy.end(), other.short_term_energy.begin(), other.short_term_energy.end());
}

double loudness_blocks::integrated_lufs() const {
  const double abs_gate = absolute_gate_energy();
  double sum = 0.0;
  std::size_t count = 0;
  for (const double z : momentary_energy) {
    if (z >= abs_gate) {
      sum += z;
      ++count;
    }
  }
  if (count == 0) return silence_lufs;
  const double rel_gate = sum / static_cast<double>(count) * std::pow(10.0, relative_gate_db / 10.0);
  sum = 0.0;
  count = 0;
  for (const double z : momentary_energy) {
    if (z >= abs_gate && z >= rel_gate) {
      sum += z;
      ++count;
    }
  }
  if (count == 0) return silence_lufs;
  return energy_to_lufs(sum / static_cast<double>(count));
}

double loudness_blocks::loudness_range_lu() const {
  const double abs_gate = absolute_gate_energy();
  std::vector<double> gated;
  gated.reserve(short_term_energy.size());
  for (const double z : short_term_energy) {
    if (z >= abs_gate) gated.push_back(z);
  }
  if (gated.empty()) return 0.0;
  std::sort(gated.begin(), gated.end());
  // Summed in sorted order, as libebur128 does, so both give the same relative gate to the ulp.
  double sum = 0.0;
  for (const double z : gated) sum += z;
  const double rel_gate = sum / static_cast<double>(gated.size()) * std::pow(10.0, lra_relative_gate_db / 10.0);
  const auto first = std::lower_bound(gated.begin(), gated.end(), rel_gate);
  const auto n = static_cast<std::size_t>(gated.end() - first);
  if (n == 0) return 0.0;
  // Nearest-rank percentiles on the sorted, gated list: index round((n - 1) p), the EBU reference
  // code's and libebur128's definition.
  const auto rank = [n](double p) { return static_cast<std::size_t>(static_cast<double>(n - 1) * p + 0.5); };
  const double low = first[static_cast<std::ptrdiff_t>(rank(lra_low_percentile))];
  const double high = first[static_cast<std::ptrdiff_t>(rank(lra_high_percentile))];
  return energy_to_lufs(high) - energy_to_lufs(low);
}

// ---- loudness_meter ----------------------------------------------------------------------------

void loudness_meter::prepare(double sample_rate_hz, int channels, std::span<const double> channel_weights) {
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "loudness meter takes 1 to 8 channels");
  LATHE_EXPECTS(channel_weights.empty() || channel_weights.size() == static_cast<std::size_t>(channels),
                "channel_weights must be empty or have one weight per channel");
  const k_weighting_coeffs k = design_k_weighting(sample_rate_hz);
  sample_rate_hz_ = sample_rate_hz;
  channels_ = channels;
  weights_.fill(0.0);
  for (int c = 0; c < channels; ++c) {
    const auto i = static_cast<std::size_t>(c);
    if (!channel_weights.empty()) {
      LATHE_EXPECTS(channel_weights[i] >= 0.0 && std::isfinite(channel_weights[i]),
                    "channel weights must be finite and non-negative");
      weights_[i] = channel_weights[i];
    } else {
      // BS.1770: +1.5 dB (x1.41) on the surrounds of L R C Ls Rs.
      weights_[i] = (channels == 5 && c >= 3) ? 1.41 : 1.0;
    }
    k_[i].shelf = k.shelf;
    k_[i].highpass = k.highpass;
  }
  // 100 ms rounded as libebur128 does, so block boundaries coincide with its blocks.
  sub_block_frames_ = static_cast<std::size_t>(std::llround(sample_rate_hz / 10.0));
  for (std::size_t t = 0; t < ticks_per_sub_block; ++t) {
    tick_end_[t] = (t + 1) * sub_block_frames_ / ticks_per_sub_block;
  }
  ticks_.assign(short_term_ticks, 0.0);
  blocks_.momentary_energy.reserve(8192);
  blocks_.short_term_energy.reserve(8192);
  reset();
}

void loudness_meter::reset() {
  for (int c = 0; c < max_channels; ++c) {
    k_[static_cast<std::size_t>(c)].x.fill(0.0);
  }
  tick_sum_.fill(0.0);
  tick_index_ = 0;
  sub_block_fill_ = 0;
  std::fill(ticks_.begin(), ticks_.end(), 0.0);
  ticks_seen_ = 0;
  momentary_energy_ = short_term_energy_ = 0.0;
  max_momentary_energy_ = max_short_term_energy_ = 0.0;
  blocks_.momentary_energy.clear();
  blocks_.short_term_energy.clear();
}

namespace {

// One K-weighting section in direct form I, its state in float64: y = b0 x + b1 x1 + b2 x2
// - a2 y2 - a1 y1, summed in that order so the recursion's critical path is one multiply and one
// subtract per sample (the transposed form's is twice that); the state is the biquad's,
// converted at entry and exit. T is double, or vec2 for two channels in one SSE2 register (each
// lane's arithmetic is then the scalar section's, so the lanes give exactly its results).
typedef double vec2 __attribute__((vector_size(16)));

template <class T>
struct df1_section {
  T b0, b1, b2, a1, a2;
  T x1{}, x2{}, y1{}, y2{};
  T tick(T x) noexcept {
    const T y = (((b0 * x + b1 * x1) + b2 * x2) - a2 * y2) - a1 * y1;
    x2 = x1;
    x1 = x;
    y2 = y1;
    y1 = y;
    return y;
  }
};

struct df1 : df1_section<double> {
  explicit df1(const biquad_coeffs& c) noexcept : df1_section<double>{c.b0, c.b1, c.b2, c.a1, c.a2} {}
};

// The K-weighting of one channel (shelf, then RLB high-pass) in direct form I.
struct k_chain {
  df1 pre, rlb;
  explicit k_chain(const k_weighting_state& s) noexcept : pre(s.shelf), rlb(s.highpass) {
    pre.x1 = s.x[0], pre.x2 = s.x[1], pre.y1 = s.x[2], pre.y2 = s.x[3];
    rlb.x1 = s.x[2], rlb.x2 = s.x[3], rlb.y1 = s.x[4], rlb.y2 = s.x[5];
  }
  void store(k_weighting_state& s) const noexcept { s.x = {pre.x1, pre.x2, pre.y1, pre.y2, rlb.y1, rlb.y2}; }
  double tick(double x) noexcept { return rlb.tick(pre.tick(x)); }
};

// K-weights `frames` samples of one or two channels and adds their squares to running sums. Two
// channels share one loop so their four recursions overlap in the pipeline (each alone is bound by
// its own latency). Each channel's sum grows sample by sample in order, so the result does not
// depend on how the stream was split into blocks.
template <bool keep_energy>
inline void k_weight_one(const float* x, std::size_t n, k_weighting_state& st, double& sum, double w,
                         float* energy) noexcept {
  k_chain k(st);
  double s = sum;
  for (std::size_t i = 0; i < n; ++i) {
    const double y = k.tick(x[i]);
    s += y * y;
    if constexpr (keep_energy) energy[i] += static_cast<float>(w * (y * y));
  }
  k.store(st);
  sum = s;
}

// A stereo pair's sections side by side in vector lanes.
struct df1x2 : df1_section<vec2> {
  df1x2(const df1& l, const df1& r) noexcept
      : df1_section<vec2>{{l.b0, r.b0}, {l.b1, r.b1}, {l.b2, r.b2}, {l.a1, r.a1}, {l.a2, r.a2},
                          {l.x1, r.x1}, {l.x2, r.x2}, {l.y1, r.y1}, {l.y2, r.y2}} {}
  void store(df1& l, df1& r) const noexcept {
    l.x1 = x1[0], l.x2 = x2[0], l.y1 = y1[0], l.y2 = y2[0];
    r.x1 = x1[1], r.x2 = x2[1], r.y1 = y1[1], r.y2 = y2[1];
  }
};

template <bool keep_energy>
inline void k_weight_two(const float* x0, const float* x1, std::size_t n, k_weighting_state& st0,
                         k_weighting_state& st1, double& sum0, double& sum1, double w0, double w1,
                         float* energy) noexcept {
  k_chain k0(st0), k1(st1);
  df1x2 pre(k0.pre, k1.pre), rlb(k0.rlb, k1.rlb);
  vec2 s{sum0, sum1};
  const vec2 w{w0, w1};
  for (std::size_t i = 0; i < n; ++i) {
    const vec2 y = rlb.tick(pre.tick(vec2{static_cast<double>(x0[i]), static_cast<double>(x1[i])}));
    const vec2 y2 = y * y;
    s += y2;
    if constexpr (keep_energy) {
      const vec2 e = w * y2;
      energy[i] += static_cast<float>(e[0] + e[1]);
    }
  }
  pre.store(k0.pre, k1.pre);
  rlb.store(k0.rlb, k1.rlb);
  k0.store(st0);
  k1.store(st1);
  sum0 = s[0];
  sum1 = s[1];
}

}  // namespace

void loudness_meter::run_filters(const_block_view in, std::size_t offset, std::size_t frames,
                                 float* frame_energy) noexcept {
  if (frame_energy != nullptr) std::fill_n(frame_energy, frames, 0.0f);
  int c = 0;
  for (; c + 1 < channels_; c += 2) {
    const auto a = static_cast<std::size_t>(c), b = a + 1;
    if (frame_energy != nullptr) {
      k_weight_two<true>(in[c] + offset, in[c + 1] + offset, frames, k_[a], k_[b], tick_sum_[a], tick_sum_[b],
                         weights_[a], weights_[b], frame_energy);
    } else {
      k_weight_two<false>(in[c] + offset, in[c + 1] + offset, frames, k_[a], k_[b], tick_sum_[a], tick_sum_[b], 0.0,
                          0.0, nullptr);
    }
  }
  if (c < channels_) {
    const auto a = static_cast<std::size_t>(c);
    if (frame_energy != nullptr)
      k_weight_one<true>(in[c] + offset, frames, k_[a], tick_sum_[a], weights_[a], frame_energy);
    else
      k_weight_one<false>(in[c] + offset, frames, k_[a], tick_sum_[a], 0.0, nullptr);
  }
}

void loudness_meter::process(const_block_view in) noexcept {
  process(in, nullptr);
}

void loudness_meter::process(const_block_view in, float* frame_energy) noexcept {
  const denormal_guard guard;
  std::size_t pos = 0;
  while (pos < in.frames) {
    const std::size_t end = tick_end_[tick_index_];
    const std::size_t n = std::min(in.frames - pos, end - sub_block_fill_);
    run_filters(in, pos, n, frame_energy != nullptr ? frame_energy + pos : nullptr);
    pos += n;
    sub_block_fill_ += n;
    if (sub_block_fill_ == end) finish_tick();
  }
}

void loudness_meter::add_energy(const double* energy, std::size_t frames) noexcept {
  std::size_t pos = 0;
  while (pos < frames) {
    const std::size_t end = tick_end_[tick_index_];
    const std::size_t n = std::min(frames - pos, end - sub_block_fill_);
    double s = tick_sum_[0];
    for (std::size_t i = 0; i < n; ++i) s += energy[pos + i];
    tick_sum_[0] = s;
    pos += n;
    sub_block_fill_ += n;
    if (sub_block_fill_ == end) finish_tick();
  }
}

double loudness_meter::window_energy(std::size_t ticks) const noexcept {
  // Summed oldest to newest over the ring: a fixed order, so equal input gives equal output.
  double sum = 0.0;
  std::size_t idx = (ticks_seen_ - ticks) % short_term_ticks;
  for (std::size_t j = 0; j < ticks; ++j) {
    sum += ticks_[idx];
    if (++idx == short_term_ticks) idx = 0;
  }
  const double frames = static_cast<double>(sub_block_frames_) * static_cast<double>(ticks / ticks_per_sub_block);
  return sum / frames;
}

void loudness_meter::finish_tick() noexcept {
  double e = 0.0;
  for (int c = 0; c < channels_; ++c) {
    const auto i = static_cast<std::size_t>(c);
    e += weights_[i] * tick_sum_[i];
    tick_sum_[i] = 0.0;
  }
  ticks_[ticks_seen_ % short_term_ticks] = e;
  ++ticks_seen_;
  if (ticks_seen_ >= momentary_ticks) {
    momentary_energy_ = window_energy(momentary_ticks);
    max_momentary_energy_ = std::max(max_momentary_energy_, momentary_energy_);
  }
  if (ticks_seen_ >= short_term_ticks) {
    short_term_energy_ = window_energy(short_term_ticks);
    max_short_term_energy_ = std::max(max_short_term_energy_, short_term_energy_);
  }
  if (++tick_index_ < ticks_per_sub_block) return;
  tick_index_ = 0;
  sub_block_fill_ = 0;
  // A whole 100 ms has passed: emit the gating block (400 ms, 75 % overlap) and the short-term
  // block (3 s, 10 Hz) that end here.
  if (ticks_seen_ >= momentary_ticks) blocks_.momentary_energy.push_back(momentary_energy_);
  if (ticks_seen_ >= short_term_ticks) blocks_.short_term_energy.push_back(short_term_energy_);
}

double loudness_meter::momentary_lufs() const noexcept {
  return ticks_seen_ >= momentary_ticks ? energy_to_lufs(momentary_energy_) : silence_lufs;
}
double loudness_meter::short_term_lufs() const noexcept {
  return ticks_seen_ >= short_term_ticks ? energy_to_lufs(short_term_energy_) : silence_lufs;
}
double loudness_meter::max_momentary_lufs() const noexcept {
  return energy_to_lufs(max_momentary_energy_);
}
double loudness_meter::max_short_term_lufs() const noexcept {
  return energy_to_lufs(max_short_term_energy_);
}

}  // namespace lathe
