#pragma once
// The GPU mastering engine: the CPU chain of src/chain/master.cpp as batched CUDA stages.
// Built only with CUDA (LATHE_HAVE_CUDA); the pipeline uses it for --backend gpu.
#ifdef LATHE_HAVE_CUDA

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/audio_buffer.hpp"
#include "lathe/master.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/memory.hpp"

namespace lathe {

/// One track of a batch: decoded stereo audio at the batch's source rate.
struct gpu_track {
  const audio_buffer* audio = nullptr;
  std::vector<double> targets_lufs;  ///< per profile (album mode shifts them)
  std::uint64_t seed_base = 0;       ///< the dither seed of format p is fnv1a64(p.name, seed_base), as on the CPU
};

/// Renders every profile's master of a batch on one GPU:
///   upload -> input loudness and true peak (for the QC report) -> the pre-chain in the profile's order (high-pass:
///   chunked IIR; EQ: cuFFT; de-esser, multiband, stereo, saturation, reverb: lathe_gpu/{dynamics,stereo,saturation,
///   reverb}.hpp), every stage's report as apply_prechain writes it
///   -> per profile: polyphase resampling -> both true-peak detectors -> normalization loop (limiter render +
///   K-weighted loudness on the device; only per-track gains and sub-block energies cross to the host) -> TPDF
///   quantization (noise-shaped formats: on the host after download) -> measurement of the delivered samples on the
///   device -> download.
/// Masters the GPU path does not cover (normalization = "linear", silence, a true peak found over
/// the ceiling after quantization) are rendered by the CPU chain (render_master) instead, and
/// say so in `cpu_fallback`. Not thread-safe: one engine per host thread; each owns its stream,
/// cuFFT plans and work buffers. Every method synchronizes its stream before returning.
class gpu_engine {
 public:
  /// Binds the calling thread to `device` and creates the stream. Throws gpu::cuda_error.
  explicit gpu_engine(int device);
  ~gpu_engine();
  gpu_engine(const gpu_engine&) = delete;
  gpu_engine& operator=(const gpu_engine&) = delete;

  struct result {
    std::vector<rendered_master> masters;       ///< per profile
    std::vector<bool> cpu_fallback;             ///< per profile: rendered by the CPU chain
    loudness_blocks input_blocks;               ///< the input's loudness, for complete_analysis()
    float input_true_peak = 0.0f;               ///< the input's true peak (linear)
    std::vector<nlohmann::json> chain_reports;  ///< per profile: what each pre-chain stage did
  };

  /// All tracks share `source_rate_hz`. Returns one result per track, in order.
  std::vector<result> render(std::span<const gpu_track> tracks, double source_rate_hz,
                             std::span<const delivery_profile> profiles);

  /// The tonal analysis of one stereo track: its Welch spectrum on the device
  /// (lathe_gpu/tonal.hpp), then lathe::summarize on the host, as analyze_tonal does on the CPU.
  tonal_analysis tonal(const audio_buffer& stereo, double sample_rate_hz);

  int device() const noexcept { return device_; }

 private:
  struct impl;
  gpu::device_vector<float> run_prechain(const gpu::device_vector<float>& d_in, const gpu::lane_layout& layout,
                                         double rate, const delivery_profile& p, std::vector<nlohmann::json>& reports);

  int device_ = 0;
  std::unique_ptr<impl> impl_;
};

}  // namespace lathe

#endif  // LATHE_HAVE_CUDA
