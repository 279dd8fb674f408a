#ifdef LATHE_HAVE_CUDA

#include "gpu_engine.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "lathe/dither.hpp"
#include "lathe/eq.hpp"
#include "lathe/gain_search.hpp"
#include "lathe/polyphase.hpp"
#include "lathe/reverb.hpp"
#include "lathe/stage_module.hpp"
#include "lathe_gpu/chain_resources.hpp"
#include "lathe_gpu/convolution.hpp"
#include "lathe_gpu/cuda_error.hpp"
#include "lathe_gpu/device.hpp"
#include "lathe_gpu/dither.hpp"
#include "lathe_gpu/dynamics.hpp"
#include "lathe_gpu/elementwise.hpp"
#include "lathe_gpu/iir.hpp"
#include "lathe_gpu/lanes.hpp"
#include "lathe_gpu/limiter.hpp"
#include "lathe_gpu/loudness.hpp"
#include "lathe_gpu/memory.hpp"
#include "lathe_gpu/resample.hpp"
#include "lathe_gpu/reverb.hpp"
#include "lathe_gpu/saturation.hpp"
#include "lathe_gpu/stereo.hpp"
#include "lathe_gpu/tonal.hpp"
#include "lathe_gpu/true_peak.hpp"

namespace lathe {

namespace {

double lufs_of(const loudness_blocks& b) {
  return b.integrated_lufs();
}

}  // namespace

struct gpu_engine::impl {
  gpu::stream stream;           // first: destroyed last, after every buffer freed on it
  bool stream_ordered = false;  // device buffers come from the device's pool on `stream`
  // Page-locked staging, kept between calls: uploads, float and integer downloads.
  gpu::pinned_vector<float> upload, download_f;
  gpu::pinned_vector<std::int32_t> download_i;
  gpu::cufft_plan_cache plans;
  gpu::gpu_convolver convolver;
  std::map<std::filesystem::path, std::shared_ptr<const impulse_response>> irs;  // decoded once per engine
  // Resampling filters by (source rate, output rate): designed and uploaded once per engine.
  struct resampler {
    polyphase_resampler design;
    gpu::resample_filter filter;
  };
  std::map<std::pair<double, double>, std::unique_ptr<const resampler>> resamplers;

  const resampler& resampler_for(double from_hz, double to_hz) {
    auto it = resamplers.find({from_hz, to_hz});
    if (it == resamplers.end()) {
      polyphase_resampler design;
      design.prepare(from_hz, to_hz);
      gpu::resample_filter filter(design, stream);
      it = resamplers
               .emplace(std::pair{from_hz, to_hz},
                        std::make_unique<const resampler>(resampler{std::move(design), std::move(filter)}))
               .first;
    }
    return *it->second;
  }

  const impulse_response& ir(const std::filesystem::path& path) {
    auto it = irs.find(path);
    if (it == irs.end())
      it = irs.emplace(path, std::make_shared<const impulse_response>(load_impulse_response(path))).first;
    return *it->second;
  }
};

namespace {

// Each stage module on the device: the whole batch from `cur` into `next`, latency compensated
// as prechain_stream does it on the CPU, and the statistics of every track (one per stereo
// lane pair), which the module's report() turns into the same entries as the CPU's.
struct device_stages {
  const gpu::lane_layout& layout;
  double rate;
  gpu::stage_resources res;
  const gpu::stream& s;
  const impulse_response* reverb_ir;  // the reverb's, when the chain has one
  std::size_t n_tracks;

  template <class Stats>
  std::vector<Stats> same_for_all(Stats v = {}) const {
    return std::vector<Stats>(n_tracks, v);
  }

  std::vector<no_stats> run(stage_module<chain_stage::highpass>, const highpass_params& p,
                            const gpu::device_vector<float>& cur, gpu::device_vector<float>& next) {
    gpu::iir_plan highpass(gpu::highpass_sections(p, rate), layout, s);
    highpass.process_async(cur.data(), next.data(), s);
    return same_for_all<no_stats>();
  }

