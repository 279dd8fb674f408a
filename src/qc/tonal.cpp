// Tonal balance: the Welch power spectrum of mid and side (the heavy, mergeable part, CPU with
// single-precision FFTW and float64 accumulation) and everything derived from it on the host
// (1/3-octave levels, the smoothed fine spectrum, tilt, low/high-end energy, width, crest
// factor), target-curve arithmetic and the auto-EQ correction.
#include "lathe/tonal.hpp"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>

#include "lathe/convolver.hpp"
#include "lathe/error.hpp"

namespace lathe {
namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
// 1/3-octave band k (centre 1000 * 2^(k/3)) sits at index k - first_band_k.
constexpr int first_band_k = -17;
// The bands a target is normalized over and the tilt is fitted on: nominal 100 Hz .. 10 kHz.
constexpr std::size_t norm_first = 7, norm_last = 27;
// The bands target_deviation_db compares: nominal 40 Hz .. 16 kHz.
constexpr std::size_t deviation_first = 3, deviation_last = 29;
// Mean square of a full-scale sine: the 0 dB reference of the band levels.
constexpr double full_scale_sine_power = 0.5;
constexpr double band_edge_ratio = 1.122'462'048'309'373'0;  // 2^(1/6)
// Fine spectrum: 1/24-octave grid from 20 Hz; Hann smoothing in log2 frequency whose full width
// at half maximum is 1/6 octave (support +-1/6 octave), integrated over this many slices.
constexpr double fine_first_hz = 20.0;
constexpr double fine_last_hz = 20'000.0;
constexpr double fine_step_octaves = 1.0 / 24.0;
constexpr double fine_half_support_octaves = 1.0 / 6.0;
constexpr int fine_slices = 24;
constexpr double low_end_hz = 120.0;
constexpr double high_end_hz = 8'000.0;
// tonal_fft_size: the bin spacing it aims at, and the sizes it may pick.
constexpr double target_bin_hz = 5.4;
constexpr int min_fft_log2 = 8, max_fft_log2 = 16;

double power_db(double p) {
  return 10.0 * std::log10(p);
}

// The one-sided power density of one Welch sum, linearly interpolated between bin centres, and
// its running integral, so the mean square in any [f0, f1) costs O(1). The integral over all
// frequencies equals the Parseval mean square (the trapezoid of the interpolant weights DC and
// Nyquist by 1/2, as the one-sided Parseval sum does), and a band much wider than a bin gets the
// sum of its bins; a band narrower than a bin gets the interpolated density times its width, so
// the low bands of a flat spectrum stay flat.
class density_integral {
 public:
  density_integral(const std::vector<double>& power_sum, const welch_power& w, double window_power_sum)
      : bin_hz_(w.sample_rate_hz / static_cast<double>(w.fft_size)), d_(power_sum.size()), cum_(power_sum.size()) {
    // Mean over frames of |X_k|^2, one-sided (x2), per Hz, per unit window power (Parseval:
    // sum_k |X_k|^2 = N sum_n (x_n w_n)^2).
    const double scale =
        2.0 / (static_cast<double>(w.frames_analyzed) * static_cast<double>(w.fft_size) * window_power_sum * bin_hz_);
    for (std::size_t k = 0; k < d_.size(); ++k) d_[k] = power_sum[k] * scale;
    cum_[0] = 0.0;
    for (std::size_t k = 1; k < d_.size(); ++k) cum_[k] = cum_[k - 1] + 0.5 * bin_hz_ * (d_[k - 1] + d_[k]);
  }
  double nyquist_hz() const noexcept { return bin_hz_ * static_cast<double>(d_.size() - 1); }
  /// Mean square in [f0, f1), both clipped to [0, Nyquist].
  double integral(double f0_hz, double f1_hz) const noexcept { return at(f1_hz) - at(f0_hz); }
  double total() const noexcept { return cum_.back(); }

