#include "lathe/limiter.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "lathe/error.hpp"

// Gain law (shared by offline_limiter and true_peak_limiter through detail::limiter_gain_law).
//
//   p_c[n]  max |x_c(t)| over the interpolated points t in [n, n+1) of two interpolators:
//           true_peak_interpolator (8x/4x Kaiser sinc) and libebur128's 49-tap Hann sinc.
//           Meters disagree by up to ~0.3 dB per peak on content near Nyquist (white noise,
//           hi-hats), and a limiter pins thousands of peaks at the ceiling of ITS filter, so the
//           other meter's maximum lands above it (measured: +0.22 dB with one detector). Detecting
//           with the max of both keeps the output under the ceiling on both meters.
//   d[n]    gain * max_c max(p_c[n-1], p_c[n], p_c[n+1])              (covers t in [n-1, n+2))
//   r[n]    min(1, c / d[n]),  c = 10^((ceiling_dbtp - margin_db)/20)
//   e[n]    min(r[n], e[n-1] + (1 - e[n-1]) * a),  a = 1 - exp(-1 / (release_ms fs/1000))
//   h[k]    min(e[k-L .. k])                                          (sliding minimum)
//   g[k]    mean(h[k-L .. k])                                         (moving average)
//   y[m]    x[m] * gain * g[m+L]                                      (output, aligned)
//
// Claim: g[m+L] <= e[m] <= r[m].  Proof: g[m+L] averages h[k] over k in [m, m+L]; each of those
// windows [k-L, k] contains m, so every h[k] <= e[m], and so does their mean.  The code keeps
// this exact in floating point: each h is rounded DOWN to a multiple of 2^-32 (int64 q), the
// window sum of q is exact integer arithmetic (no drift, no periodic recomputation needed), and
// sum / ((L+1) 2^32) is one correctly rounded division of a value <= the representable
// q(e[m]) 2^-32, so the rounded quotient cannot exceed it either (rounding is monotonic).
// When nothing is limited every e, h and q is exactly 1 (resp. 2^32) and the division returns
// exactly 1.0, so the output is bit-exactly x * gain.
//
// Consequence for the true peak: around frame m the applied gain is at most c / d[m], and d[m]
// bounds |x(t)| * gain over [m-1, m+2), so the gain-modulated output between samples m and
// m+1 stays under c up to the effect of the gain modulation (ramps spread over L+1 frames) on
// the reconstruction; margin_db covers that and the interpolators' ripple, and the tests check
// the result with two independent meters on hostile material (worst readings -1.044 dBTP on
// true_peak_of, -1.050 on libebur128 for a -1 dBTP ceiling). Not a target: an ideal (FFT,
// infinite-filter) reconstruction of full-band white noise reads up to ~1 dB above both meters,
// on the input as on the output, because every finite meter filter rolls off near Nyquist.
//
// Release: e approaches 1 geometrically and would stall a few ulps under 1.0 forever; within
// 2^-32 of unity (-2e-8 dB) it snaps to 1 so that g returns to exactly 1 and the bit-exact
// pass-through resumes (about 22 release time constants after the last reduction).

