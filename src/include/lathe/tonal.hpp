#pragma once
// Tonal balance: long-term average spectrum (LTAS) of a stereo track's mid and side, its
// 1/3-octave and smoothed fine-resolution forms, spectral tilt, low/high-end energy, stereo width
// per band; target curves (shipped, or derived from a reference master); the auto-EQ correction
// toward a target.
//
// The heavy part is the Welch power spectrum (welch_power): Hann-windowed frames, 50 % overlap,
// power summed per bin in float64. It is mergeable (segments, GPU batches) and everything else
// is derived from it on the host by summarize(), so both backends share the derivation.
#include <array>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/eq.hpp"

namespace lathe {

/// 1/3-octave bands, base-2 exact centres 1000 * 2^(k/3) for k = -17..13 (19.7 Hz .. 20.2 kHz,
/// ISO 266 nominal 20 Hz .. 20 kHz); edges at centre * 2^(+-1/6).
inline constexpr int third_octave_band_count = 31;
const std::array<double, third_octave_band_count>& third_octave_centres_hz();
/// ISO 266 nominal names of the centres ("20", "25", ..., "1k", ..., "20k"), for reports.
const std::array<const char*, third_octave_band_count>& third_octave_names();

/// Welch power spectrum of the mid (L+R)/2 and side (L-R)/2 of a stereo signal. Frames of
/// fft_size samples, periodic Hann window, hop fft_size / 2; the last partial frame is zero
/// padded. Power per bin |X_k|^2 summed in float64 over frames (per frame, in frame order).
struct welch_power {
  std::size_t fft_size = 0;  ///< power of two
  double sample_rate_hz = 0.0;
  std::size_t frames_analyzed = 0;  ///< Welch frames summed
  std::size_t samples = 0;          ///< audio frames fed
  std::vector<double> mid, side;    ///< fft_size / 2 + 1 bins each: summed power
  /// Adds `later` (same fft_size and rate): sums of frames. (Segment boundaries change the
  /// framing, so a merged result differs slightly from one pass over the whole.)
  void merge(const welch_power& later);
};

/// FFT size for a rate: the power of two nearest fs / 5.4 Hz (8192 at 44.1 and 48 kHz), so the
/// bin spacing resolves the 20 Hz band (which is 4.6 Hz wide) with at least one bin.
std::size_t tonal_fft_size(double sample_rate_hz);

/// Welch power of a stereo stream fed block by block, on the CPU with FFTW: finish() equals
/// measure_welch_power() of the concatenated blocks bit for bit, for any block partition. Each
/// Welch frame is transformed once its fft_size samples have arrived (the same samples, window
/// and plan, so the same float FFT) and its power added to the per-bin float64 sums in frame
/// order; finish() adds the zero-padded partial frame, if the stream ends inside one. Memory:
/// O(fft_size), whatever the length. Not thread-safe; one per stream.
class welch_accumulator {
 public:
  /// Plans the FFT for tonal_fft_size(sample_rate_hz) (under the FFTW planner lock). Allocates.
  explicit welch_accumulator(double sample_rate_hz);
  welch_accumulator(welch_accumulator&&) noexcept;
  welch_accumulator& operator=(welch_accumulator&&) noexcept;
  ~welch_accumulator();

  /// Feeds the next frames of both channels (`stereo.channels` is 2; not checked). No
  /// allocation.
  void add(const_block_view stereo) noexcept;

  /// The Welch power of everything fed. Call once, after the last add().
  welch_power finish();

 private:
  struct fft_work;  // FFTW buffers and plan
  void run_frame(std::size_t valid) noexcept;

  std::size_t fft_size_;
  std::vector<double> window_;
  std::vector<float> left_, right_;  // the current frame's samples so far
  std::size_t fill_ = 0;             // samples in left_ / right_
  welch_power power_;
  std::unique_ptr<fft_work> fft_;
};

/// Welch power of a whole stereo buffer (channels must be 2): a welch_accumulator fed the whole
/// buffer. Allocates.
welch_power measure_welch_power(const audio_buffer& stereo, double sample_rate_hz);

struct tonal_analysis {
  double sample_rate_hz = 0.0;
  std::size_t frames = 0;
  /// Mean power per 1/3-octave band of the mid, dB re the power a full-scale sine puts in its
  /// band (so a 0 dBFS sine at a band centre reads 0 dB there). Bands whose lower edge is at or
  /// above Nyquist read NaN. Each band sums the bins whose centre frequency lies in [lo, hi).
  /// Bands narrower than a bin get the interpolated density of the nearest bins times their
  /// width (so the low bands of a flat spectrum stay flat).
  std::array<double, third_octave_band_count> mid_db{}, side_db{};
  /// side_db - mid_db per band (dB; -inf mono, NaN above Nyquist).
  std::array<double, third_octave_band_count> width_db{};
  /// Mid power density smoothed over 1/6 octave (Hann-weighted in log frequency), in dB, on a
  /// log grid of 1/24 octave from 20 Hz to min(20 kHz, 0.49 fs).
  std::vector<double> fine_freq_hz, fine_db;
  /// Least-squares slope of mid_db against log2(centre) over the 100 Hz .. 10 kHz bands (dB/oct).
  double tilt_db_per_octave = 0.0;
  /// Mid energy below 120 Hz / above 8 kHz relative to the whole mid energy (dB, <= 0).
  double low_end_db = 0.0, high_end_db = 0.0;
  /// Sample peak over the RMS of both channels (dB), and true peak - integrated loudness (dB),
  /// the latter copied from the track_analysis by the caller (0 if not given).
  double crest_factor_db = 0.0;
  double plr_db = 0.0;
};

/// Derives the analysis from Welch power; `sample_peak` (linear) for the crest factor. The RMS
/// for the crest factor comes from the Welch power via Parseval (Hann-window corrected).
tonal_analysis summarize(const welch_power& power, float sample_peak);

/// analyze_tonal() fed block by block: a welch_accumulator and the sample peak of both
/// channels; finish() equals analyze_tonal() of the concatenated blocks bit for bit, for any
/// block partition. Memory: O(fft_size). Not thread-safe; one per stream.
class tonal_analyzer {
 public:
  /// Allocates (see welch_accumulator).
  explicit tonal_analyzer(double sample_rate_hz);

