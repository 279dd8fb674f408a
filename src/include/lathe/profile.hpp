#pragma once
// Delivery profiles: one TOML file per destination format (configs/*.toml).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "lathe/adaptive.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/deesser.hpp"
#include "lathe/dither.hpp"
#include "lathe/eq.hpp"
#include "lathe/highpass.hpp"
#include "lathe/limiter.hpp"
#include "lathe/multiband.hpp"
#include "lathe/reverb.hpp"
#include "lathe/saturation.hpp"
#include "lathe/stereo.hpp"

namespace lathe {

enum class normalization_mode {
  limit,   ///< reach the target, the true-peak limiter holding the ceiling
  linear,  ///< gain only, never limits: stops short of the target when the ceiling forbids it
};

/// The stages a chain can run before loudness normalization, in the order `chain.order` lists.
enum class chain_stage { highpass, eq, deesser, multiband, stereo, saturation, reverb };
bool parse_chain_stage(const std::string& name, chain_stage& out);
const char* to_string(chain_stage s) noexcept;

struct delivery_profile {
  std::string name;  ///< e.g. "streaming"; from the file's `name`, else its stem
  std::string description;
  std::string source;  ///< where the numbers come from (cited in `lathe formats`)
  std::filesystem::path file;

  double target_lufs = -14.0;
  double tolerance_lu = 0.1;  ///< pass/fail band for the measured master
  double ceiling_dbtp = -1.0;
  normalization_mode normalization = normalization_mode::limit;

  std::optional<double> sample_rate_hz;  ///< nullopt: keep the source rate
  double min_sample_rate_hz = 0.0;       ///< with the source rate: raise to at least this
  int bit_depth = 24;                    ///< 16, 24 or 32 (32 = float, WAV only)
  container_format container = container_format::flac;
  noise_shaping shaping = noise_shaping::none;

  /// Stages 1-2 and the rest of the chain, run in this order at the source rate.
  std::vector<chain_stage> chain_order = {chain_stage::highpass, chain_stage::eq};
  highpass_params highpass;
  eq_params eq;
  deesser_params deesser;
  multiband_params multiband;  ///< used only when listed in chain_order
  stereo_params stereo;
  saturation_params saturation;
  reverb_params reverb;      ///< ir_path is resolved against the profile's folder
  limiter_params limiter;    ///< limiter.ceiling_dbtp mirrors ceiling_dbtp
  adaptive_params adaptive;  ///< [adaptive]: per-track settings from analysis (off by default)

  /// The rate a master of a source at `source_rate_hz` is delivered at.
  double output_rate_hz(double source_rate_hz) const noexcept {
    if (sample_rate_hz) return *sample_rate_hz;
    return source_rate_hz < min_sample_rate_hz ? min_sample_rate_hz : source_rate_hz;
  }
};

/// Parses one profile. Throws config_error "FILE:LINE:COL: reason" (unknown key, wrong type,
/// value out of range, FLAC with 32-bit, unknown EQ band type...). Unknown keys are errors, so
/// typos do not pass silently.
delivery_profile load_profile(const std::filesystem::path& file);

/// Replaces p's chain (order and stage settings; the limiter stays) with the [chain] table of a
/// chain preset file (configs/chains/*.toml), and its [adaptive] table when it has one. Throws
/// config_error "FILE:LINE:COL: reason".
void apply_chain_preset(const std::filesystem::path& file, delivery_profile& p);

/// Every *.toml in `dir`, sorted by name. Throws config_error for the first bad file.
std::vector<delivery_profile> load_profiles_dir(const std::filesystem::path& dir);

/// A stable text form of every setting that affects the audio (for resume fingerprints).
std::string profile_fingerprint(const delivery_profile& p);

/// The same for the chain before loudness normalization (order and stage settings): formats
/// whose chains are equal share one run of it.
std::string chain_fingerprint(const delivery_profile& p);

}  // namespace lathe
