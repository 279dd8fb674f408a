#pragma once
// The catalog job: decode -> analyze and process -> render formats -> encode and write, on a
// tbb::parallel_pipeline, with the tracks in flight bounded by a memory budget.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>

#include "backend.hpp"
#include "plan.hpp"
#include "render_engine.hpp"

namespace lathe {

enum class log_format { text, json };

struct master_options {
  std::filesystem::path out_dir;
  int jobs = 0;                      ///< worker threads; 0 = every core
  std::size_t max_memory_bytes = 0;  ///< bound on the audio held by tracks in flight; 0 = half of RAM
  /// Album mode: the part of that bound that may keep album tracks' pre-chained audio from the
  /// album pass to their render (so they are decoded and pre-chained once); 0 = half of it.
  std::size_t album_hold_bytes = 0;
  log_format log = log_format::text;
  bool progress_on_terminal = false;  ///< one updating status line on stderr
  backend_choice backend;
  int gpus = 0;  ///< GPUs to use with the GPU backend (one engine per worker thread); 0 = all
  /// Makes the batch engine of a worker thread for the GPU backend; empty: the CUDA engine
  /// (host/gpu_engine.hpp). Tests put an emulation here to run the GPU backend's host side.
  engine_factory make_engine;
  /// Called on the worker thread as each track's decode begins (true) and ends (false), in
  /// every pass; empty: nothing. Tests slow decoding down here to see decodes overlap.
  std::function<void(std::size_t track, bool begins)> decode_observer;
  std::string catalog;  ///< what the user pointed at, for the report
  /// --reference: a reference master whose balance is every track's target (album references
  /// from the manifest take precedence for their album).
  std::filesystem::path reference_file;
  std::string report_name = "report.json";  ///< file in out_dir; shards write report-shard-K-of-N.json
};

struct master_summary {
  std::size_t tracks = 0, succeeded = 0, failed = 0, resumed = 0, qc_failed = 0;
  double audio_s = 0.0;  ///< audio mastered in this run (resumed tracks excluded)
  double wall_s = 0.0;
  std::size_t peak_reserved_bytes = 0;  ///< the memory gate's high-water mark
};

/// Masters every track of the plan to every profile, writes the report (options.report_name) into out_dir and
/// returns the counts. Outputs whose fingerprint (fingerprint_plan, content hashes cached under
/// out_dir/.lathe/state/inputs) matches their sidecar are resumed. One bad track never stops the others. Deterministic:
/// the same inputs, profiles and version give bit-identical files whatever the thread count.
master_summary run_master(const run_plan& plan, const master_options& options);

/// Parses "512M", "4G", "1.5GiB", "2000000000" into bytes; throws config_error.
std::size_t parse_size(const std::string& text);

/// Bytes one track holds in flight when its spills stay in memory (decoded audio, pre-chains,
/// resampled sources and limiter envelopes); it grows with the track.
std::size_t estimate_track_bytes(const planned_track& t, const run_plan& plan);

/// Bytes one track holds in flight when it streams through spill files, whatever its length,
/// for each format it renders at once: the decoder's, the pre-chain stages', soxr's, the
/// limiter's and the encoder's state and blocks. The memory gate reserves this times the formats
/// a streamed track renders side by side (as many as its share of the budget holds, at least
/// one), or, for a track held in memory, estimate_track_bytes() plus this per format; so resident
/// memory stays under --max-memory plus one track's streaming working set and the process's
/// fixed footprint (bench/memory_bound.sh).
inline constexpr std::size_t streaming_track_bytes = std::size_t{64} << 20;

}  // namespace lathe
