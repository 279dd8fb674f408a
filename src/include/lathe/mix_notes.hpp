#pragma once
// Mix notes: QC of an incoming mix, in words a mastering engineer would send back to the mixer
// (what was found, where, how bad, what to do), and translation checks of a master.
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/loudness.hpp"
#include "lathe/spill.hpp"
#include "lathe/tonal.hpp"

namespace lathe {

enum class note_severity { info, warning, problem };
const char* to_string(note_severity s) noexcept;

/// One finding. `code` is stable for machines; the texts are for people.
struct mix_note {
  std::string code;  ///< see check_mix()
  note_severity severity = note_severity::warning;
  std::string what;             ///< "Clipped samples on the left channel"
  std::string where;            ///< "at 0:42.310, 1:03.002 and 3 more" or "whole track"
  std::string how_bad;          ///< "12 runs, longest 9 samples (0.2 ms)"
  std::string advice;           ///< "Lower the mix bus or the limiter output by 1 dB and re-export"
  std::vector<double> times_s;  ///< where, machine-readable (first few occurrences)
  nlohmann::json figures;       ///< the measured values behind the note
};

/// Thresholds; the defaults are what the tests and the README document.
struct mix_check_params {
  double headroom_dbfs = -3.0;           ///< sample peaks above this: "little headroom"
  double intersample_dbtp = 0.0;         ///< true peak above this (on-sample under full scale): "inter-sample clipping"
  double bus_limiter_plr_db = 9.0;       ///< PLR under this, with flat-topped peaks: "limiter on the mix bus"
  double dc_offset_dbfs = -50.0;         ///< |mean| above this: "DC offset" (-50 dBFS: 0.3 % of full scale)
  double anti_phase_correlation = -0.2;  ///< overall L/R correlation under this: "polarity"
  double mono_drop_db = 3.0;             ///< loudness drop of the mono fold-down beyond this: "mono compatibility"
  double excess_db = 6.0;                ///< sub-bass (20..60 Hz) or harshness (2..6 kHz) this far above the target
  double noise_floor_dbfs = -60.0;       ///< RMS of a head or tail above this with no programme: "noise"
  double truncation_dbfs = -40.0;        ///< level of the first/last 10 ms above this: "truncated"
};

/// What a mix check reads. `target` may be null (then no sub-bass/harshness notes).
struct mix_check_input {
  const audio_buffer* audio = nullptr;  ///< stereo, as decoded (or:)
  const audio_spill* spill = nullptr;   ///< the same in a spill, read in bounded blocks
  double sample_rate_hz = 0.0;
  const source_info* source = nullptr;  ///< container, encoding, bit depth, rate as stored
  const track_analysis* analysis = nullptr;
  const tonal_analysis* tonal = nullptr;
  const target_curve* target = nullptr;
};

/// Runs every check; notes in a fixed order. Codes: clipping, intersample_clipping, headroom,
/// bus_limiter, dc_offset, polarity, mono_compatibility, sub_bass, harshness, noisy_head,
/// noisy_tail, truncated_head, truncated_tail, bit_depth, sample_rate. A clean mix gets none.
std::vector<mix_note> check_mix(const mix_check_input& in, const mix_check_params& p = {});

nlohmann::json to_json(const mix_note& n);

/// One album's notes as Markdown (mix-notes.md): a heading per track, its notes as bullet
/// points; tracks without notes are listed as clean.
struct track_notes {
  std::string title;  ///< or the file name
  std::string path;
  std::vector<mix_note> notes;
};
std::string mix_notes_markdown(const std::string& album, const std::vector<track_notes>& tracks);

/// How a master translates to other playback.
struct translation_check {
  /// Integrated loudness of the mono fold-down (L+R)/2 on both channels minus the stereo
  /// loudness (dB; ~0 for a mono-compatible mix, more negative when L and R cancel).
  double mono_fold_down_db = 0.0;
  /// Level lost on a small speaker: 10 log10 of the fraction of mid energy above 150 Hz (dB, <= 0).
  double small_speaker_loss_db = 0.0;
  /// target_deviation_db of the master against the target (NaN without a target).
  double target_deviation_db = 0.0;
};

/// check_translation() fed block by block: the fold-down and stereo loudness meters run on each
/// block, so finish() equals check_translation() of the concatenated blocks bit for bit, for any
/// block partition. Memory: two meters' state, a 4096-frame fold-down scratch and the loudness
/// block lists (10 per second). Not thread-safe; one per stream.
class translation_meter {
 public:
  /// Designs both meters' K-weighting. Precondition (checked): sample_rate_hz > 3364 Hz.
  /// Allocates.
  explicit translation_meter(double sample_rate_hz);

  /// Feeds the next frames of the stereo master (`stereo_master.channels` is 2; not checked).
  /// No allocation beyond the amortized growth of the block lists.
  void add(const_block_view stereo_master) noexcept;

  /// The checks of everything fed so far; `tonal` is the master's tonal analysis, `target` may
  /// be null (then target_deviation_db is NaN).
  translation_check finish(const tonal_analysis& tonal, const target_curve* target) const;

 private:
  loudness_meter mono_, stereo_;
  std::vector<float> mid_;  // one chunk of the fold-down
};

/// A translation_meter fed the whole master (stereo, checked). Allocates.
translation_check check_translation(const audio_buffer& master, double sample_rate_hz, const tonal_analysis& tonal,
                                    const target_curve* target);
nlohmann::json to_json(const translation_check& t);

}  // namespace lathe
