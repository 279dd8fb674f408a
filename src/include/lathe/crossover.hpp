#pragma once
// Linear-phase FIR crossover, 2..6 bands, for the multiband dynamics stage. The bands are
// differences of windowed-sinc low-passes, so they sum to the delayed input exactly (up to float
// rounding) whatever the crossover frequencies.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "lathe/audio_buffer.hpp"
#include "lathe/convolver.hpp"

namespace lathe {

inline constexpr int max_crossover_bands = 6;

struct crossover_params {
  std::vector<double> crossover_hz;  ///< strictly ascending, in (0, fs/2); 1..5 entries = 2..6 bands
  std::size_t fir_taps = 0;          ///< odd; 0: crossover_auto_taps()
  std::size_t partition_frames = 4096;
};

/// Taps at fs_hz (odd): the smallest odd N >= 11 fs / f_lowest + 1, at least 255. Why: the
/// Blackman-windowed sinc goes from pass (error < 2e-4) to stop (< -74 dB) over 5.5 fs / (N - 1)
/// Hz centred on the cutoff, so this rule puts that transition within +-f_lowest / 4 of the
/// lowest crossover (relatively narrower at the higher ones), and every band is >= 68 dB down
/// (two windowed-sinc errors) from an octave beyond its edges.
std::size_t crossover_auto_taps(const std::vector<double>& crossover_hz, double fs_hz);

/// Linear-phase low-pass in float64: sinc with -6 dB at cutoff_hz times a Blackman window,
/// symmetric (type I, odd taps), normalized to exactly 1 at DC.
std::vector<double> design_windowed_sinc_lowpass(double cutoff_hz, double fs_hz, std::size_t taps);

/// The band FIRs in float64: band_1 = LP_1, band_k = LP_k - LP_{k-1}, band_N = delta - LP_{N-1}
/// (delta at the centre tap). Result[k] has `taps` taps; sum over k is the centred unit impulse.
std::vector<std::vector<double>> design_crossover_bands(const std::vector<double>& crossover_hz, double fs_hz,
                                                        std::size_t taps);

/// Streaming crossover, one partitioned FFT convolution per band and channel. Latency:
/// (taps - 1) / 2 + partition_frames. As a dsp_stage, process() outputs the sum of the bands
/// (the delayed input up to rounding), which is what tests and a bypassed multiband need.
class linear_phase_crossover {
 public:
  explicit linear_phase_crossover(crossover_params p = {}) : params_(std::move(p)) {}
  void prepare(const stream_spec& spec);  ///< designs and allocates
  void reset() noexcept;
  /// Writes band k of `in` to bands[k] (bands.size() == band_count(), each with in's channels
  /// and frames). `in` must not alias any band view.
  void split(const_block_view in, std::span<const block_view> bands) noexcept;
  /// Sum of the bands; in and out may be the same memory.
  void process(const_block_view in, block_view out) noexcept;
  std::size_t latency_frames() const noexcept;
  int band_count() const noexcept { return static_cast<int>(params_.crossover_hz.size()) + 1; }
  std::size_t taps() const noexcept { return taps_; }

 private:
  crossover_params params_;
  std::size_t taps_ = 0;
  int channels_ = 0;
  std::vector<std::shared_ptr<const partitioned_filter>> filters_;  // per band
  std::vector<partitioned_convolver> conv_;                         // [band * channels + channel]
  audio_buffer scratch_;                                            // process(): one band at a time
  audio_buffer input_copy_;                                         // process() in place
};

}  // namespace lathe