 private:
  double at(double f_hz) const noexcept {
    const double x = std::clamp(f_hz / bin_hz_, 0.0, static_cast<double>(d_.size() - 1));
    const auto k = static_cast<std::size_t>(x);
    if (k + 1 >= d_.size()) return cum_.back();
    const double t = x - static_cast<double>(k);
    return cum_[k] + bin_hz_ * t * (d_[k] + 0.5 * t * (d_[k + 1] - d_[k]));
  }
  double bin_hz_;
  std::vector<double> d_, cum_;
};

double periodic_hann(std::size_t j, std::size_t n) {
  return 0.5 - 0.5 * std::cos(2.0 * M_PI * static_cast<double>(j) / static_cast<double>(n));
}

double window_power_sum(std::size_t n) {
  double s = 0.0;
  for (std::size_t j = 0; j < n; ++j) s += periodic_hann(j, n) * periodic_hann(j, n);
  return s;
}

struct fftwf_deleter {
  void operator()(void* p) const noexcept { fftwf_free(p); }
};
template <class T>
using fftwf_ptr = std::unique_ptr<T[], fftwf_deleter>;
template <class T>
fftwf_ptr<T> fftwf_alloc(std::size_t n) {
  auto* p = static_cast<T*>(fftwf_malloc(n * sizeof(T)));
  if (p == nullptr) throw std::bad_alloc();
  return fftwf_ptr<T>(p);
}

// One r2c plan, made and destroyed under lathe's FFTW planner lock (the planner is not
// thread-safe; fftwf_execute_* is).
class r2c_plan {
 public:
  r2c_plan(std::size_t n, float* in, fftwf_complex* out) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    // FFTW_ESTIMATE: no timing, so the plan (and the rounding of every result) is the same on
    // every run.
    plan_ = fftwf_plan_dft_r2c_1d(static_cast<int>(n), in, out, FFTW_ESTIMATE);
    if (plan_ == nullptr) LATHE_FAIL("FFTW could not plan the tonal-analysis FFT");
  }
  ~r2c_plan() {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fftwf_destroy_plan(plan_);
  }
  r2c_plan(const r2c_plan&) = delete;
  r2c_plan& operator=(const r2c_plan&) = delete;
  /// `in` and `out` must be fftwf_malloc'ed like the arrays the plan was made with.
  void execute(float* in, fftwf_complex* out) const noexcept { fftwf_execute_dft_r2c(plan_, in, out); }

 private:
  fftwf_plan plan_ = nullptr;
};

void accumulate_power(const fftwf_complex* x, std::vector<double>& sum) noexcept {
  for (std::size_t k = 0; k < sum.size(); ++k) {
    const double re = x[k][0], im = x[k][1];
    sum[k] += re * re + im * im;
  }
}

// Mean of the finite values of v[first..last].
double finite_mean(const std::array<double, third_octave_band_count>& v, std::size_t first, std::size_t last) {
  double s = 0.0;
  int n = 0;
  for (std::size_t i = first; i <= last; ++i) {
    if (std::isfinite(v[i])) s += v[i], ++n;
  }
  return n > 0 ? s / n : nan;
}

}  // namespace

const std::array<double, third_octave_band_count>& third_octave_centres_hz() {
  static const std::array<double, third_octave_band_count> centres = [] {
    std::array<double, third_octave_band_count> c{};
    for (int i = 0; i < third_octave_band_count; ++i)
      c[static_cast<std::size_t>(i)] = 1000.0 * std::exp2((i + first_band_k) / 3.0);
    return c;
  }();
  return centres;
}

const std::array<const char*, third_octave_band_count>& third_octave_names() {
  static const std::array<const char*, third_octave_band_count> names = {
      "20",    "25",  "31.5", "40",   "50",  "63",  "80",    "100",   "125",  "160", "200",
      "250",   "315", "400",  "500",  "630", "800", "1k",    "1.25k", "1.6k", "2k",  "2.5k",
      "3.15k", "4k",  "5k",   "6.3k", "8k",  "10k", "12.5k", "16k",   "20k"};
  return names;
}

void welch_power::merge(const welch_power& later) {
  if (fft_size == 0 && frames_analyzed == 0 && samples == 0) {
    *this = later;
    return;
  }
  LATHE_EXPECTS(later.fft_size == fft_size && later.sample_rate_hz == sample_rate_hz,
                "merged Welch spectra must share the FFT size and the sample rate");
  LATHE_EXPECTS(later.mid.size() == mid.size() && later.side.size() == side.size(), "Welch spectra sizes differ");
  for (std::size_t k = 0; k < mid.size(); ++k) mid[k] += later.mid[k];
  for (std::size_t k = 0; k < side.size(); ++k) side[k] += later.side[k];
  frames_analyzed += later.frames_analyzed;
  samples += later.samples;
}

std::size_t tonal_fft_size(double sample_rate_hz) {
  LATHE_EXPECTS(sample_rate_hz > 0.0 && std::isfinite(sample_rate_hz), "sample rate must be positive");
  // Nearest in log2 (geometric), so the bin spacing stays within 2^(+-1/2) of target_bin_hz.
  const int log2_n =
      std::clamp(static_cast<int>(std::lround(std::log2(sample_rate_hz / target_bin_hz))), min_fft_log2, max_fft_log2);
  return std::size_t{1} << log2_n;
}

