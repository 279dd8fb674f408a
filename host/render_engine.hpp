#pragma once
// What the render graph asks of a batch engine (the CUDA engine, host/gpu_engine.hpp): every
// format's master of several tracks in one call. Host-compilable, so the graph's batching,
// fallbacks and lost devices are exercised without a GPU (tests/host/engine_batches_test.cpp).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/audio_buffer.hpp"
#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"

namespace lathe {

/// One track of an engine call: decoded stereo audio at the call's source rate.
struct engine_track {
  const audio_buffer* audio = nullptr;
  std::vector<double> targets_lufs;  ///< per profile (album mode shifts them)
  std::uint64_t seed_base = 0;       ///< the dither seed of format p is fnv1a64(p.name, seed_base), as on the CPU
};

/// What an engine call gives back per track.
struct engine_result {
  std::vector<rendered_master> masters;       ///< per profile
  std::vector<bool> cpu_fallback;             ///< per profile: rendered by the CPU chain
  loudness_blocks input_blocks;               ///< the input's loudness, for complete_analysis()
  float input_true_peak = 0.0f;               ///< the input's true peak (linear)
  std::vector<nlohmann::json> chain_reports;  ///< per profile: what each pre-chain stage did
};

/// Thrown by an engine whose device can take no more work (a sticky CUDA error: the context is
/// gone). The run stops using that device; other failures concern one call only.
class engine_lost : public error {
 public:
  using error::error;
};

class render_engine {
 public:
  virtual ~render_engine() = default;
  /// All tracks share `source_rate_hz`. Returns one result per track, in order; each track's
  /// masters are the same whatever else is in the call.
  virtual std::vector<engine_result> render(std::span<const engine_track> tracks, double source_rate_hz,
                                            std::span<const delivery_profile> profiles) = 0;
  /// The tonal analysis of one stereo track, as analyze_tonal gives it.
  virtual tonal_analysis tonal(const audio_buffer& stereo, double sample_rate_hz) = 0;
  /// Device memory one call may hold (this engine's share of its device).
  virtual std::size_t call_budget_bytes() const = 0;
  virtual int device() const noexcept = 0;
};

/// Makes the engine of one worker thread on `device`.
using engine_factory = std::function<std::unique_ptr<render_engine>(int device)>;

/// Device bytes one engine call holds per track of `frames` frames at `source_rate_hz` for
/// `profiles`: the input, every distinct pre-chain output, the stages' work buffers, and one
/// format's buffers at its rate (resampled, detector peaks, limiter output, delivered,
/// quantized), counted from gpu_engine::render.
std::size_t engine_track_bytes(std::size_t frames, double source_rate_hz, std::span<const delivery_profile> profiles);

/// One track of the render, as the batch packer sees it.
struct batch_candidate {
  std::size_t track = 0;         ///< index in the plan
  double rate_hz = 0.0;          ///< source rate (tracks of one call share it)
  std::size_t host_bytes = 0;    ///< what the memory gate reserves for it
  std::size_t device_bytes = 0;  ///< engine_track_bytes
  bool on_engine = true;         ///< false: rendered on the CPU, always alone
};

struct batch_limits {
  std::size_t host_bytes = 0;    ///< per call: the token's share of --max-memory
  std::size_t device_bytes = 0;  ///< per call: render_engine::call_budget_bytes
  std::size_t tracks = 16;       ///< per call
};

/// Packs the candidates (catalog order) into engine calls: consecutive engine tracks of one
/// rate while the call's host and device bytes and track count stay within `limits`. A track
/// that alone exceeds a limit gets a call of its own; CPU tracks are alone. Every candidate is in
/// exactly one batch, in order.
std::vector<std::vector<std::size_t>> pack_batches(std::span<const batch_candidate> candidates,
                                                   const batch_limits& limits);

}  // namespace lathe
