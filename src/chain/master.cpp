#include "lathe/master.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "lathe/chain.hpp"
#include "lathe/gain_search.hpp"
#include "lathe/limiter.hpp"
#include "lathe/loudness.hpp"
#include "lathe/polyphase.hpp"
#include "lathe/resampler.hpp"
#include "lathe/spill.hpp"
#include "lathe/true_peak.hpp"

namespace lathe {
namespace {

// Attempts at the limiter ceiling: the first at the profile's ceiling, later ones lowered by the
// overshoot the final meter found (inter-sample peaks from gain modulation or dither).
constexpr int max_ceiling_attempts = 4;
constexpr double ceiling_step_extra_db = 0.02;

double db_to_gain(double db) noexcept {
  return std::pow(10.0, db / 20.0);
}

// Calls f(block) over the whole of `s`, in blocks of spill_block_frames.
template <class F>
void replay(const audio_spill& s, audio_buffer& scratch, F&& f) {
  for (std::size_t pos = 0; pos < s.frames(); pos += spill_block_frames) {
    const std::size_t n = std::min(spill_block_frames, s.frames() - pos);
    block_view v = scratch.view(0, n);
    s.read(pos, v);
    f(const_block_view(v));
  }
}

// One delivery attempt: quantizes (or interleaves float) the blocks `produce` passes on, hands
// them to the sink and measures exactly the delivered samples.
template <class Produce>
void deliver(Produce&& produce, int channels, std::size_t frames, double rate_hz, const delivery_profile& p,
             std::uint64_t seed, master_sink& sink, rendered_master& m) {
  const auto ch = static_cast<std::size_t>(channels);
  sink.begin(rate_hz, channels, p.bit_depth, frames);
  track_analyzer analyzer(rate_hz, channels);
  m.measured.clamped_samples = 0;
  std::optional<quantizer> q;
  if (p.bit_depth != 32) {
    quantize_params qp;
    qp.bit_depth = p.bit_depth;
    qp.shaping = p.shaping;
    qp.seed = seed;
    qp.sample_rate_hz = rate_hz;
    q.emplace(qp, channels);
  }
  const double inv_full_scale = std::ldexp(1.0, -(p.bit_depth - 1));
  std::vector<std::int32_t> ints(q ? spill_block_frames * ch : 0);
  std::vector<float> floats(q ? 0 : spill_block_frames * ch);
  audio_buffer delivered(channels, q ? spill_block_frames : 0);
  auto take = [&](const_block_view v) {
    if (!q) {
      for (int c = 0; c < channels; ++c)
        for (std::size_t i = 0; i < v.frames; ++i) floats[i * ch + static_cast<std::size_t>(c)] = v[c][i];
      analyzer.add(v);
      sink.add(v, {}, std::span<const float>(floats.data(), v.frames * ch));
      return;
    }
    q->process(v, ints);
    block_view d = delivered.view(0, v.frames);
    for (int c = 0; c < channels; ++c)
      for (std::size_t i = 0; i < v.frames; ++i)
        d[c][i] = static_cast<float>(ints[i * ch + static_cast<std::size_t>(c)] * inv_full_scale);
    analyzer.add(d);
    sink.add(d, std::span<const std::int32_t>(ints.data(), v.frames * ch), {});
  };
  produce(frame_sink(take));
  if (q) m.measured.clamped_samples = q->stats().clipped_samples;
  track_analysis a = analyzer.finish();
  m.measured.integrated_lufs = a.integrated_lufs;
  m.measured.true_peak_dbtp = a.true_peak_dbtp;
  m.measured.sample_peak_dbfs = a.sample_peak_dbfs;
  m.measured.loudness_range_lu = a.loudness_range_lu;
  m.measured.sample_rate_hz = rate_hz;
  m.measured.bit_depth = p.bit_depth;
  m.measured.frames = frames;
  m.measured.duration_s = static_cast<double>(frames) / rate_hz;
  m.measured.blocks = std::move(a.blocks);
  ++m.normalization.passes;
}

// Integrated loudness of limiter.render(src, gain_db), predicted without reading the audio
// from `energy`, the source's per-frame K-weighted, channel-weighted energy z (one float per
// frame): the limiter multiplies every channel of frame n by a[n], and a moves slowly against
// the K-weighting's response, so the rendered frame's energy is close to z[n] a[n]^2. Measured
// on real catalogs the prediction lands within a few hundredths of an LU of the render's
// measurement; the delivered master is always measured exactly, and when it misses the target
// the gain is searched again with measured trials (converge_gain).
double predicted_loudness(const offline_limiter& limiter, const audio_spill& energy, double rate_hz, double gain_db) {
  loudness_meter meter;
  meter.prepare(rate_hz, 1);
  std::vector<float> z(spill_block_frames);
  std::vector<double> e(spill_block_frames);
  std::size_t pos = 0;
  limiter.gains(
      gain_db,
      [&](std::span<const double> a) {
        const std::size_t n = a.size();
        energy.read(pos, block_view::mono(z.data(), n));
        for (std::size_t i = 0; i < n; ++i) e[i] = static_cast<double>(z[i]) * (a[i] * a[i]);
        meter.add_energy(e.data(), n);
        pos += n;
      },
      false);
  return meter.integrated_lufs();
}

// Gain that brings the prediction to the target (gain_search), at most max_gain_db.
double predict_gain(const offline_limiter& limiter, const audio_spill& energy, double rate_hz, double target_lufs,
                    double first_gain_db, double max_gain_db, normalization_result& n) {
  gain_search search(target_lufs, first_gain_db, max_gain_db);
  while (!search.done()) {
    search.observe(predicted_loudness(limiter, energy, rate_hz, search.gain_db()));
    ++n.predictions;
  }
  return search.gain_db();
}

// Gain that brings `src` to the target through the limiter (gain_search), each trial measured:
// one streaming pass that renders and meters. For the rare track whose delivery at the
// predicted gain missed (heavy limiting of deep bass, where the gain's modulation moves energy
// across the K-weighting's high-pass).
double converge_gain(const offline_limiter& limiter, const audio_spill& src, double rate_hz, double target_lufs,
                     double first_gain_db, double max_gain_db, normalization_result& n) {
  gain_search search(target_lufs, first_gain_db, max_gain_db);
  loudness_meter meter;
  while (!search.done()) {
    meter.prepare(rate_hz, src.channels());
    n.limiter = limiter.render(src, search.gain_db(), [&](const_block_view v) { meter.process(v); });
    ++n.iterations;
    ++n.passes;
    search.observe(meter.integrated_lufs());
  }
  return search.gain_db();
}

// Collects the delivered master in memory (the whole-buffer render_master).
class collecting_sink final : public master_sink {
 public:
  explicit collecting_sink(rendered_master& m) : m_(m) {}
  void begin(double, int channels, int bit_depth, std::size_t frames) override {
    const std::size_t samples = frames * static_cast<std::size_t>(channels);
    m_.int_samples.clear();
    m_.float_samples.clear();
    if (bit_depth == 32)
      m_.float_samples.reserve(samples);
    else
      m_.int_samples.reserve(samples);
  }
  void add(const_block_view, std::span<const std::int32_t> ints, std::span<const float> floats) override {
    m_.int_samples.insert(m_.int_samples.end(), ints.begin(), ints.end());
    m_.float_samples.insert(m_.float_samples.end(), floats.begin(), floats.end());
  }