struct welch_accumulator::fft_work {
  explicit fft_work(std::size_t n)
      : mid_time(fftwf_alloc<float>(n)),
        side_time(fftwf_alloc<float>(n)),
        mid_freq(fftwf_alloc<fftwf_complex>(n / 2 + 1)),
        side_freq(fftwf_alloc<fftwf_complex>(n / 2 + 1)),
        plan(n, mid_time.get(), mid_freq.get()) {}
  fftwf_ptr<float> mid_time, side_time;
  fftwf_ptr<fftwf_complex> mid_freq, side_freq;
  r2c_plan plan;
};

welch_accumulator::welch_accumulator(double sample_rate_hz)
    : fft_size_(tonal_fft_size(sample_rate_hz)),
      window_(fft_size_),
      left_(fft_size_),
      right_(fft_size_),
      fft_(std::make_unique<fft_work>(fft_size_)) {
  for (std::size_t j = 0; j < fft_size_; ++j) window_[j] = periodic_hann(j, fft_size_);
  power_.fft_size = fft_size_;
  power_.sample_rate_hz = sample_rate_hz;
  power_.mid.assign(fft_size_ / 2 + 1, 0.0);
  power_.side.assign(fft_size_ / 2 + 1, 0.0);
}

welch_accumulator::welch_accumulator(welch_accumulator&&) noexcept = default;
welch_accumulator& welch_accumulator::operator=(welch_accumulator&&) noexcept = default;
welch_accumulator::~welch_accumulator() = default;

void welch_accumulator::run_frame(std::size_t valid) noexcept {
  fft_work& f = *fft_;
  // Mid and side in float64 (exact for float inputs), windowed, then rounded once to float.
  for (std::size_t j = 0; j < valid; ++j) {
    const double a = left_[j], b = right_[j];
    f.mid_time[j] = static_cast<float>(0.5 * (a + b) * window_[j]);
    f.side_time[j] = static_cast<float>(0.5 * (a - b) * window_[j]);
  }
  std::fill(f.mid_time.get() + valid, f.mid_time.get() + fft_size_, 0.0f);
  std::fill(f.side_time.get() + valid, f.side_time.get() + fft_size_, 0.0f);
  f.plan.execute(f.mid_time.get(), f.mid_freq.get());
  f.plan.execute(f.side_time.get(), f.side_freq.get());
  accumulate_power(f.mid_freq.get(), power_.mid);
  accumulate_power(f.side_freq.get(), power_.side);
  ++power_.frames_analyzed;
}

void welch_accumulator::add(const_block_view stereo) noexcept {
  const std::size_t hop = fft_size_ / 2;
  const float* l = stereo[0];
  const float* r = stereo[1];
  for (std::size_t pos = 0; pos < stereo.frames;) {
    const std::size_t m = std::min(fft_size_ - fill_, stereo.frames - pos);
    std::copy(l + pos, l + pos + m, left_.begin() + static_cast<std::ptrdiff_t>(fill_));
    std::copy(r + pos, r + pos + m, right_.begin() + static_cast<std::ptrdiff_t>(fill_));
    fill_ += m;
    pos += m;
    if (fill_ < fft_size_) break;
    run_frame(fft_size_);
    // The next frame starts a hop later: its first half is this frame's second.
    std::copy(left_.begin() + static_cast<std::ptrdiff_t>(hop), left_.end(), left_.begin());
    std::copy(right_.begin() + static_cast<std::ptrdiff_t>(hop), right_.end(), right_.begin());
    fill_ = hop;
  }
  power_.samples += stereo.frames;
}

welch_power welch_accumulator::finish() {
  // Frames start at 0, hop, 2 hop, ... until one reaches the end; only the last is partial (and
  // holds more than hop samples, so its zero padding biases the mean by < 1/2 frame's weight).
  // After a full frame fill_ is hop, the samples it shares with the next: a partial frame
  // remains only when more arrived (or, before the first full frame, when any did).
  const std::size_t shared = power_.frames_analyzed > 0 ? fft_size_ / 2 : 0;
  if (fill_ > shared) run_frame(fill_);
  return std::move(power_);
}

welch_power measure_welch_power(const audio_buffer& stereo, double sample_rate_hz) {
  LATHE_EXPECTS(stereo.channels() == 2, "tonal analysis takes a stereo buffer");
  welch_accumulator w(sample_rate_hz);
  w.add(stereo.view());
  return w.finish();
}