namespace lathe {
namespace {

constexpr double held_scale = 4294967296.0;  // 2^32: quantum of the held minimum
constexpr double release_snap = 1.0 - 1.0 / held_scale;

double db_to_gain(double db) {
  return std::pow(10.0, db / 20.0);
}

std::size_t lookahead_frames_for(const limiter_params& p, double sample_rate_hz) {
  return static_cast<std::size_t>(std::llround(p.lookahead_ms * sample_rate_hz / 1000.0));
}

/// The linked peak of one frame through the detector's 3-frame window.
struct window_peak {
  float prev1 = 0.0f, prev2 = 0.0f;
  float push(float linked) noexcept {
    const float w = std::max(std::max(prev2, prev1), linked);
    prev2 = prev1;
    prev1 = linked;
    return w;
  }
};

/// Accumulates limiter_stats over output frames in order (the same order in both classes). The
/// sum of the limited frames' ln g is kept as ln_sum + ln(product): one multiply per limited
/// frame, and a log only when the product nears the bottom of a double's range. A gain is at
/// least 2^-52 when not 0 (the law's moving mean of values quantized to 2^-32 over fewer than
/// 2^20 frames), so the product never underflows. Each multiply is off by at most 2^-53
/// relative, so over n limited frames the sum of ln g is within n * 2^-53 of the exact one and
/// the mean reduction within 8.7 * 2^-53 dB: far below the report's 0.01 dB.
struct stats_accumulator {
  static constexpr double fold_below = 1e-200;
  double ln_sum = 0.0;
  double product = 1.0;
  double min_gain = 1.0;
  std::size_t limited = 0;
  void add(double g) noexcept {
    if (g < 1.0) {
      ++limited;
      product *= g;
      if (product < fold_below) {
        ln_sum += std::log(product);
        product = 1.0;
      }
      min_gain = std::min(min_gain, g);
    }
  }
  limiter_stats finish(std::uint64_t frames) const noexcept {
    limiter_stats s;
    s.frames_limited = limited;
    s.max_gain_reduction_db = min_gain < 1.0 ? -20.0 * std::log10(min_gain) : 0.0;
    const double sum_db = limited > 0 ? -20.0 / std::numbers::ln10 * (ln_sum + std::log(product)) : 0.0;
    s.mean_gain_reduction_db = frames > 0 ? sum_db / static_cast<double>(frames) : 0.0;
    return s;
  }
};

}  // namespace

// ---- meter-compatible detector --------------------------------------------------------------

namespace detail {

void meter_peak_interpolator::prepare(double sample_rate_hz, std::size_t latency_frames) {
  LATHE_EXPECTS(sample_rate_hz > 0.0, "sample rate must be positive");
  factor_ = sample_rate_hz < 96'000.0 ? 4 : sample_rate_hz < 192'000.0 ? 2 : 1;
  // libebur128's design: h[j] = sinc((j - 24) / F) * Hann(j), j = 0..48. The point t = n + p/F
  // takes x[n + a] with weight h[24 + p - F a], so |a| <= 24 / F.
  constexpr int length = 49, centre = 24;
  // Without oversampling (factor 1, at 192 kHz and above) every tap but the centre is a zero of
  // the sinc, so the detector reads the samples themselves and reaches no neighbours.
  const int reach = factor_ == 1 ? 0 : centre / factor_;
  LATHE_EXPECTS(latency_frames >= static_cast<std::size_t>(reach), "latency shorter than the filter's reach");
  taps_ = static_cast<std::size_t>(2 * reach + 1);
  coeffs_.assign(static_cast<std::size_t>(factor_) * taps_, 0.0f);
  for (int p = 0; p < factor_; ++p) {
    for (int a = -reach; a <= reach; ++a) {
      const int j = centre + p - factor_ * a;
      if (j < 0 || j >= length) continue;
      const double s = static_cast<double>(j - centre) / factor_;
      const double sinc = j == centre ? 1.0 : std::sin(M_PI * s) / (M_PI * s);
      const double hann = 0.5 * (1.0 - std::cos(2.0 * M_PI * j / (length - 1)));
      coeffs_[static_cast<std::size_t>(p) * taps_ + static_cast<std::size_t>(a + reach)] =
          static_cast<float>(sinc * hann);
    }
  }
  history_ = latency_frames + static_cast<std::size_t>(reach);
  work_.assign(history_ + chunk_frames, 0.0f);
  acc_.assign(chunk_frames, 0.0f);
}

void meter_peak_interpolator::reset() noexcept {
  std::fill(work_.begin(), work_.end(), 0.0f);
}

// Its loops vectorize as elementwise IEEE arithmetic (no reassociation, no FMA), so every clone
// gives identical peaks; the widest the CPU runs is picked at load time (ifunc, glibc only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
__attribute__((target_clones("avx512f", "avx", "default")))
#endif
void meter_peak_interpolator::process(const float* in, float* peak_out, std::size_t frames) noexcept {
  const std::size_t taps = taps_;
  // The newest input (chunk frame i) sits at w[history_ + i]; the points of frame
  // n = newest - latency need x[n - reach .. n + reach], which start at w[i] because
  // history_ = latency + reach.
  while (frames > 0) {
    const std::size_t n = std::min(frames, chunk_frames);
    float* w = work_.data();
    std::copy(in, in + n, w + history_);
    // Frames run in the inner loops so they vectorize; each output still sums its taps in
    // ascending order, so the result does not depend on the chunking.
    float* acc = acc_.data();
    std::fill(peak_out, peak_out + n, 0.0f);
    for (int p = 0; p < factor_; ++p) {
      const float* c = coeffs_.data() + static_cast<std::size_t>(p) * taps;
      std::fill(acc, acc + n, 0.0f);
      for (std::size_t k = 0; k < taps; ++k) {
        const float ck = c[k];
        const float* x = w + k;
        for (std::size_t i = 0; i < n; ++i) acc[i] += ck * x[i];
      }
      for (std::size_t i = 0; i < n; ++i) peak_out[i] = std::max(peak_out[i], std::abs(acc[i]));
    }
    std::copy(w + n, w + n + history_, w);
    in += n;
    peak_out += n;
    frames -= n;
  }
}

}  // namespace detail

// ---- gain law --------------------------------------------------------------------------------

namespace detail {

void limiter_gain_law::prepare(const limiter_params& params, double sample_rate_hz) {
  LATHE_EXPECTS(sample_rate_hz > 0.0, "sample rate must be positive");
  LATHE_EXPECTS(params.lookahead_ms >= 0.0 && params.lookahead_ms <= 100.0, "lookahead_ms must lie in [0, 100]");
  LATHE_EXPECTS(params.release_ms > 0.0, "release_ms must be positive");
  LATHE_EXPECTS(params.margin_db >= 0.0, "margin_db must not be negative");
  LATHE_EXPECTS(params.ceiling_dbtp <= 0.0 && params.ceiling_dbtp > -60.0, "ceiling_dbtp must lie in (-60, 0]");
  ceiling_ = db_to_gain(params.ceiling_dbtp - params.margin_db);
  release_coeff_ = 1.0 - std::exp(-1.0 / (params.release_ms * sample_rate_hz / 1000.0));
  window_ = lookahead_frames_for(params, sample_rate_hz) + 1;
  // The window sum holds window_ values of at most 2^32: exact in int64 and in a double's 53 bits.
  LATHE_EXPECTS(window_ < (std::size_t{1} << 20), "lookahead too long for the exact moving sum");
  min_value_.assign(window_ + 1, 0.0);
  min_frame_.assign(window_ + 1, 0);
  held_.assign(window_, 0);
  reset();
}

void limiter_gain_law::reset() noexcept {
  // The past is silent: e = h = 1 for every frame before the first. A single deque entry of 1.0
  // stands for all of them and expires when the window has moved past frame -1.
  envelope_ = 1.0;
  frame_ = window_;  // frames are counted from window_ so the sentinel's index stays unsigned
  min_head_ = 0;
  min_count_ = 1;
  min_value_[0] = 1.0;
  min_frame_[0] = window_ - 1;
  std::fill(held_.begin(), held_.end(), static_cast<std::int64_t>(held_scale));
  held_pos_ = 0;
  held_sum_ = static_cast<std::int64_t>(window_) * static_cast<std::int64_t>(held_scale);
}

double limiter_gain_law::step(double detection) noexcept {
  const double required = detection > ceiling_ ? ceiling_ / detection : 1.0;
  double released = envelope_ + (1.0 - envelope_) * release_coeff_;
  if (released >= release_snap) released = 1.0;
  envelope_ = std::min(required, released);

  // Sliding minimum: the deque holds increasing values at increasing frames; the front is the min.
  const std::size_t cap = min_value_.size();
  while (min_count_ > 0) {
    std::size_t back = min_head_ + min_count_ - 1;
    if (back >= cap) back -= cap;
    if (min_value_[back] < envelope_) break;
    --min_count_;
  }
  std::size_t slot = min_head_ + min_count_;
  if (slot >= cap) slot -= cap;
  min_value_[slot] = envelope_;
  min_frame_[slot] = frame_;
  ++min_count_;
  if (min_frame_[min_head_] + window_ <= frame_) {  // one frame leaves the window per step
    min_head_ = min_head_ + 1 == cap ? 0 : min_head_ + 1;
    --min_count_;
  }
  const double held = min_value_[min_head_];
  ++frame_;

  // held in [0, 1]: the product is exact (power of two) and the conversion truncates = floor.
  const auto q = static_cast<std::int64_t>(held * held_scale);
  held_sum_ += q - held_[held_pos_];
  held_[held_pos_] = q;
  held_pos_ = held_pos_ + 1 == window_ ? 0 : held_pos_ + 1;
  return static_cast<double>(held_sum_) / (static_cast<double>(window_) * held_scale);
}

}  // namespace detail

// ---- offline ---------------------------------------------------------------------------------

struct offline_limiter::detection {
  std::vector<true_peak_interpolator> detectors;
  std::vector<detail::meter_peak_interpolator> meter_detectors;
  std::vector<float> peaks, meter_peaks, linked;
  window_peak window;
};

offline_limiter::offline_limiter() = default;
offline_limiter::offline_limiter(offline_limiter&&) noexcept = default;
offline_limiter& offline_limiter::operator=(offline_limiter&&) noexcept = default;
offline_limiter::~offline_limiter() = default;

void offline_limiter::begin_analysis(double sample_rate_hz, const limiter_params& params, int channels,
                                     audio_spill envelope) {
  detail::limiter_gain_law law;
  law.prepare(params, sample_rate_hz);  // validates params
  LATHE_EXPECTS(channels >= 1 && channels <= max_channels, "limiter needs 1 to max_channels channels");
  LATHE_EXPECTS(envelope.channels() == 1 && envelope.frames() == 0, "the envelope spill must be empty and mono");
  params_ = params;
  sample_rate_hz_ = sample_rate_hz;
  frames_ = 0;
  max_peak_ = 0.0f;
  peak_ = std::move(envelope);
  det_ = std::make_unique<detection>();
  det_->detectors.resize(static_cast<std::size_t>(channels));
  det_->meter_detectors.resize(static_cast<std::size_t>(channels));
  for (std::size_t c = 0; c < det_->detectors.size(); ++c) {
    det_->detectors[c].prepare(sample_rate_hz);
    det_->meter_detectors[c].prepare(sample_rate_hz, det_->detectors[c].latency_frames());
  }
  latency_ = det_->detectors[0].latency_frames() + 1 + law.lookahead_frames();
  det_->peaks.resize(spill_block_frames);
  det_->meter_peaks.resize(spill_block_frames);
  det_->linked.resize(spill_block_frames);
}

// Stream time t runs over the input followed by latency_ zeros, exactly as the streaming stage
// sees it when flushed; the linked peak is the max over channels of both detectors.
void offline_limiter::analyze_more(const_block_view in) {
  LATHE_EXPECTS(det_ != nullptr, "analyze_more() needs begin_analysis()");
  detection& d = *det_;
  for (std::size_t done = 0; done < in.frames;) {
    const std::size_t n = std::min(spill_block_frames, in.frames - done);
    std::fill_n(d.linked.begin(), n, 0.0f);
    for (std::size_t c = 0; c < d.detectors.size(); ++c) {
      const float* x = in[static_cast<int>(c)] + done;
      d.detectors[c].process(x, d.peaks.data(), n);
      d.meter_detectors[c].process(x, d.meter_peaks.data(), n);
      for (std::size_t t = 0; t < n; ++t) d.linked[t] = std::max(d.linked[t], std::max(d.peaks[t], d.meter_peaks[t]));
    }
    for (std::size_t t = 0; t < n; ++t) {
      max_peak_ = std::max(max_peak_, d.linked[t]);
      d.linked[t] = d.window.push(d.linked[t]);
    }
    peak_.append(block_view::mono(d.linked.data(), n));
    done += n;
  }
  frames_ += in.frames;
}

void offline_limiter::finish_analysis() {
  LATHE_EXPECTS(det_ != nullptr, "finish_analysis() needs begin_analysis()");
  const std::size_t frames = frames_;
  audio_buffer zeros(static_cast<int>(det_->detectors.size()), latency_);
  analyze_more(zeros.view());
  frames_ = frames;
  det_.reset();
}

void offline_limiter::analyze(const audio_buffer& in, double sample_rate_hz, const limiter_params& params) {
  begin_analysis(sample_rate_hz, params, in.channels());
  analyze_more(in.view());
  finish_analysis();
}

void offline_limiter::set_ceiling_dbtp(double ceiling_dbtp) {
  limiter_params p = params_;
  p.ceiling_dbtp = ceiling_dbtp;
  detail::limiter_gain_law law;
  law.prepare(p, sample_rate_hz_);  // validates
  params_ = p;
}

limiter_stats offline_limiter::gains(double gain_db, const std::function<void(std::span<const double>)>& out,
                                     bool with_stats) const {
  LATHE_EXPECTS(det_ == nullptr && peak_.frames() == frames_ + latency_ && peak_.frames() > 0,
                "gains() needs a finished analysis");
  detail::limiter_gain_law law;
  law.prepare(params_, sample_rate_hz_);
  const double gain = db_to_gain(gain_db);

  const std::size_t block = spill_block_frames;
  std::vector<float> peaks(block);
  std::vector<double> applied(block);
  auto read_peaks = [&](std::size_t first, std::size_t n) { peak_.read(first, block_view::mono(peaks.data(), n)); };
  stats_accumulator acc;
  for (std::size_t t = 0; t < latency_; t += block) {
    const std::size_t n = std::min(block, latency_ - t);
    read_peaks(t, n);
    for (std::size_t i = 0; i < n; ++i) law.step(gain * static_cast<double>(peaks[i]));
  }
  for (std::size_t m0 = 0; m0 < frames_; m0 += block) {
    const std::size_t n = std::min(block, frames_ - m0);
    read_peaks(m0 + latency_, n);
    for (std::size_t i = 0; i < n; ++i) applied[i] = law.step(gain * static_cast<double>(peaks[i]));
    if (with_stats)
      for (std::size_t i = 0; i < n; ++i) acc.add(applied[i]);
    for (std::size_t i = 0; i < n; ++i) applied[i] *= gain;
    out(std::span<const double>(applied.data(), n));
  }
  return with_stats ? acc.finish(frames_) : limiter_stats{};
}

limiter_stats offline_limiter::render(const audio_spill& in, double gain_db, frame_sink out) const {
  LATHE_EXPECTS(in.frames() == frames_, "render() needs the input analysis saw");
  // The gain per output frame first (the recurrence is serial), then one multiply per sample.
  audio_buffer x(in.channels(), spill_block_frames);
  std::size_t m0 = 0;
  return gains(gain_db, [&](std::span<const double> applied) {
    const std::size_t n = applied.size();
    block_view v = x.view(0, n);
    in.read(m0, v);
    for (int c = 0; c < v.channels; ++c) {
      float* y = v[c];
      for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<double>(y[i]) * applied[i]);
    }
    out(v);
    m0 += n;
  });
}