 private:
  rendered_master& m_;
};

}  // namespace

audio_buffer delivered_audio(const rendered_master& m, int channels) {
  if (m.measured.bit_depth == 32) {
    const std::size_t n = m.float_samples.size() / static_cast<std::size_t>(channels);
    audio_buffer out(channels, n);
    for (int c = 0; c < channels; ++c)
      for (std::size_t i = 0; i < n; ++i)
        out.channel(c)[i] = m.float_samples[i * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)];
    return out;
  }
  const std::size_t n = m.int_samples.size() / static_cast<std::size_t>(channels);
  const double inv_full_scale = std::ldexp(1.0, -(m.measured.bit_depth - 1));
  audio_buffer out(channels, n);
  for (int c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < n; ++i)
      out.channel(c)[i] = static_cast<float>(
          m.int_samples[i * static_cast<std::size_t>(channels) + static_cast<std::size_t>(c)] * inv_full_scale);
  return out;
}

std::uint64_t fnv1a64(std::string_view text, std::uint64_t h) noexcept {
  for (const unsigned char ch : text) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string prechain_key(const delivery_profile& p) {
  return chain_fingerprint(p);
}

audio_buffer apply_prechain(const audio_buffer& in, double sample_rate_hz, const delivery_profile& p,
                            nlohmann::json* report) {
  audio_buffer out(in.channels(), in.frames());
  prechain_stream stream(p, sample_rate_hz, in.channels(), in.frames());
  buffer_filler keep{out};
  stream.push(in.view(), keep);
  stream.finish(keep);
  if (report != nullptr) *report = stream.report();
  return out;
}

double integrated_loudness(const audio_buffer& audio, double sample_rate_hz) {
  loudness_meter meter;
  meter.prepare(sample_rate_hz, audio.channels());
  meter.process(audio.view());
  return meter.integrated_lufs();
}

void check_against_profile(rendered_master& m, const delivery_profile& p) {
  const normalization_result& n = m.normalization;
  const double target_lufs = n.target_lufs;
  const output_measurement& o = m.measured;
  if (std::isfinite(n.pre_loudness_lufs)) {
    const double miss = o.integrated_lufs - target_lufs;
    if (n.shortfall_lu > p.tolerance_lu && p.normalization == normalization_mode::linear) {
      m.failures.push_back(fmt::format(
          "linear normalization stopped {:.2f} LU short of the target ({:.2f} LUFS) to keep true peak under "
          "{:.1f} dBTP; use normalization = \"limit\" or a lower target to reach it",
          n.shortfall_lu, target_lufs, p.ceiling_dbtp));
    } else if (n.shortfall_lu > p.tolerance_lu) {
      m.failures.push_back(fmt::format(
          "limit mode stopped {:.2f} LU short of the target ({:.2f} LUFS): reaching it needs more than {:.1f} dB of "
          "limiting on the loudest peak (chain.limiter.max_reduction_db); lower the target or raise the bound",
          n.shortfall_lu, target_lufs, p.limiter.max_reduction_db));
    } else if (!(std::abs(miss) <= p.tolerance_lu)) {
      m.failures.push_back(
          fmt::format("integrated loudness {:.2f} LUFS is {:+.2f} LU from the target {:.2f} LUFS "
                      "(tolerance {:.2f} LU)",
                      o.integrated_lufs, miss, target_lufs, p.tolerance_lu));
    }
  }
  if (o.true_peak_dbtp > p.ceiling_dbtp)
    m.failures.push_back(
        fmt::format("true peak {:.2f} dBTP is above the ceiling {:.2f} dBTP", o.true_peak_dbtp, p.ceiling_dbtp));
  if (o.clamped_samples > 0) m.failures.push_back(fmt::format("{} samples clipped at quantization", o.clamped_samples));
  m.passed = m.failures.empty();
}

rendered_master render_master(const audio_spill& pre, double pre_rate_hz, const delivery_profile& p, double target_lufs,
                              std::uint64_t dither_seed, master_sink& sink, const std::filesystem::path& spill_folder) {
  rendered_master m;
  normalization_result& n = m.normalization;
  const double rate = p.output_rate_hz(pre_rate_hz);
  const int ch = pre.channels();
  const bool linear = p.normalization == normalization_mode::linear;
  auto make_spill = [&](int channels) {
    return spill_folder.empty() ? audio_spill(channels) : audio_spill(channels, spill_folder);
  };
  audio_buffer scratch(ch, spill_block_frames);

  // Pass 1: the source at the output rate (resampled into a spill when the rates differ) and,
  // in the same pass, its loudness and what the gain stage needs: the true peak (linear) or the
  // limiter's detection (limit).
  limiter_params lp = p.limiter;
  lp.ceiling_dbtp = p.ceiling_dbtp;
  offline_limiter limiter;
  if (!linear) limiter.begin_analysis(rate, lp, ch, make_spill(1));
  loudness_meter meter;
  meter.prepare(rate, ch);
  true_peak_meter peaks(rate, ch);
  std::optional<audio_spill> resampled;
  if (rate != pre_rate_hz) resampled = make_spill(ch);
  audio_spill energy = make_spill(1);  // limit mode: what predicted_loudness reads
  std::vector<float> frame_energy;
  auto measure = [&](const_block_view v) {
    if (linear) {
      meter.process(v);
      peaks.add(v.ch.data(), v.frames);
    } else {
      if (frame_energy.size() < v.frames) frame_energy.resize(v.frames);
      meter.process(v, frame_energy.data());
      energy.append(block_view::mono(frame_energy.data(), v.frames));
      limiter.analyze_more(v);
    }
    if (resampled) resampled->append(v);
  };
  if (resampled && pre.frames() > 0) {
    auto run = [&](auto& stream) {
      replay(pre, scratch, [&](const_block_view v) { stream.push(v, measure); });
      stream.finish(measure);
    };
    if (polyphase_resampler::fits(pre_rate_hz, rate)) {
      polyphase_resampler design;
      design.prepare(pre_rate_hz, rate);
      polyphase_stream stream(design, ch, pre.frames());
      run(stream);
      m.resampler = "polyphase";
    } else {
      resample_stream stream(pre_rate_hz, rate, ch, pre.frames());
      run(stream);
      m.resampler = "soxr";
    }
  } else {
    replay(pre, scratch, measure);
  }
  if (!linear) limiter.finish_analysis();
  ++n.passes;
  const audio_spill& src = resampled ? *resampled : pre;
  const std::size_t frames = src.frames();

  n.target_lufs = target_lufs;
  n.pre_loudness_lufs = meter.integrated_lufs();
  n.limiter_ceiling_dbtp = p.ceiling_dbtp;

  if (!std::isfinite(n.pre_loudness_lufs)) {
    // Silence (nothing above the -70 LUFS gate): no gain can reach a target.
    deliver([&](const frame_sink& out) { replay(src, scratch, out); }, ch, frames, rate, p, dither_seed, sink, m);
    m.failures.push_back("the track is silent (no audio above -70 LUFS), so it cannot be normalized");
  } else if (linear) {
    // Gain only. When the ceiling forbids the full gain, stop short and say so.
    const double headroom_db =
        p.ceiling_dbtp - p.limiter.margin_db - 20.0 * std::log10(static_cast<double>(peaks.finish()));
    double g = target_lufs - n.pre_loudness_lufs;
    if (g > headroom_db) g = headroom_db;
    audio_buffer scaled(ch, spill_block_frames);
    for (int attempt = 0; attempt < max_ceiling_attempts; ++attempt) {
      const auto gain = static_cast<float>(db_to_gain(g));
      auto produce = [&](const frame_sink& out) {
        replay(src, scratch, [&](const_block_view v) {
          block_view y = scaled.view(0, v.frames);
          for (int c = 0; c < ch; ++c)
            for (std::size_t i = 0; i < v.frames; ++i) y[c][i] = v[c][i] * gain;
          out(y);
        });
      };
      n.iterations = attempt + 1;
      deliver(produce, ch, frames, rate, p, dither_seed, sink, m);
      if (m.measured.true_peak_dbtp <= p.ceiling_dbtp) break;
      g -= m.measured.true_peak_dbtp - p.ceiling_dbtp + ceiling_step_extra_db;
    }
    n.gain_db = g;
    n.shortfall_lu = std::max(0.0, target_lufs - m.measured.integrated_lufs);
  } else {
    double g = target_lufs - n.pre_loudness_lufs;
    const double detected_dbtp = limiter.input_true_peak_dbtp(0.0);
    double max_gain = 0.0;
    for (int attempt = 0; attempt < max_ceiling_attempts; ++attempt) {
      limiter.set_ceiling_dbtp(lp.ceiling_dbtp);
      max_gain = limit_mode_max_gain_db(detected_dbtp, lp.ceiling_dbtp, lp.margin_db, lp.max_reduction_db);
      auto deliver_at = [&](double gain_db) {
        deliver([&](const frame_sink& out) { n.limiter = limiter.render(src, gain_db, out); }, ch, frames, rate, p,
                dither_seed, sink, m);
        ++n.iterations;
      };
      g = predict_gain(limiter, energy, rate, target_lufs, g, max_gain, n);
      deliver_at(g);
      const double miss = m.measured.integrated_lufs - target_lufs;
      const bool short_at_bound = g >= max_gain && miss < 0.0;  // no larger gain is allowed
      if (std::abs(miss) > gain_search::converged_lu && std::isfinite(miss) && !short_at_bound) {
        g = converge_gain(limiter, src, rate, target_lufs, g - miss, max_gain, n);
        deliver_at(g);
      }
      n.limiter_ceiling_dbtp = lp.ceiling_dbtp;
      if (m.measured.true_peak_dbtp <= p.ceiling_dbtp) break;
      lp.ceiling_dbtp -= m.measured.true_peak_dbtp - p.ceiling_dbtp + ceiling_step_extra_db;
    }
    n.gain_db = g;
    n.limited = n.limiter.frames_limited > 0;
    if (g >= max_gain) n.shortfall_lu = std::max(0.0, target_lufs - m.measured.integrated_lufs);
  }

  check_against_profile(m, p);
  return m;
}

rendered_master render_master(const audio_buffer& pre, double pre_rate_hz, const delivery_profile& p,
                              double target_lufs, std::uint64_t dither_seed) {
  rendered_master m;
  collecting_sink sink(m);
  rendered_master r = render_master(audio_spill::borrow(pre), pre_rate_hz, p, target_lufs, dither_seed, sink);
  r.int_samples = std::move(m.int_samples);
  r.float_samples = std::move(m.float_samples);
  return r;
}

}  // namespace lathe
