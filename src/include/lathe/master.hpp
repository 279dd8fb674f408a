#pragma once
// The mastering chain for one track and one delivery profile, on the CPU:
//   1-2. high-pass and linear-phase EQ at the source rate       (apply_prechain)
//   5a.  sample-rate conversion to the profile's rate            (resample)
//   3-4. loudness normalization iterated with the true-peak limiter, at the output rate
//   5b.  dither and quantization, once, last, only when the bit depth drops
// followed by an independent measurement of exactly what is delivered.
// Loudness and limiting run at the output rate so the final master is what was measured.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/profile.hpp"
#include "lathe/spill.hpp"

namespace lathe {

/// Text naming the settings of stages 1-2, so formats with equal pre-chains share one run.
std::string prechain_key(const delivery_profile& p);

/// The chain before loudness normalization (p.chain_order: high-pass, EQ, de-esser, multiband,
/// stereo, saturation, reverb) over a whole buffer, each stage latency compensated, so the
/// output is sample-aligned with the input. When `report` is given it receives one JSON object
/// per stage saying what it did (gain reduction per band, width change, reverb level...).
/// Allocates; thread-safe.
audio_buffer apply_prechain(const audio_buffer& in, double sample_rate_hz, const delivery_profile& p,
                            nlohmann::json* report = nullptr);

/// Integrated loudness (LUFS) of a whole buffer.
double integrated_loudness(const audio_buffer& audio, double sample_rate_hz);

/// What normalization did for one master.
struct normalization_result {
  double pre_loudness_lufs = 0.0;     ///< before the gain, at the output rate
  double target_lufs = 0.0;           ///< this track's target (album mode shifts it)
  double gain_db = 0.0;               ///< the normalization gain applied before the limiter
  double shortfall_lu = 0.0;          ///< how far below the target it stopped (>= 0): linear mode at the
                                      ///< ceiling, limit mode at limiter_params::max_reduction_db
  int iterations = 0;                 ///< renders measured by the loudness loop (linear: attempts)
  int predictions = 0;                ///< loudness predictions of the gain search (no audio read)
  int passes = 0;                     ///< full-track streaming passes in all (resampling and detection, loop, delivery)
  bool limited = false;               ///< the limiter reduced gain somewhere
  double limiter_ceiling_dbtp = 0.0;  ///< the ceiling the limiter finally aimed at
  limiter_stats limiter;
};

/// What was measured on the delivered samples (after quantization).
struct output_measurement {
  double integrated_lufs = silence_lufs;
  double true_peak_dbtp = -std::numeric_limits<double>::infinity();
  double sample_peak_dbfs = -std::numeric_limits<double>::infinity();
  double loudness_range_lu = 0.0;
  double sample_rate_hz = 0.0;
  int bit_depth = 0;
  std::size_t frames = 0;
  double duration_s = 0.0;
  std::size_t clamped_samples = 0;  ///< quantization clamps (should be 0)
  loudness_blocks blocks;           ///< for the album loudness of the delivered masters
};

struct rendered_master {
  normalization_result normalization;
  output_measurement measured;
  /// How the pre-chain output reached the output rate: empty (same rate), "polyphase"
  /// (lathe::polyphase_stream, both backends) or "soxr" (libsoxr VHQ, for the rate pairs whose
  /// polyphase table does not fit, see polyphase_resampler::fits).
  std::string resampler;
  /// Which backend rendered the normalization loop and the delivery ("cpu" or "gpu") and, for a
  /// CPU render in a GPU run, why the GPU did not (the GPU path does not cover the case, or it
  /// failed and the error).
  std::string backend = "cpu";
  std::string backend_note;
  bool passed = false;
  std::vector<std::string> failures;  ///< why it failed the profile's checks, in words
  // The delivered samples: integer PCM (bit_depth 16/24) or float (32), interleaved.
  std::vector<std::int32_t> int_samples;
  std::vector<float> float_samples;
};

/// Receives a render's delivered master block by block. A render makes one delivery attempt or
/// a few (the ceiling loop); begin() starts each, discarding the previous one, and the last one
/// begun is the master.
class master_sink {
 public:
  virtual ~master_sink() = default;
  /// A new attempt of `frames` frames at `bit_depth` (16/24 integers, 32 float).
  virtual void begin(double sample_rate_hz, int channels, int bit_depth, std::size_t frames) = 0;
  /// The next frames: `delivered` is what a player decodes (planar float); `ints` (16/24-bit) or
  /// `floats` (32-bit) the same frames interleaved, as the file stores them (the other is
  /// empty). Valid during the call only.
  virtual void add(const_block_view delivered, std::span<const std::int32_t> ints, std::span<const float> floats) = 0;
};

/// render_master as a stream: `pre` is read in blocks, the delivered master goes to `sink` in
/// blocks, and what a later pass reads again (the resampled source, the limiter's envelope) is
/// kept in anonymous files in `spill_folder` (in memory when it is empty). Memory then does not
/// grow with the track. The returned master carries no samples (the sink has them); otherwise
/// it equals the whole-buffer render_master's, and the delivered samples are the same bit for
/// bit, wherever the spills are. Throws output_error when a spill cannot be written.
rendered_master render_master(const audio_spill& pre, double pre_rate_hz, const delivery_profile& p, double target_lufs,
                              std::uint64_t dither_seed, master_sink& sink,
                              const std::filesystem::path& spill_folder = {});

/// Renders one master from `pre` (the pre-chain output at `pre_rate_hz`) for profile `p`,
/// aiming at `target_lufs` (the profile's target in track mode; shifted per track in album
/// mode). `dither_seed` makes the dither reproducible per track and format. Allocates;
/// thread-safe; deterministic.
rendered_master render_master(const audio_buffer& pre, double pre_rate_hz, const delivery_profile& p,
                              double target_lufs, std::uint64_t dither_seed);

/// The delivered samples of a master as float audio (integers scaled by 2^-(bit_depth-1)),
/// exactly what a player decodes; needs m.measured.bit_depth. Allocates.
audio_buffer delivered_audio(const rendered_master& m, int channels = 2);

/// Checks a rendered master against its profile (loudness against its own target within the
/// profile's tolerance, linear-mode shortfall, true peak under the ceiling, no clamped
/// samples), appending to m.failures and setting m.passed. Both backends use it.
void check_against_profile(rendered_master& m, const delivery_profile& p);

/// 64-bit FNV-1a, for fingerprints and dither seeds (stable across runs and machines).
std::uint64_t fnv1a64(std::string_view text, std::uint64_t h = 0xcbf29ce484222325ull) noexcept;

}  // namespace lathe
