#include "lathe/eq.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/error.hpp"
#include "lathe/fft64.hpp"

namespace lathe {
namespace {

constexpr std::size_t min_auto_taps = 1'025;
constexpr std::size_t max_auto_taps = 65'537;
constexpr std::size_t max_taps = 1'048'577;
// Taps per "resolution unit": the FIR spans at least this many periods of the slowest feature
// (see eq_auto_taps).
constexpr double periods_per_feature = 8.0;

void check_bands(const std::vector<eq_band>& bands, double fs_hz) {
  LATHE_EXPECTS(fs_hz > 0.0, "sample rate must be positive");
  for (const eq_band& b : bands) {
    LATHE_EXPECTS(b.freq_hz > 0.0 && b.freq_hz < 0.5 * fs_hz,
                  "EQ band frequency must lie in (0, fs/2); drop bands above Nyquist for this rate");
    LATHE_EXPECTS(b.q > 0.0, "EQ band q must be > 0");
    LATHE_EXPECTS(std::isfinite(b.gain_db) && std::abs(b.gain_db) <= 48.0, "EQ band gain must be within +-48 dB");
  }
}

// The bandwidth the auto-EQ's curve points stand for (1/3 octave) as a bell's Q:
// sqrt(2^(1/3)) / (2^(1/3) - 1).
constexpr double curve_point_q = 4.318'473'046'963'146;
// Curve points weaker than this do not drive the FIR length.
constexpr double curve_negligible_db = 0.01;
// Curve points at or above this fraction of fs are left out.
constexpr double curve_max_fraction_of_fs = 0.49;

void check_curve(const std::vector<eq_curve_point>& curve, double fs_hz) {
  LATHE_EXPECTS(fs_hz > 0.0, "sample rate must be positive");
  for (std::size_t i = 0; i < curve.size(); ++i) {
    LATHE_EXPECTS(curve[i].freq_hz > 0.0 && std::isfinite(curve[i].freq_hz), "EQ curve frequencies must be positive");
    LATHE_EXPECTS(std::isfinite(curve[i].gain_db) && std::abs(curve[i].gain_db) <= 48.0,
                  "EQ curve gains must be within +-48 dB");
    LATHE_EXPECTS(i == 0 || curve[i].freq_hz > curve[i - 1].freq_hz, "EQ curve points must ascend in frequency");
  }
}

// Squared magnitude of one band's RBJ-cookbook analog prototype at normalized frequency w
// (1 = the band's frequency). A = 10^(gain/40) as in the cookbook.
double band_magnitude_sq(const eq_band& b, double w) {
  const double w2 = w * w;
  const double q = b.q;
  switch (b.type) {
    case eq_band_type::bell: {
      // H(s) = (s^2 + s A/Q + 1) / (s^2 + s/(A Q) + 1)
      const double a = std::pow(10.0, b.gain_db / 40.0);
      const double re = 1.0 - w2;
      const double num = re * re + (w * a / q) * (w * a / q);
      const double den = re * re + (w / (a * q)) * (w / (a * q));
      return num / den;
    }
    case eq_band_type::low_shelf: {
      // H(s) = A (s^2 + s sqrt(A)/Q + A) / (A s^2 + s sqrt(A)/Q + 1)
      const double a = std::pow(10.0, b.gain_db / 40.0);
      const double mid = w * std::sqrt(a) / q;
      const double num = (a - w2) * (a - w2) + mid * mid;
      const double den = (1.0 - a * w2) * (1.0 - a * w2) + mid * mid;
      return a * a * num / den;
    }
    case eq_band_type::high_shelf: {
      // H(s) = A (A s^2 + s sqrt(A)/Q + 1) / (s^2 + s sqrt(A)/Q + A)
      const double a = std::pow(10.0, b.gain_db / 40.0);
      const double mid = w * std::sqrt(a) / q;
      const double num = (1.0 - a * w2) * (1.0 - a * w2) + mid * mid;
      const double den = (a - w2) * (a - w2) + mid * mid;
      return a * a * num / den;
    }
    case eq_band_type::high_pass: {
      // H(s) = s^2 / (s^2 + s/Q + 1)
      const double re = 1.0 - w2;
      return w2 * w2 / (re * re + (w / q) * (w / q));
    }
    case eq_band_type::low_pass: {
      // H(s) = 1 / (s^2 + s/Q + 1)
      const double re = 1.0 - w2;
      return 1.0 / (re * re + (w / q) * (w / q));
    }
  }
  return 1.0;
}

// The narrowest feature a band puts into the magnitude, as a quality factor: the Q of its
// sharpest pole or zero pair. A bell's poles have quality A*Q and its zeros Q/A, so a boost or a
// cut is Q*max(A, 1/A) sharp; shelves and pass filters have poles and zeros of quality ~Q.
double band_sharpness_q(const eq_band& b) {
  if (b.type == eq_band_type::bell) {
    const double a = std::pow(10.0, b.gain_db / 40.0);
    return b.q * std::max(a, 1.0 / a);
  }
  return b.q;
}

}  // namespace

bool parse_eq_band_type(const std::string& name, eq_band_type& out) {
  for (eq_band_type t : {eq_band_type::bell, eq_band_type::low_shelf, eq_band_type::high_shelf, eq_band_type::high_pass,
                         eq_band_type::low_pass}) {
    if (name == to_string(t)) {
      out = t;
      return true;
    }
  }
  return false;
}

const char* to_string(eq_band_type t) noexcept {
  switch (t) {
    case eq_band_type::bell:
      return "bell";
    case eq_band_type::low_shelf:
      return "low_shelf";
    case eq_band_type::high_shelf:
      return "high_shelf";
    case eq_band_type::high_pass:
      return "high_pass";
    case eq_band_type::low_pass:
      return "low_pass";
  }
  return "unknown";
}

// Each band's analog prototype is evaluated at the PREWARPED frequency
// w = tan(pi f / fs) / tan(pi f0 / fs). That makes the target exactly |H| of the cookbook's
// digital biquad for the same band (the cookbook designs by the bilinear transform prewarped at
// f0), so the linear-phase EQ has the magnitude an engineer gets from the familiar minimum-phase
// RBJ EQ, including its cramping near Nyquist (a low_pass reaches zero at fs/2).
double eq_target_magnitude(const std::vector<eq_band>& bands, double f_hz, double fs_hz) {
  const double t = std::tan(M_PI * std::min(f_hz, 0.5 * fs_hz) / fs_hz);
  double mag_sq = 1.0;
  for (const eq_band& b : bands) mag_sq *= band_magnitude_sq(b, t / std::tan(M_PI * b.freq_hz / fs_hz));
  return std::sqrt(mag_sq);
}

double eq_curve_gain_db(const std::vector<eq_curve_point>& curve, double f_hz, double fs_hz) {
  const double limit_hz = curve_max_fraction_of_fs * fs_hz;
  // Points ascend, so the usable ones are a prefix.
  std::size_t n = 0;
  while (n < curve.size() && curve[n].freq_hz < limit_hz) ++n;
  if (n == 0) return 0.0;
  if (f_hz <= curve[0].freq_hz) return curve[0].gain_db;
  if (f_hz >= curve[n - 1].freq_hz) return curve[n - 1].gain_db;
  const auto hi = std::upper_bound(curve.begin(), curve.begin() + static_cast<std::ptrdiff_t>(n), f_hz,
                                   [](double f, const eq_curve_point& p) { return f < p.freq_hz; });
  const eq_curve_point& b = *hi;
  const eq_curve_point& a = *(hi - 1);
  const double t = std::log(f_hz / a.freq_hz) / std::log(b.freq_hz / a.freq_hz);
  return a.gain_db + t * (b.gain_db - a.gain_db);
}

double eq_target_magnitude(const std::vector<eq_band>& bands, const std::vector<eq_curve_point>& curve, double f_hz,
                           double fs_hz) {
  const double m = eq_target_magnitude(bands, f_hz, fs_hz);
  return curve.empty() ? m : m * std::pow(10.0, eq_curve_gain_db(curve, f_hz, fs_hz) / 20.0);
}

// A windowed FIR of N taps resolves the magnitude on a scale of about fs/N Hz (Blackman main lobe
// half-width 3 fs/N, its rms width ~0.9 fs/N). A band's feature is about f0/Q wide, so the FIR
// must span several periods of f0/Q: N >= periods_per_feature * fs * Q / f0 (8 keeps the
// windowed design within ~0.1 dB of the target from twice the lowest band up). Rounded up to
// 2^k + 1 (odd, centre on a sample, and a whole number of FFT partitions plus one tap),
// clamped to 1025..65537 (65537 = 1.5 s at 44.1 kHz of latency/length, already ~0.7 Hz resolution).
std::size_t eq_auto_taps(const std::vector<eq_band>& bands, double fs_hz) {
  return eq_auto_taps(bands, {}, fs_hz);
}

std::size_t eq_auto_taps(const std::vector<eq_band>& bands, const std::vector<eq_curve_point>& curve, double fs_hz) {
  check_bands(bands, fs_hz);
  check_curve(curve, fs_hz);
  double needed = 0.0;
  for (const eq_band& b : bands) {
    needed = std::max(needed, periods_per_feature * fs_hz * std::max(1.0, band_sharpness_q(b)) / b.freq_hz);
  }
  // A curve through 1/3-octave points has features about as narrow as a 1/3-octave bell at its
  // lowest active point; higher points need fewer taps.
  for (const eq_curve_point& c : curve) {
    if (c.freq_hz >= curve_max_fraction_of_fs * fs_hz || std::abs(c.gain_db) <= curve_negligible_db) continue;
    const eq_band as_bell{eq_band_type::bell, c.freq_hz, c.gain_db, curve_point_q};
    needed = std::max(needed, periods_per_feature * fs_hz * band_sharpness_q(as_bell) / c.freq_hz);
    break;
  }
  std::size_t pow2 = 1;
  while (static_cast<double>(pow2) < needed && pow2 < max_auto_taps - 1) pow2 <<= 1;
  return std::clamp(pow2 + 1, min_auto_taps, max_auto_taps);
}

std::vector<double> design_linear_phase_fir(const std::vector<eq_band>& bands, double fs_hz, std::size_t taps) {
  return design_linear_phase_fir(bands, {}, fs_hz, taps);
}

std::vector<double> design_linear_phase_fir(const std::vector<eq_band>& bands, const std::vector<eq_curve_point>& curve,
                                            double fs_hz, std::size_t taps) {
  check_bands(bands, fs_hz);
  check_curve(curve, fs_hz);
  LATHE_EXPECTS(taps >= 3 && taps % 2 == 1 && taps <= max_taps, "FIR taps must be odd, 3..1048577");
  const std::size_t centre = (taps - 1) / 2;
  // Dense grid: >= 4x the FIR length, so the time aliasing of the sampled response (period M)
  // lands 3 filter lengths away from the taps kept.
  std::size_t m = 1;
  while (m < 4 * taps) m <<= 1;
  std::vector<double> re(m), im(m, 0.0);
  for (std::size_t k = 0; k <= m / 2; ++k) {
    const double mag =
        eq_target_magnitude(bands, curve, fs_hz * static_cast<double>(k) / static_cast<double>(m), fs_hz);
    re[k] = mag;  // zero phase: real and even spectrum, real and even impulse response
    if (k != 0 && k != m / 2) re[m - k] = mag;
  }
  detail::fft_inverse(re, im);
  // Blackman window on the centred taps, w(0) = 1, zero just past either end (denominator
  // centre + 1, so no tap is wasted on a zero). Side lobes -58 dB: well below the 0.1 dB target
  // ripple for EQ gains up to +-24 dB, with a main lobe narrower than Kaiser at equal leakage.
  const double inv_m = 1.0 / static_cast<double>(m);
  const double span = static_cast<double>(centre + 1);
  std::vector<double> h(taps);
  for (std::size_t j = 0; j <= centre; ++j) {
    const double x = M_PI * static_cast<double>(j) / span;
    const double w = 0.42 + 0.5 * std::cos(x) + 0.08 * std::cos(2.0 * x);
    // Average the two mirrored FFT outputs so the taps are exactly symmetric.
    const double v = j == 0 ? re[0] : 0.5 * (re[j] + re[m - j]);
    h[centre + j] = h[centre - j] = v * inv_m * w;
  }
  return h;
}

void linear_phase_eq_stage::prepare(const stream_spec& spec) {
  LATHE_EXPECTS(spec.channels >= 1 && spec.channels <= max_channels, "channel count out of range");
  conv_.clear();
  filter_.reset();
  taps_ = 0;
  if (bypassed()) return;
  const std::size_t b = params_.partition_frames;
  LATHE_EXPECTS(b >= 64 && (b & (b - 1)) == 0, "EQ partition_frames must be a power of two >= 64");
  const std::vector<float> hf = eq_fir(params_, spec.sample_rate_hz);
  taps_ = hf.size();
  filter_ = std::make_shared<const partitioned_filter>(hf, b);
  conv_.reserve(static_cast<std::size_t>(spec.channels));
  for (int c = 0; c < spec.channels; ++c) conv_.emplace_back(filter_);
}

void linear_phase_eq_stage::reset() noexcept {
  for (partitioned_convolver& c : conv_) c.reset();
}

void linear_phase_eq_stage::process(const_block_view in, block_view out) noexcept {
  if (conv_.empty()) {
    for (int c = 0; c < in.channels; ++c) {
      if (in[c] != out[c]) std::memmove(out[c], in[c], in.frames * sizeof(float));
    }
    return;
  }
  for (int c = 0; c < in.channels; ++c) conv_[static_cast<std::size_t>(c)].process(in[c], out[c], in.frames);
}

std::size_t linear_phase_eq_stage::latency_frames() const noexcept {
  return conv_.empty() ? 0 : (taps_ - 1) / 2 + conv_.front().latency_frames();
}

std::vector<float> eq_fir(const eq_params& p, double fs_hz) {
  const std::size_t taps = p.fir_taps != 0 ? p.fir_taps : eq_auto_taps(p.bands, p.curve, fs_hz);
  const std::vector<double> h = design_linear_phase_fir(p.bands, p.curve, fs_hz, taps);
  return {h.begin(), h.end()};
}

eq_params eq_at_rate(const eq_params& eq, double sample_rate_hz) {
  // A band at or above Nyquist cannot act at this rate (an air band of a 96 kHz profile on an
  // 8 kHz source): it is left out rather than failing the track.
  eq_params out = eq;
  std::erase_if(out.bands, [&](const eq_band& b) { return b.freq_hz >= 0.49 * sample_rate_hz; });
  return out;
}

}  // namespace lathe
