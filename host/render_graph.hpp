#pragma once
// The render graph: oneTBB pipelines over move-only tokens (one per track in flight, carrying
// its decoded source, spills and masters) admitted in catalog order by a memory gate.
//
//   decode (serial, in order; the gate admits) -> analyze and process (input meters, tonal
//   balance, every distinct pre-chain in one pass into spills) -> GPU render and mix check ->
//   deliver (per format: render_master streamed into its file, or the GPU's master written;
//   record, report entry and sidecar)
//
// Album mode runs lighter passes over the album tracks first: their tonal analysis (album
// consistency), then, window by window, their loudness after the pre-chain (album decisions),
// keeping the pre-chained audio for the window's render when it fits. docs/ARCHITECTURE.md draws
// the whole run.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "adaptive_targets.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "track_state.hpp"

namespace lathe {

/// Tracks (plan indices) rendered together after one album pass, and their albums.
struct render_window {
  std::vector<std::size_t> tracks;
  std::vector<std::string> albums;
};

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
  /// The catalog in windows, each rendered after its own album pass: whole albums (and the lone
  /// tracks among them, in catalog order) whose pre-chained audio fits the part of the budget
  /// that may be kept from an album pass to the render (album_hold_bytes). One window with the
  /// GPU backend.
  std::vector<render_window> windows() const;
  /// Album mode: the window's album tracks' loudness and true peak after each distinct
  /// pre-chain; what fits is kept for render().
  void measure_album_prechains(const render_window& window);
  /// Starts the progress lines: `audio_to_do_s` for the estimate of time left.
  void begin_render(double audio_to_do_s);
  /// The window's outputs not already complete, rendered and written; one progress line per track.
  void render(const render_window& window);
  /// The progress lines of the tracks that failed before any render (so every track has one).
  void end_render();
  /// The memory gate's high-water mark.
  std::size_t peak_reserved_bytes() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace lathe