  std::vector<eq_stats> run(stage_module<chain_stage::eq>, const eq_params& p, const gpu::device_vector<float>& cur,
                            gpu::device_vector<float>& next) {
    const eq_params eq = eq_at_rate(p, rate);
    if (eq.bypassed()) {
      gpu::detail::copy_async(next.data(), cur.data(), layout.total_frames * sizeof(float), s.get());
      return same_for_all<eq_stats>();
    }
    const std::vector<float> h = eq_fir(eq, rate);
    const std::size_t taps = h.size();
    const gpu::gpu_fir_filter filter(h, gpu::conv_auto_block_frames(taps), s);
    res.convolver.convolve_async(filter, layout, cur, next, gpu::linear_phase_delay_frames(taps), res.plans, s);
    s.synchronize();  // the filter's spectra die at the end of this scope
    return same_for_all(eq_stats{eq.bands.size(), taps});
  }

  std::vector<deesser_stats> run(stage_module<chain_stage::deesser>, const deesser_params& p,
                                 const gpu::device_vector<float>& cur, gpu::device_vector<float>& next) {
    return gpu::deesser_batch(p, rate, layout, cur, next, res, s);
  }

  std::vector<std::vector<dynamics_stats>> run(stage_module<chain_stage::multiband>, const multiband_params& p,
                                               const gpu::device_vector<float>& cur, gpu::device_vector<float>& next) {
    return gpu::multiband_batch(p, rate, layout, cur, next, res, s);
  }

  std::vector<stereo_stats> run(stage_module<chain_stage::stereo>, const stereo_params& p,
                                const gpu::device_vector<float>& cur, gpu::device_vector<float>& next) {
    return gpu::stereo_batch(p, rate, layout, cur, next, res, s);
  }

  std::vector<no_stats> run(stage_module<chain_stage::saturation>, const saturation_params& p,
                            const gpu::device_vector<float>& cur, gpu::device_vector<float>& next) {
    gpu::saturation_batch(p, rate, layout, cur, next, res, s);
    return same_for_all<no_stats>();
  }