limiter_stats offline_limiter::render(const audio_buffer& in, double gain_db, audio_buffer& out) const {
  if (out.channels() != in.channels() || out.frames() != in.frames()) out.resize(in.channels(), in.frames());
  buffer_filler fill{out};
  return render(audio_spill::borrow(in), gain_db, fill);
}

double offline_limiter::input_true_peak_dbtp(double gain_db) const noexcept {
  return 20.0 * std::log10(static_cast<double>(max_peak_)) + gain_db;
}

// ---- streaming -------------------------------------------------------------------------------

void true_peak_limiter::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  LATHE_EXPECTS(spec.max_block_frames >= 1, "max_block_frames must be positive");
  law_.prepare(params_, spec.sample_rate_hz);
  detectors_.assign(static_cast<std::size_t>(spec.channels), true_peak_interpolator{});
  for (auto& d : detectors_) d.prepare(spec.sample_rate_hz);
  meter_detectors_.assign(static_cast<std::size_t>(spec.channels), detail::meter_peak_interpolator{});
  for (auto& d : meter_detectors_) d.prepare(spec.sample_rate_hz, detectors_.front().latency_frames());
  latency_ = detectors_.front().latency_frames() + 1 + law_.lookahead_frames();
  delay_.assign(static_cast<std::size_t>(spec.channels), std::vector<float>(latency_, 0.0f));
  max_block_frames_ = spec.max_block_frames;
  scratch_.assign(static_cast<std::size_t>(spec.channels) * max_block_frames_, 0.0f);
  meter_scratch_.assign(max_block_frames_, 0.0f);
  reset();
}

