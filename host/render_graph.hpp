#pragma once
// The render graph: oneTBB pipelines over move-only tokens (one per track in flight, carrying
// its decoded source, spills and masters) admitted in catalog order by a memory gate.
//
//   decode (serial, in order; the gate admits) -> analyze and process (input meters, tonal
//   balance, every distinct pre-chain in one pass into spills) -> GPU render and mix check ->
//   deliver (per format: render_master streamed into its file, or the GPU's master written;
//   record, report entry and sidecar)
//
// Album mode runs two lighter passes first over the album tracks: their tonal analysis (album
// consistency) and their loudness after the pre-chain (album decisions). docs/ARCHITECTURE.md
// draws the whole run.
#include <cstddef>
#include <memory>
#include <vector>

#include "adaptive_targets.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "track_state.hpp"

namespace lathe {

class render_graph {
 public:
  /// `state` (per track of `plan`) is read and written by every pass; `budget` bounds the
  /// bytes of the tracks in flight, `threads` the tokens (two per thread).
  render_graph(const run_plan& plan, const master_options& opt, std::vector<track_state>& state,
               const adaptive_targets& targets, std::size_t budget, int threads);
  ~render_graph();
  render_graph(const render_graph&) = delete;
  render_graph& operator=(const render_graph&) = delete;

  /// Album consistency: every album track's input and tonal analysis (decoded, not kept).
  void analyze_album_tracks();
  /// Album mode: every album track's loudness and true peak after each distinct pre-chain.
  void measure_album_prechains();
  /// Every output not already complete, rendered and written; one progress line per track
  /// (failed tracks included), `audio_to_do_s` for the estimate of time left.
  void render(double audio_to_do_s);
  /// The memory gate's high-water mark.
  std::size_t peak_reserved_bytes() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace lathe