tonal_analysis summarize(const welch_power& power, float sample_peak) {
  LATHE_EXPECTS(power.fft_size >= 2 && (power.fft_size & (power.fft_size - 1)) == 0,
                "Welch FFT size must be a power of two");
  LATHE_EXPECTS(power.sample_rate_hz > 0.0, "Welch sample rate must be positive");
  LATHE_EXPECTS(power.mid.size() == power.fft_size / 2 + 1 && power.side.size() == power.mid.size(),
                "Welch spectra must hold fft_size / 2 + 1 bins");
  tonal_analysis a;
  a.sample_rate_hz = power.sample_rate_hz;
  a.frames = power.samples;
  if (power.frames_analyzed == 0) {
    a.mid_db.fill(nan), a.side_db.fill(nan), a.width_db.fill(nan);
    a.tilt_db_per_octave = a.low_end_db = a.high_end_db = a.crest_factor_db = nan;
    return a;
  }
  const double wps = window_power_sum(power.fft_size);
  const density_integral mid(power.mid, power, wps), side(power.side, power, wps);
  const double nyquist_hz = mid.nyquist_hz();

  const auto& centres = third_octave_centres_hz();
  for (std::size_t i = 0; i < centres.size(); ++i) {
    const double lo = centres[i] / band_edge_ratio, hi = centres[i] * band_edge_ratio;
    if (lo >= nyquist_hz) {
      a.mid_db[i] = a.side_db[i] = a.width_db[i] = nan;
      continue;
    }
    a.mid_db[i] = power_db(mid.integral(lo, hi) / full_scale_sine_power);
    a.side_db[i] = power_db(side.integral(lo, hi) / full_scale_sine_power);
    a.width_db[i] = a.side_db[i] - a.mid_db[i];
  }

  // Fine spectrum, as the level a 1/3-octave band centred there would read for that density
  // (density x the band's width): comparable with mid_db, and flat for pink noise.
  const double fine_last = std::min(fine_last_hz, 0.49 * power.sample_rate_hz);
  const double slice = 2.0 * fine_half_support_octaves / fine_slices;
  for (int g = 0;; ++g) {
    const double fc = fine_first_hz * std::exp2(g * fine_step_octaves);
    if (fc > fine_last * (1.0 + 1e-12)) break;
    double weighted = 0.0, weights = 0.0;
    for (int s = 0; s < fine_slices; ++s) {
      const double u0 = -fine_half_support_octaves + s * slice, u1 = u0 + slice;
      const double f0 = fc * std::exp2(u0), f1 = std::min(fc * std::exp2(u1), nyquist_hz);
      if (f1 <= f0) continue;
      const double wgt = 0.5 + 0.5 * std::cos(M_PI * 0.5 * (u0 + u1) / fine_half_support_octaves);
      weighted += wgt * mid.integral(f0, f1) / (f1 - f0);
      weights += wgt;
    }
    a.fine_freq_hz.push_back(fc);
    a.fine_db.push_back(
        power_db(weighted / weights * fc * (band_edge_ratio - 1.0 / band_edge_ratio) / full_scale_sine_power));
  }

  // Tilt: least squares over the finite bands of 100 Hz .. 10 kHz.
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int count = 0;
  for (std::size_t i = norm_first; i <= norm_last; ++i) {
    if (!std::isfinite(a.mid_db[i])) continue;
    const double x = std::log2(centres[i] / 1000.0);
    sx += x, sy += a.mid_db[i], sxx += x * x, sxy += x * a.mid_db[i], ++count;
  }
  const double det = count * sxx - sx * sx;
  a.tilt_db_per_octave = count >= 2 && det > 0.0 ? (count * sxy - sx * sy) / det : nan;

  const double mid_total = mid.total();
  a.low_end_db = power_db(mid.integral(0.0, low_end_hz) / mid_total);
  a.high_end_db = power_db(mid.integral(high_end_hz, nyquist_hz) / mid_total);
  // (L^2 + R^2) / 2 = M^2 + S^2: the mean square over both channels.
  a.crest_factor_db = 20.0 * std::log10(static_cast<double>(sample_peak)) - power_db(mid_total + side.total());
  return a;
}

tonal_analyzer::tonal_analyzer(double sample_rate_hz) : welch_(sample_rate_hz) {}

void tonal_analyzer::add(const_block_view stereo) noexcept {
  welch_.add(stereo);
  float peak = sample_peak_;
  for (int c = 0; c < 2; ++c) {
    for (std::size_t i = 0; i < stereo.frames; ++i) peak = std::max(peak, std::abs(stereo[c][i]));
  }
  sample_peak_ = peak;
}