void true_peak_limiter::reset() noexcept {
  law_.reset();
  for (auto& d : detectors_) d.reset();
  for (auto& d : meter_detectors_) d.reset();
  for (auto& d : delay_) std::fill(d.begin(), d.end(), 0.0f);
  delay_pos_ = 0;
  peak_prev1_ = peak_prev2_ = 0.0f;
  frames_seen_ = 0;
  stats_ln_sum_ = 0.0;
  stats_product_ = 1.0;
  frames_counted_ = 0;
  min_gain_ = 1.0;
  stats_ = {};
}

void true_peak_limiter::set_input_gain_db(double gain_db) noexcept {
  input_gain_ = db_to_gain(gain_db);
}

std::size_t true_peak_limiter::latency_frames() const noexcept {
  return latency_;
}

void true_peak_limiter::process(const_block_view in, block_view out) noexcept {
  const int channels = in.channels;
  const double gain = input_gain_;
  stats_accumulator acc;
  acc.ln_sum = stats_ln_sum_;
  acc.product = stats_product_;
  acc.limited = stats_.frames_limited;
  acc.min_gain = min_gain_;
  window_peak window{peak_prev1_, peak_prev2_};

  for (std::size_t done = 0; done < in.frames;) {
    const std::size_t n = std::min(max_block_frames_, in.frames - done);
    // All detection reads of this chunk happen before any output write, so in == out is fine.
    for (int c = 0; c < channels; ++c) {
      float* peaks = scratch_.data() + static_cast<std::size_t>(c) * max_block_frames_;
      detectors_[static_cast<std::size_t>(c)].process(in[c] + done, peaks, n);
      meter_detectors_[static_cast<std::size_t>(c)].process(in[c] + done, meter_scratch_.data(), n);
      for (std::size_t i = 0; i < n; ++i) peaks[i] = std::max(peaks[i], meter_scratch_[i]);
    }
    for (std::size_t i = 0; i < n; ++i) {
      float linked = scratch_[i];
      for (int c = 1; c < channels; ++c)
        linked = std::max(linked, scratch_[static_cast<std::size_t>(c) * max_block_frames_ + i]);
      const double g = law_.step(gain * static_cast<double>(window.push(linked)));
      const double applied = gain * g;
      for (int c = 0; c < channels; ++c) {
        float& slot = delay_[static_cast<std::size_t>(c)][delay_pos_];
        const float x = slot;
        slot = in[c][done + i];
        out[c][done + i] = static_cast<float>(static_cast<double>(x) * applied);
      }
      delay_pos_ = delay_pos_ + 1 == latency_ ? 0 : delay_pos_ + 1;
      // Statistics count the frames that carry input (after the initial latency).
      if (frames_seen_++ >= latency_) {
        acc.add(g);
        ++frames_counted_;
      }
    }
    done += n;
  }
  peak_prev1_ = window.prev1;
  peak_prev2_ = window.prev2;
  stats_ln_sum_ = acc.ln_sum;
  stats_product_ = acc.product;
  min_gain_ = acc.min_gain;
  stats_ = acc.finish(frames_counted_);
}

}  // namespace lathe