  std::vector<reverb_stats> run(stage_module<chain_stage::reverb>, const reverb_params& p,
                                const gpu::device_vector<float>& cur, gpu::device_vector<float>& next) {
    return gpu::reverb_batch(p, *reverb_ir, rate, layout, cur, next, res, s);
  }
};

}  // namespace

// The chain before normalization (p.chain_order) over the whole batch, each stage on the device;
// appends each stage's report per track.
gpu::device_vector<float> gpu_engine::run_prechain(const gpu::device_vector<float>& d_in,
                                                   const gpu::lane_layout& layout, double rate,
                                                   const delivery_profile& p, std::vector<nlohmann::json>& reports) {
  const gpu::stream& s = impl_->stream;
  const bool reverb = std::find(p.chain_order.begin(), p.chain_order.end(), chain_stage::reverb) != p.chain_order.end();
  device_stages stages{layout,
                       rate,
                       gpu::stage_resources{impl_->plans, impl_->convolver},
                       s,
                       reverb ? &impl_->ir(p.reverb.ir_path) : nullptr,
                       layout.lanes() / 2};
  gpu::device_vector<float> cur(d_in.size()), next(d_in.size());
  gpu::detail::copy_async(cur.data(), d_in.data(), layout.total_frames * sizeof(float), s.get());
  for (const chain_stage st : p.chain_order) {
    visit_stage(st, [&]<class M>(M m) {
      const auto stats = stages.run(m, M::of(p), cur, next);
      for (std::size_t t = 0; t < stages.n_tracks; ++t) reports[t].push_back(M::report(M::of(p), stats[t]));
    });
    std::swap(cur, next);
  }
  s.synchronize();
  return cur;
}

gpu_engine::gpu_engine(int device, int engines_on_device) : device_(device) {
  // Kept back from the calls: cuFFT plans, the chain's filters and the runtime's own needs.
  constexpr double reserve = 0.2;
  const std::size_t free = gpu::free_memory_bytes(device);
  const double usable = (1.0 - reserve) * static_cast<double>(free);
  call_budget_bytes_ = static_cast<std::size_t>(usable / std::max(1, engines_on_device));
  impl_ = std::make_unique<impl>();
  impl_->stream_ordered = gpu::keep_pool_memory(device, static_cast<std::size_t>(usable));
}

gpu_engine::~gpu_engine() {
  // The buffers are freed on this engine's stream, on its device.
  try {
    gpu::set_current_device(device_);
  } catch (...) {  // a lost device: the frees fail quietly
  }
}

namespace {

// Runs `f` with the engine's device current and its buffers stream-ordered (when the device
// has pools). A sticky CUDA error leaves the device unusable for the rest of the process:
// engine_lost.
template <class F>
auto on_engine_stream(int device, const gpu::stream& s, bool stream_ordered, F f) {
  try {
    gpu::set_current_device(device);
    std::optional<gpu::stream_ordered_allocation> scope;
    if (stream_ordered) scope.emplace(s);
    return f();
  } catch (const gpu::cuda_error& e) {
    if (e.sticky()) throw engine_lost(e.what());
    throw;
  }
}

}  // namespace

tonal_analysis gpu_engine::tonal(const audio_buffer& stereo, double sample_rate_hz) {
  return on_engine_stream(device_, impl_->stream, impl_->stream_ordered, [&] {
    LATHE_EXPECTS(stereo.channels() == 2, "the GPU tonal analysis takes stereo tracks");
    const gpu::stream& s = impl_->stream;
    gpu::lane_layout layout;
    layout.add(stereo.frames());
    layout.add(stereo.frames());
    float* staging = gpu::reserve_pinned(impl_->upload, std::max<std::size_t>(layout.total_frames, 1));
    float peak = 0.0f;
    for (int c = 0; c < 2; ++c) {
      const float* x = stereo.channel(c);
      std::copy_n(x, stereo.frames(), staging + layout.offset[static_cast<std::size_t>(c)]);
      for (std::size_t i = 0; i < stereo.frames(); ++i) peak = std::max(peak, std::abs(x[i]));
    }
    gpu::device_vector<float> d(std::max<std::size_t>(layout.total_frames, 1));
    d.upload_async({staging, layout.total_frames}, s);
    const std::vector<welch_power> power = gpu::welch_power_batch(layout, sample_rate_hz, d, impl_->plans, s);
    return summarize(power.at(0), peak);
  });
}

std::vector<gpu_engine::result> gpu_engine::render(std::span<const engine_track> tracks, double source_rate_hz,
                                                   std::span<const delivery_profile> profiles) {
  return on_engine_stream(device_, impl_->stream, impl_->stream_ordered,
                          [&] { return render_batch(tracks, source_rate_hz, profiles); });
}

std::vector<gpu_engine::result> gpu_engine::render_batch(std::span<const engine_track> tracks, double source_rate_hz,
                                                         std::span<const delivery_profile> profiles) {
  const gpu::stream& s = impl_->stream;
  const std::size_t n_tracks = tracks.size();
  std::vector<result> results(n_tracks);
  for (result& r : results) {
    r.masters.resize(profiles.size());
    r.cpu_fallback.assign(profiles.size(), false);
    r.chain_reports.resize(profiles.size());
  }
  if (n_tracks == 0) return results;

  // ---- upload: lanes 2t and 2t+1 are track t's channels ------------------------------------
  gpu::lane_layout in_layout;
  for (const engine_track& t : tracks) {
    LATHE_EXPECTS(t.audio != nullptr && t.audio->channels() == 2, "the GPU engine takes stereo tracks");
    in_layout.add(t.audio->frames());
    in_layout.add(t.audio->frames());
  }
  float* staging = gpu::reserve_pinned(impl_->upload, std::max<std::size_t>(in_layout.total_frames, 1));
  for (std::size_t t = 0; t < n_tracks; ++t)
    for (int c = 0; c < 2; ++c)
      std::copy_n(tracks[t].audio->channel(c), tracks[t].audio->frames(),
                  staging + in_layout.offset[2 * t + static_cast<std::size_t>(c)]);
  gpu::device_vector<float> d_in(std::max<std::size_t>(in_layout.total_frames, 1));
  d_in.upload_async({staging, in_layout.total_frames}, s);

  // ---- input loudness and true peak, for the QC report (the CPU scans the rest) ------------
  {
    gpu::loudness_plan meter(in_layout, source_rate_hz, s);
    std::vector<loudness_blocks> blocks = meter.measure(d_in.data(), s);
    const gpu::peak_filter filter = gpu::true_peak_filter(source_rate_hz);
    gpu::peak_plan peaks(filter, in_layout, filter.latency_frames, s);
    gpu::device_vector<float> d_peaks(std::max<std::size_t>(peaks.output_layout().total_frames, 1));
    peaks.run_async(d_in.data(), d_peaks.data(), s);
    const std::vector<float> lane_peaks = peaks.lane_max(s);
    for (std::size_t t = 0; t < n_tracks; ++t) {
      results[t].input_blocks = std::move(blocks[t]);
      results[t].input_true_peak = std::max(lane_peaks[2 * t], lane_peaks[2 * t + 1]);
    }
  }

  // ---- the pre-chain at the source rate, once per distinct pre-chain ----------------------
  std::map<std::string, gpu::device_vector<float>> pre;
  std::map<std::string, std::vector<nlohmann::json>> pre_reports;  // per track
  for (const delivery_profile& p : profiles) {
    const std::string key = prechain_key(p);
    if (pre.count(key) != 0) continue;
    std::vector<nlohmann::json> reports(n_tracks, nlohmann::json::array());
    pre.emplace(key, run_prechain(d_in, in_layout, source_rate_hz, p, reports));
    pre_reports.emplace(key, std::move(reports));
  }
  for (std::size_t t = 0; t < n_tracks; ++t)
    for (std::size_t f = 0; f < profiles.size(); ++f)
      results[t].chain_reports[f] = pre_reports.at(prechain_key(profiles[f]))[t];

  // ---- per format -------------------------------------------------------------------------
  for (std::size_t f = 0; f < profiles.size(); ++f) {
    const delivery_profile& p = profiles[f];
    const double rate = p.output_rate_hz(source_rate_hz);
    const gpu::device_vector<float>& d_pre = pre.at(prechain_key(p));

    // 5a. resampling to the format's rate
    gpu::lane_layout layout = in_layout;
    gpu::device_vector<float> d_resampled;
    const float* x = d_pre.data();
    if (rate != source_rate_hz) {
      const impl::resampler& r = impl_->resampler_for(source_rate_hz, rate);
      const gpu::resample_batch batch(r.design, in_layout, s);
      layout = batch.output_layout();
      d_resampled = gpu::device_vector<float>(std::max<std::size_t>(layout.total_frames, 1));
      batch.run_async(r.filter, d_pre.data(), d_resampled.data(), s);
      x = d_resampled.data();
    }

    // Loudness before the gain, per track.
    gpu::loudness_plan meter(layout, rate, s);
    const std::vector<loudness_blocks> pre_blocks = meter.measure(x, s);
    std::vector<double> pre_lufs(n_tracks), gain(n_tracks);
    std::vector<bool> on_gpu(n_tracks, p.normalization == normalization_mode::limit);
    std::vector<std::string> why_cpu(
        n_tracks, on_gpu.empty() || on_gpu[0] ? "" : "linear normalization is rendered by the CPU chain");
    for (std::size_t t = 0; t < n_tracks; ++t) {
      pre_lufs[t] = lufs_of(pre_blocks[t]);
      if (!std::isfinite(pre_lufs[t])) {  // silence: the CPU chain reports it
        on_gpu[t] = false;
        why_cpu[t] = "silence is reported by the CPU chain";
      }
      gain[t] = std::isfinite(pre_lufs[t]) ? tracks[t].targets_lufs[f] - pre_lufs[t] : 0.0;
    }

    if (std::any_of(on_gpu.begin(), on_gpu.end(), [](bool b) { return b; })) {
      // 3. detection: the larger of the two detectors, as offline_limiter::analyze
      limiter_params lp = p.limiter;
      lp.ceiling_dbtp = p.ceiling_dbtp;
      gpu::batch_limiter limiter;
      limiter.prepare(layout, lp, rate, s);
      const gpu::peak_filter tp_filter = gpu::true_peak_filter(rate);
      gpu::peak_plan tp_plan(tp_filter, layout, limiter.latency_frames(), s);
      gpu::peak_plan meter_plan(gpu::meter_peak_filter(rate, tp_filter.latency_frames), layout,
                                limiter.latency_frames(), s);
      const std::size_t peak_frames = tp_plan.output_layout().total_frames;
      gpu::device_vector<float> d_peaks(std::max<std::size_t>(peak_frames, 1)), d_meter(d_peaks.size());
      tp_plan.run_async(x, d_peaks.data(), s);
      meter_plan.run_async(x, d_meter.data(), s);
      // Each track's detected peak before any gain, as offline_limiter::input_true_peak_dbtp(0):
      // it bounds the gain search (limit_mode_max_gain_db).
      const std::vector<float> tp_max = tp_plan.lane_max(s), meter_max = meter_plan.lane_max(s);
      gpu::max_into_async(d_peaks.data(), d_meter.data(), peak_frames, s);

      // 4. normalization: one gain_search per track, as on the CPU; audio stays on the device.
      gpu::device_vector<float> d_out(std::max<std::size_t>(layout.total_frames, 1));
      std::vector<gain_search> search;
      search.reserve(n_tracks);
      std::vector<double> max_gain(n_tracks);
      for (std::size_t t = 0; t < n_tracks; ++t) {
        const float detected = std::max({tp_max[2 * t], tp_max[2 * t + 1], meter_max[2 * t], meter_max[2 * t + 1]});
        max_gain[t] = limit_mode_max_gain_db(20.0 * std::log10(static_cast<double>(detected)), lp.ceiling_dbtp,
                                             lp.margin_db, lp.max_reduction_db);
        search.emplace_back(tracks[t].targets_lufs[f], gain[t], max_gain[t]);
        gain[t] = search.back().gain_db();
      }
      bool moved = true;  // a gain changed since the last render
      for (bool all_done = false; !all_done;) {
        limiter.render_async(d_peaks.data(), x, d_out.data(), gain, s);  // the meter synchronizes
        moved = false;
        const std::vector<loudness_blocks> blocks = meter.measure(d_out.data(), s);
        all_done = true;
        for (std::size_t t = 0; t < n_tracks; ++t) {
          if (!on_gpu[t] || search[t].done()) continue;
          search[t].observe(lufs_of(blocks[t]));
          gain[t] = search[t].gain_db();
          moved = moved || search[t].moved();
          all_done = all_done && search[t].done();
        }
      }
      // The search may end on a moved gain: render once more with the final gains. The
      // statistics are the final render's, computed once.
      if (moved) limiter.render_async(d_peaks.data(), x, d_out.data(), gain, s);
      const std::vector<limiter_stats> stats = limiter.stats(s);

      // 5b. quantization, and the delivered samples measured on the device
      const std::vector<std::size_t> offsets = gpu::quantize_output_offsets(layout);
      std::size_t interleaved = 0;
      for (std::size_t t = 0; t < n_tracks; ++t) interleaved += 2 * layout.frames[2 * t];
      std::vector<std::uint64_t> seeds(n_tracks);
      for (std::size_t t = 0; t < n_tracks; ++t) seeds[t] = fnv1a64(p.name, tracks[t].seed_base);
      gpu::device_vector<float> d_delivered(d_out.size());
      std::vector<std::vector<std::int32_t>> ints(n_tracks);
      std::vector<std::vector<float>> floats(n_tracks);
      std::vector<std::size_t> clamped(n_tracks, 0);
      if (p.bit_depth == 32) {
        float* host = gpu::reserve_pinned(impl_->download_f, std::max<std::size_t>(layout.total_frames, 1));
        d_out.download_async({host, layout.total_frames}, s);
        s.synchronize();
        for (std::size_t t = 0; t < n_tracks; ++t) {
          const std::size_t n = layout.frames[2 * t];
          floats[t].resize(2 * n);
          for (std::size_t i = 0; i < n; ++i) {
            floats[t][2 * i] = host[layout.offset[2 * t] + i];
            floats[t][2 * i + 1] = host[layout.offset[2 * t + 1] + i];
          }
        }
        d_delivered = std::move(d_out);
      } else {
        gpu::device_vector<std::int32_t> d_q(std::max<std::size_t>(interleaved, 1));
        std::int32_t* host = gpu::reserve_pinned(impl_->download_i, std::max<std::size_t>(interleaved, 1));
        quantize_params q;
        q.bit_depth = p.bit_depth;
        q.shaping = p.shaping;
        q.sample_rate_hz = rate;
        if (p.shaping == noise_shaping::none) {
          gpu::batch_quantizer quantizer;
          quantizer.prepare(layout, s);
          const std::vector<quantize_stats> qs = quantizer.quantize(d_out.data(), d_q.data(), q, seeds, s);
          for (std::size_t t = 0; t < n_tracks; ++t) clamped[t] = qs[t].clipped_samples;
          d_q.download_async({host, interleaved}, s);
          s.synchronize();
        } else {
          // Error-feedback shaping is serial through its rounding: the host quantizes.
          const float* planar = gpu::reserve_pinned(impl_->download_f, std::max<std::size_t>(layout.total_frames, 1));
          d_out.download_async({impl_->download_f.data(), layout.total_frames}, s);
          s.synchronize();
          for (std::size_t t = 0; t < n_tracks; ++t) {
            audio_buffer a(2, layout.frames[2 * t]);
            for (int c = 0; c < 2; ++c)
              std::copy_n(planar + layout.offset[2 * t + static_cast<std::size_t>(c)], a.frames(), a.channel(c));
            q.seed = seeds[t];
            std::vector<std::int32_t> out;
            clamped[t] = quantize(a, q, out).clipped_samples;
            std::copy(out.begin(), out.end(), host + offsets[t]);
          }
          d_q.upload_async({host, interleaved}, s);
        }
        for (std::size_t t = 0; t < n_tracks; ++t)
          ints[t].assign(host + offsets[t], host + offsets[t] + 2 * layout.frames[2 * t]);
        std::vector<std::uint64_t> off64(offsets.begin(), offsets.end());
        gpu::device_vector<std::uint64_t> d_off(off64.size()), d_lane_off(layout.lanes()),
            d_lane_frames(layout.lanes());
        const std::vector<std::uint64_t> lane_off(layout.offset.begin(), layout.offset.end());
        const std::vector<std::uint64_t> lane_frames(layout.frames.begin(), layout.frames.end());
        d_off.upload_async(off64, s);
        d_lane_off.upload_async(lane_off, s);
        d_lane_frames.upload_async(lane_frames, s);
        gpu::dequantize_stereo_async(d_q.data(), d_off.data(), n_tracks, layout, d_lane_off.data(),
                                     d_lane_frames.data(), p.bit_depth, d_delivered.data(), s);
        s.synchronize();  // host vectors above must outlive the uploads
      }
      const std::vector<loudness_blocks> out_blocks = meter.measure(d_delivered.data(), s);
      gpu::peak_plan out_tp(tp_filter, layout, tp_filter.latency_frames, s);
      gpu::device_vector<float> d_out_peaks(std::max<std::size_t>(out_tp.output_layout().total_frames, 1));
      out_tp.run_async(d_delivered.data(), d_out_peaks.data(), s);
      const std::vector<float> lane_peaks = out_tp.lane_max(s);

      for (std::size_t t = 0; t < n_tracks; ++t) {
        if (!on_gpu[t]) continue;
        rendered_master& m = results[t].masters[f];
        normalization_result& n = m.normalization;
        n.pre_loudness_lufs = pre_lufs[t];
        n.target_lufs = tracks[t].targets_lufs[f];
        n.gain_db = gain[t];
        n.iterations = search[t].iterations() + 1;
        n.passes = n.iterations + 1;  // over the device copy: resampling and detection, then each render
        n.limiter = stats[t];
        n.limited = stats[t].frames_limited > 0;
        n.limiter_ceiling_dbtp = p.ceiling_dbtp;
        if (rate != source_rate_hz) m.resampler = "polyphase";
        m.backend = "gpu";
        output_measurement& o = m.measured;
        o.blocks = out_blocks[t];
        o.integrated_lufs = o.blocks.integrated_lufs();
        o.loudness_range_lu = o.blocks.loudness_range_lu();
        if (gain[t] >= max_gain[t]) n.shortfall_lu = std::max(0.0, n.target_lufs - o.integrated_lufs);
        o.true_peak_dbtp = 20.0 * std::log10(static_cast<double>(std::max(lane_peaks[2 * t], lane_peaks[2 * t + 1])));
        o.sample_rate_hz = rate;
        o.bit_depth = p.bit_depth;
        o.frames = layout.frames[2 * t];
        o.duration_s = static_cast<double>(o.frames) / rate;
        o.clamped_samples = clamped[t];
        float sample_peak = 0.0f;
        if (p.bit_depth == 32) {
          for (float v : floats[t]) sample_peak = std::max(sample_peak, std::abs(v));
        } else {
          std::int64_t peak = 0;
          for (std::int32_t v : ints[t]) peak = std::max<std::int64_t>(peak, std::abs(static_cast<std::int64_t>(v)));
          sample_peak = static_cast<float>(std::ldexp(static_cast<double>(peak), -(p.bit_depth - 1)));
        }
        o.sample_peak_dbfs = 20.0 * std::log10(static_cast<double>(sample_peak));
        m.int_samples = std::move(ints[t]);
        m.float_samples = std::move(floats[t]);
        // An overshoot after quantization would need another ceiling pass: the CPU chain has it.
        if (o.true_peak_dbtp > p.ceiling_dbtp) {
          on_gpu[t] = false;
          why_cpu[t] = "true peak above the ceiling after quantization: the CPU chain makes the ceiling pass";
        } else
          check_against_profile(m, p);
      }
    }

    // Whatever the GPU path does not cover goes through the CPU chain.
    for (std::size_t t = 0; t < n_tracks; ++t) {
      if (on_gpu[t]) continue;
      results[t].cpu_fallback[f] = true;
      results[t].masters[f] = render_master(apply_prechain(*tracks[t].audio, source_rate_hz, p), source_rate_hz, p,
                                            tracks[t].targets_lufs[f], fnv1a64(p.name, tracks[t].seed_base));
      results[t].masters[f].backend_note = why_cpu[t];
    }
  }
  s.synchronize();
  return results;
}

}  // namespace lathe

#endif  // LATHE_HAVE_CUDA
