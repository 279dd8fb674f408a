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
#include "render_engine.hpp"

namespace lathe {

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
/// cuFFT plans and work buffers. Every method synchronizes its stream before returning. A
/// sticky CUDA error comes out as engine_lost.
class gpu_engine final : public render_engine {
 public:
  /// Binds the calling thread to `device` and creates the stream. `engines_on_device` engines
  /// share the device: each call may hold that share of the memory free now (less a reserve for
  /// cuFFT plans and the CUDA runtime). Throws gpu::cuda_error.
  explicit gpu_engine(int device, int engines_on_device = 1);
  ~gpu_engine() override;
  gpu_engine(const gpu_engine&) = delete;
  gpu_engine& operator=(const gpu_engine&) = delete;

  using result = engine_result;

  /// All tracks share `source_rate_hz`. Returns one result per track, in order.
  std::vector<result> render(std::span<const engine_track> tracks, double source_rate_hz,
                             std::span<const delivery_profile> profiles) override;

  /// The tonal analysis of one stereo track: its Welch spectrum on the device
  /// (lathe_gpu/tonal.hpp), then lathe::summarize on the host, as analyze_tonal does on the CPU.
  tonal_analysis tonal(const audio_buffer& stereo, double sample_rate_hz) override;

  std::size_t call_budget_bytes() const override { return call_budget_bytes_; }
  int device() const noexcept override { return device_; }

 private:
  struct impl;
  std::vector<result> render_batch(std::span<const engine_track> tracks, double source_rate_hz,
                                   std::span<const delivery_profile> profiles);
  gpu::device_vector<float> run_prechain(const gpu::device_vector<float>& d_in, const gpu::lane_layout& layout,
                                         double rate, const delivery_profile& p, std::vector<nlohmann::json>& reports);

  int device_ = 0;
  std::size_t call_budget_bytes_ = 0;
  std::unique_ptr<impl> impl_;
};

}  // namespace lathe

#endif  // LATHE_HAVE_CUDA