tonal_analysis tonal_analyzer::finish() {
  return summarize(welch_.finish(), sample_peak_);
}

tonal_analysis analyze_tonal(const audio_buffer& stereo, double sample_rate_hz) {
  LATHE_EXPECTS(stereo.channels() == 2, "tonal analysis takes a stereo buffer");
  tonal_analyzer a(sample_rate_hz);
  a.add(stereo.view());
  return a.finish();
}

bool target_curve::has_width() const noexcept {
  return std::any_of(width_db.begin(), width_db.end(), [](double w) { return std::isfinite(w); });
}

std::array<double, third_octave_band_count> normalized_mid_db(const tonal_analysis& a) {
  const double mean = finite_mean(a.mid_db, norm_first, norm_last);
  std::array<double, third_octave_band_count> out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = a.mid_db[i] - mean;
  return out;
}

double target_deviation_db(const tonal_analysis& a, const target_curve& t) {
  const auto m = normalized_mid_db(a);
  double s = 0.0;
  int n = 0;
  for (std::size_t i = deviation_first; i <= deviation_last; ++i) {
    const double d = m[i] - t.mid_db[i];
    if (std::isfinite(d)) s += d * d, ++n;
  }
  return n > 0 ? std::sqrt(s / n) : nan;
}

std::array<double, third_octave_band_count> auto_eq_correction_db(const tonal_analysis& measured,
                                                                  const target_curve& target, const auto_eq_params& p) {
  std::array<double, third_octave_band_count> out{};
  if (p.amount == 0.0) return out;
  LATHE_EXPECTS(p.amount > 0.0 && p.amount <= 1.0, "auto-EQ amount must be within 0..1");
  LATHE_EXPECTS(p.max_gain_db >= 0.0 && std::isfinite(p.max_gain_db), "auto-EQ max_gain_db must be >= 0");
  LATHE_EXPECTS(p.smoothing_bands >= 0.0 && std::isfinite(p.smoothing_bands), "auto-EQ smoothing_bands must be >= 0");
  LATHE_EXPECTS(p.low_hz > 0.0 && p.low_hz < p.high_hz, "auto-EQ needs 0 < low_hz < high_hz");
  const auto m = normalized_mid_db(measured);
  std::array<double, third_octave_band_count> diff{};
  std::array<bool, third_octave_band_count> defined{};
  for (std::size_t i = 0; i < diff.size(); ++i) {
    diff[i] = target.mid_db[i] - m[i];
    defined[i] = std::isfinite(diff[i]);
  }
  // Level alignment: only the shape is corrected, not the loudness.
  double sum = 0.0;
  int count = 0;
  for (std::size_t i = norm_first; i <= norm_last; ++i) {
    if (defined[i]) sum += diff[i], ++count;
  }
  const double offset = count > 0 ? sum / count : 0.0;
  const auto& centres = third_octave_centres_hz();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!defined[i]) continue;
    double weighted = 0.0, weights = 0.0;
    for (std::size_t j = 0; j < out.size(); ++j) {
      const double d = std::abs(static_cast<double>(i) - static_cast<double>(j));
      const double w = p.smoothing_bands > 0.0 ? std::max(0.0, 1.0 - d / (2.0 * p.smoothing_bands)) : (d == 0.0);
      if (!defined[j] || w <= 0.0) continue;
      weighted += w * (diff[j] - offset), weights += w;
    }
    double c = std::clamp(weighted / weights, -p.max_gain_db, p.max_gain_db);
    const double outside_octaves = std::max(std::log2(p.low_hz / centres[i]), std::log2(centres[i] / p.high_hz));
    if (outside_octaves > 0.0) c *= outside_octaves >= 1.0 ? 0.0 : 0.5 * (1.0 + std::cos(M_PI * outside_octaves));
    out[i] = c * p.amount;
  }
  return out;
}

std::vector<eq_curve_point> auto_eq_curve(const std::array<double, third_octave_band_count>& correction_db) {
  std::vector<eq_curve_point> curve;
  if (std::all_of(correction_db.begin(), correction_db.end(), [](double c) { return c == 0.0; })) return curve;
  const auto& centres = third_octave_centres_hz();
  for (std::size_t i = 0; i < correction_db.size(); ++i) {
    LATHE_EXPECTS(std::isfinite(correction_db[i]), "auto-EQ corrections must be finite");
    curve.push_back({centres[i], correction_db[i]});
  }
  return curve;
}

}  // namespace lathe