  /// Feeds the next frames of both channels (`stereo.channels` is 2; not checked). No
  /// allocation.
  void add(const_block_view stereo) noexcept;

  /// The analysis of everything fed (plr_db 0, as analyze_tonal() leaves it). Call once, after
  /// the last add().
  tonal_analysis finish();

 private:
  welch_accumulator welch_;
  float sample_peak_ = 0.0f;
};

/// measure_welch_power + summarize, with the sample peak scanned from the buffer (a
/// tonal_analyzer fed the whole buffer).
tonal_analysis analyze_tonal(const audio_buffer& stereo, double sample_rate_hz);

/// Every band NaN: a target that says nothing about width (a default target is flat, no width).
constexpr std::array<double, third_octave_band_count> no_width_target() noexcept {
  std::array<double, third_octave_band_count> a{};
  for (double& x : a) x = std::numeric_limits<double>::quiet_NaN();
  return a;
}

/// A target tonal balance: relative 1/3-octave levels of the mid (dB; only differences between
/// bands matter: normalized to mean 0 over the 100 Hz .. 10 kHz bands), and optionally a target
/// width (side - mid dB) per band (NaN where it does not say).
struct target_curve {
  std::string name, description;
  std::string derived_from;  ///< how it was made (files, command, or "reference: FILE")
  std::array<double, third_octave_band_count> mid_db{};
  std::array<double, third_octave_band_count> width_db = no_width_target();  ///< NaN: no width target
  bool has_width() const noexcept;
};

/// Reads a target TOML (configs/targets/*.toml): name, description, derived_from, mid_db (31
/// numbers, 20 Hz .. 20 kHz), optional width_db (31 numbers). Strict: config_error
/// "FILE:LINE:COL: reason" for unknown keys, wrong counts, non-finite values.
target_curve load_target_curve(const std::filesystem::path& file);
/// Writes one in that format (lathe target derive).
void save_target_curve(const target_curve& t, const std::filesystem::path& file);

/// The target a reference master defines (its own mid levels and widths, normalized).
target_curve target_from_analysis(const tonal_analysis& a, std::string name, std::string derived_from);
/// The power-mean of several analyses' normalized mid levels (and widths), e.g. a corpus or an
/// album. Bands NaN in any input are NaN.
target_curve mean_target(std::span<const tonal_analysis> analyses, std::string name, std::string derived_from);

/// A track's mid levels normalized like a target (mean 0 over 100 Hz .. 10 kHz).
std::array<double, third_octave_band_count> normalized_mid_db(const tonal_analysis& a);

/// RMS over the 31 bands (finite ones, 40 Hz .. 16 kHz) of the difference between a track's
/// normalized mid levels and a target's (dB): how far the track is from the curve.
double target_deviation_db(const tonal_analysis& a, const target_curve& t);

struct auto_eq_params {
  double amount = 1.0;           ///< 0..1: 0 is no correction at all (the EQ stage is left as is)
  double max_gain_db = 4.0;      ///< every band's correction is clamped to +-this before scaling
  double smoothing_bands = 1.0;  ///< half-width (in 1/3-oct bands) of the triangular smoothing
  double low_hz = 30.0;          ///< outside [low_hz, high_hz] the correction tapers to 0 dB
  double high_hz = 16'000.0;
};

/// Per 1/3-octave band correction in dB (target - measured, level-aligned, smoothed, clamped,
/// tapered, scaled by amount). All zeros when amount == 0.
///
/// Level-aligned: the difference has mean 0 over the 100 Hz .. 10 kHz bands both define.
/// Smoothing: triangular weights max(0, 1 - |j| / (2 smoothing_bands)) over neighbours j (so
/// smoothing_bands is the half-width at half height; 0: none), over the bands both define.
/// Taper: a band centre c below low_hz is scaled by 0.5 (1 + cos(pi log2(low_hz / c))) down to 0
/// one octave below, likewise above high_hz. Bands either side leaves undefined (NaN, silent)
/// get 0 dB.
std::array<double, third_octave_band_count> auto_eq_correction_db(const tonal_analysis& measured,
                                                                  const target_curve& target, const auto_eq_params& p);

/// The correction as an EQ curve (eq_params::curve): one point per band centre. Empty when every
/// band's correction is 0 dB (amount 0), so the EQ stage stays a bypass.
std::vector<eq_curve_point> auto_eq_curve(const std::array<double, third_octave_band_count>& correction_db);

}  // namespace lathe
