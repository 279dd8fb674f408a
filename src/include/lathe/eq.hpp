#pragma once
// Stage 2 of the chain: linear-phase parametric EQ, designed as a symmetric FIR from the
// bands' magnitude responses and applied by partitioned FFT convolution.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/convolver.hpp"

namespace lathe {

enum class eq_band_type { bell, low_shelf, high_shelf, high_pass, low_pass };

/// Parses "bell", "low_shelf", "high_shelf", "high_pass", "low_pass"; false when unknown.
bool parse_eq_band_type(const std::string& name, eq_band_type& out);
const char* to_string(eq_band_type t) noexcept;

struct eq_band {
  eq_band_type type = eq_band_type::bell;
  double freq_hz = 1'000.0;
  double gain_db = 0.0;  ///< bell and shelves
  double q = 0.707;      ///< bell bandwidth; shelf slope; pass-filter resonance
};

/// One point of a free EQ curve (the auto-EQ's correction): gain_db at freq_hz.
struct eq_curve_point {
  double freq_hz = 1'000.0;
  double gain_db = 0.0;
};

struct eq_params {
  std::vector<eq_band> bands;  ///< empty (and no curve): the stage is a bypass with zero latency
  std::size_t fir_taps = 0;    ///< 0: chosen from the lowest band or curve point (odd, 1025..65537)
  std::size_t partition_frames = 4096;
  /// A free curve multiplied into the bands' magnitude (see eq_curve_gain_db); points in
  /// strictly ascending frequency. Last, so positional initializers of the fields above still work.
  std::vector<eq_curve_point> curve;

  /// No bands and no curve: the EQ does nothing and builds no filter.
  bool bypassed() const noexcept { return bands.empty() && curve.empty(); }
};

/// Gain (dB) of `curve` at f_hz: linear in log frequency between points, constant beyond the
/// first and last point. Points at or above 0.49 fs are left out (they cannot act at this rate;
/// the curve is constant from the last point below). 0 dB for an empty curve.
double eq_curve_gain_db(const std::vector<eq_curve_point>& curve, double f_hz, double fs_hz);

/// Magnitude (linear) that the bands ask for at f_hz: the product of each band's RBJ-cookbook
/// analog-prototype magnitude, evaluated at the prewarped frequency tan(pi f/fs)/tan(pi f0/fs),
/// i.e. exactly |H| of the cookbook's digital biquad for that band. Shelf q is the cookbook's
/// shelf Q (0.707 = slope S 1). The FIR approximates this with zero phase plus a pure delay.
double eq_target_magnitude(const std::vector<eq_band>& bands, double f_hz, double fs_hz);
/// The bands' magnitude times the curve's gain: what the stage's FIR approximates.
double eq_target_magnitude(const std::vector<eq_band>& bands, const std::vector<eq_curve_point>& curve, double f_hz,
                           double fs_hz);

/// Taps needed at fs_hz (odd): 8 * fs * max(1, Q_eff) / f0 for the most demanding band
/// (Q_eff = q * max(A, 1/A) for a bell, q otherwise), rounded up to 2^k + 1, clamped to 1025..65537.
std::size_t eq_auto_taps(const std::vector<eq_band>& bands, double fs_hz);
/// The same with a curve: its lowest point with |gain| > 0.01 dB counts as a bell of Q 4.32
/// (1/3 octave, the spacing of the auto-EQ's points) and that point's gain.
std::size_t eq_auto_taps(const std::vector<eq_band>& bands, const std::vector<eq_curve_point>& curve, double fs_hz);

/// Designs the symmetric (type I, odd length) linear-phase FIR for the bands in float64:
/// frequency sampling of the target magnitude on a dense grid, inverse FFT, window.
std::vector<double> design_linear_phase_fir(const std::vector<eq_band>& bands, double fs_hz, std::size_t taps);
/// The same for bands and a curve (eq_target_magnitude of both).
std::vector<double> design_linear_phase_fir(const std::vector<eq_band>& bands, const std::vector<eq_curve_point>& curve,
                                            double fs_hz, std::size_t taps);

/// The EQ a profile applies at a source rate: bands at or above 0.49 fs are left out.
eq_params eq_at_rate(const eq_params& eq, double sample_rate_hz);

/// The float FIR a (not bypassed) EQ convolves with on either backend: fir_taps long, or
/// eq_auto_taps when fir_taps is 0, designed by design_linear_phase_fir.
std::vector<float> eq_fir(const eq_params& p, double fs_hz);

/// Latency: (taps - 1) / 2 + partition_frames (0 when bypassed).
class linear_phase_eq_stage {
 public:
  explicit linear_phase_eq_stage(eq_params p = {}) : params_(std::move(p)) {}
  void prepare(const stream_spec& spec);
  void reset() noexcept;
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept;
  bool bypassed() const noexcept { return params_.bypassed(); }
  std::size_t taps() const noexcept { return taps_; }
  std::size_t bands() const noexcept { return params_.bands.size(); }

 private:
  eq_params params_;
  std::size_t taps_ = 0;
  std::shared_ptr<const partitioned_filter> filter_;
  std::vector<partitioned_convolver> conv_;  // per channel
};

}  // namespace lathe
