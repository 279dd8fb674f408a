#include "render_graph.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for_each.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/chain.hpp"
#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "lathe/mix_notes.hpp"
#include "lathe/spill.hpp"
#include "lathe/tonal.hpp"
#include "lathe/true_peak.hpp"
#include "master_writer.hpp"
#include "render_engine.hpp"
#include "report.hpp"
#include "track_record.hpp"
#ifdef LATHE_HAVE_CUDA
#include "gpu_engine.hpp"
#include "lathe_gpu/device.hpp"
#endif

namespace lathe {

using nlohmann::json;

namespace {

// Bounds the audio held by tracks in flight. A track that alone exceeds the budget still runs,
// but only when nothing else is in flight, so the run always progresses.
class memory_gate {
 public:
  explicit memory_gate(std::size_t budget) : budget_(budget) {}
  void acquire(std::size_t bytes) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return in_flight_ == 0 || used_ + bytes <= budget_; });
    used_ += bytes;
    ++in_flight_;
    peak_ = std::max(peak_, used_);
  }
  void release(std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      used_ -= bytes;
      --in_flight_;
    }
    cv_.notify_all();
  }
  // Audio kept between passes (an album track's pre-chained audio, from the album pass to its
  // render) counts against the budget, without holding back a track when nothing is in flight.
  // False, holding nothing, when `bytes` would take the held total past `limit`.
  bool hold(std::size_t bytes, std::size_t limit) {
    std::lock_guard lock(mutex_);
    if (held_ + bytes > limit) return false;
    held_ += bytes;
    used_ += bytes;
    peak_ = std::max(peak_, used_);
    return true;
  }
  void unhold(std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      held_ -= bytes;
      used_ -= bytes;
    }
    cv_.notify_all();
  }
  std::size_t peak() const { return peak_; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t budget_, used_ = 0, held_ = 0, peak_ = 0;
  int in_flight_ = 0;
};

// Status line on a terminal, or one JSON line per finished track.
class progress_reporter {
 public:
  progress_reporter(const master_options& o, std::size_t total_tracks, double total_audio_s)
      : opt_(o), total_(total_tracks), total_audio_s_(total_audio_s), start_(now_s()) {}

  void track_done(const json& entry, double audio_s) {
    std::lock_guard lock(mutex_);
    ++done_;
    audio_done_s_ += audio_s;
    const double elapsed = now_s() - start_;
    const double speed = elapsed > 0 ? audio_done_s_ / elapsed : 0.0;
    if (opt_.progress_on_terminal && opt_.log == log_format::text) {
      const double eta = speed > 0 ? (total_audio_s_ - audio_done_s_) / speed : 0.0;
      std::fprintf(stderr, "\r\033[K[%zu/%zu tracks] %.2f h audio  %.1fx realtime  ETA %s", done_, total_,
                   audio_done_s_ / 3600.0, speed, format_duration(eta).c_str());
      if (entry.value("status", "") == "failed")
        std::fprintf(stderr, "\n  failed: %s: %s\n", entry.value("path", "").c_str(), entry.value("error", "").c_str());
      std::fflush(stderr);
    } else {
      json line = {{"event", "track"},
                   {"done", done_},
                   {"total", total_},
                   {"path", entry.value("path", "")},
                   {"status", entry.value("status", "")},
                   {"audio_s", rounded(audio_s, 2)},
                   {"x_realtime", rounded(speed, 1)}};
      if (entry.contains("error")) line["error"] = entry["error"];
      std::fprintf(stderr, "%s\n", line.dump().c_str());
    }
  }
  void finish() {
    if (opt_.progress_on_terminal && opt_.log == log_format::text) std::fprintf(stderr, "\n");
  }

 private:
  static std::string format_duration(double s) {
    if (!(s >= 0) || !std::isfinite(s)) return "?";
    const long t = std::lround(s);
    return t >= 3600 ? fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60) : fmt::format("{}m{:02}s", t / 60, t % 60);
  }
  const master_options& opt_;
  std::mutex mutex_;
  std::size_t total_, done_ = 0;
  double total_audio_s_, audio_done_s_ = 0.0, start_;
};

// A track in flight.
struct work_item {
  std::size_t index = 0;
  bool spill_to_files = false;           // spills in files (bounded memory) or in memory
  bool on_engine = false;                // rendered by the batch engine (GPU backend)
  std::size_t formats_at_once = 1;       // formats the deliver stage renders side by side
  std::optional<decoded_track> decoded;  // the whole track, for the engine
  std::optional<audio_spill> source;     // the decoded track (borrowing `decoded` when it exists)
  source_info info;
  std::map<std::string, audio_spill> pre;               // pre-chain key -> processed audio
  std::vector<std::optional<rendered_master>> masters;  // per format, rendered by the engine
  std::string cpu_note;                                 // GPU run: why this track renders on the CPU
  std::string error;
  std::size_t held_bytes = 0;  // the memory gate's hold on `pre`, kept since the album pass
};

// An album track's pre-chained audio, kept from the album pass for its render.
struct held_track {
  source_info info;
  std::map<std::string, audio_spill> pre;
  std::size_t bytes = 0;
};

// The tracks of one engine call (one track with the CPU backend), admitted together by the
// memory gate. Move-only, so each stage owns it in turn.
struct work_batch {
  std::vector<work_item> items;
  std::size_t reserved_bytes = 0;
};
using token = std::unique_ptr<work_batch>;

// How a track is admitted: what the gate reserves, where its spills live, which engine renders.
struct admission {
  std::size_t host_bytes = 0;
  std::size_t in_memory_bytes = 0;  // what it would hold with its spills in memory
  bool spill_to_files = false;
  bool on_engine = false;
  std::size_t formats_at_once = 1;  // formats rendered side by side within the reservation
};

// Tracks per engine call, at most: enough to fill the device with short tracks.
constexpr std::size_t max_tracks_per_call = 16;

std::string track_error_text(const std::exception& e) {
  if (const auto* ie = dynamic_cast<const input_error*>(&e)) return ie->reason();
  return e.what();
}

}  // namespace

struct render_graph::impl {
  impl(const run_plan& p, const master_options& o, std::vector<track_state>& st, const adaptive_targets& t,
       std::size_t memory_budget, int threads)
      : plan(p),
        opt(o),
        state(st),
        targets(t),
        n_tracks(p.tracks.size()),
        n_formats(p.profiles.size()),
        budget(memory_budget),
        max_tokens(static_cast<std::size_t>(2 * threads)),
        use_gpu(o.backend.kind == backend_kind::gpu),
        needs_input_loudness(std::any_of(
            p.profiles.begin(), p.profiles.end(),
            [&](const auto& pf) {
              return pf.adaptive.enabled && (pf.adaptive.loudness < 1.0 ||
                                             std::any_of(p.tracks.begin(), p.tracks.end(), [](const planned_track& tr) {
                                               return tr.entry.amounts.loudness.has_value();
                                             }));
            })),
        spill_dir(o.out_dir / ".lathe" / "spill"),
        gate(memory_budget),
        hold_limit(o.album_hold_bytes > 0 ? std::min(o.album_hold_bytes, memory_budget) : memory_budget / 2),
        threads(threads) {
    int gpu_count = 0;
#ifdef LATHE_HAVE_CUDA
    if (use_gpu && !opt.make_engine) gpu_count = static_cast<int>(gpu::devices().size());
#endif
    if (use_gpu && opt.make_engine) gpu_count = std::max(1, opt.gpus);
    gpus_used = opt.gpus > 0 ? std::min(opt.gpus, gpu_count) : gpu_count;
    device_lost.resize(static_cast<std::size_t>(std::max(gpus_used, 0)));
  }

  const run_plan& plan;
  const master_options& opt;
  std::vector<track_state>& state;
  const adaptive_targets& targets;
  const std::size_t n_tracks;
  const std::size_t n_formats;
  const std::size_t budget;
  const std::size_t max_tokens;  // tokens bound the tracks in flight; the memory gate bounds their bytes
  const bool use_gpu;
  // GPU rendering meters the input on the device; a loudness amount under 100 % needs it first.
  const bool needs_input_loudness;
  const std::filesystem::path spill_dir;
  memory_gate gate;
  // Pre-chained album tracks kept between the album pass and the render, up to hold_limit bytes.
  const std::size_t hold_limit;
  mutable std::mutex held_mutex;
  std::map<std::size_t, held_track> held;
  std::size_t next = 0;  // the serial filter's cursor (TBB filter bodies are const)
  std::optional<progress_reporter> progress;
  std::vector<char> reported;  // per track: its progress line is out
  const int threads;
  // The batch engine, one per worker thread (each with its own stream, so calls in flight
  // overlap on the device), spread over the GPUs. A device lost to a sticky error takes no more
  // work; the run says so once.
  int gpus_used = 0;
  std::atomic<int> next_device{0};
  tbb::enumerable_thread_specific<std::unique_ptr<render_engine>> engines;
  std::mutex log_mutex;
  std::mutex device_mutex;
  std::vector<std::string> device_lost;  // per device: why it was lost, "" while usable

  std::string lost_reason(int device) {
    std::lock_guard lock(device_mutex);
    return device_lost.at(static_cast<std::size_t>(device));
  }

  void lose_device(int device, const std::string& why) {
    {
      std::lock_guard lock(device_mutex);
      std::string& lost = device_lost.at(static_cast<std::size_t>(device));
      if (!lost.empty()) return;
      lost = why;
    }
    std::lock_guard lock(log_mutex);
    std::fprintf(stderr, "lathe: GPU %d is lost (%s); %s\n", device, why.c_str(),
                 opt.backend.strict ? "the tracks it would have rendered fail (--backend gpu)"
                                    : "the tracks it would have rendered are rendered on the CPU");
  }

  std::unique_ptr<render_engine> make_engine(int device) const {
    if (opt.make_engine) return opt.make_engine(device);
#ifdef LATHE_HAVE_CUDA
    const int per_device = (threads + gpus_used - 1) / std::max(1, gpus_used);
    return std::make_unique<gpu_engine>(device, per_device);
#else
    LATHE_FAIL("lathe was built without CUDA: no GPU engine");
#endif
  }

  // This thread's engine, on a device still usable; nullptr when every device is lost.
  render_engine* engine_here() {
    std::unique_ptr<render_engine>& engine = engines.local();
    if (engine && !lost_reason(engine->device()).empty()) engine.reset();
    for (int k = 0; !engine && k < gpus_used; ++k) {
      const int d = next_device++ % gpus_used;
      if (lost_reason(d).empty()) engine = make_engine(d);
    }
    return engine.get();
  }

  // Why the engine cannot take work any more, for the tracks that then render on the CPU.
  std::string all_lost_note() {
    std::lock_guard lock(device_mutex);
    for (const std::string& why : device_lost)
      if (!why.empty()) return "the GPU was lost earlier in the run (" + why + ")";
    return "no GPU engine";
  }

  audio_spill make_spill(const work_item& w, int channels) const {
    return w.spill_to_files ? audio_spill(channels, spill_dir) : audio_spill(channels);
  }

  // A track whose audio fits its share of the budget keeps its spills in memory; any other
  // streams through files with a fixed working set. Either way the masters are the same. The
  // engine holds a whole track (its render pass with the GPU backend), so it takes the tracks
  // that fit the whole budget; a longer one renders on the CPU, streamed.
  admission admit(std::size_t i, bool render) const {
    const std::size_t formats = std::max<std::size_t>(n_formats, 1);
    const std::size_t share = budget / max_tokens;
    // In memory, the formats render side by side: one streaming working set each.
    const std::size_t in_memory = estimate_track_bytes(plan.tracks[i], plan) + streaming_track_bytes * formats;
    // A held track's audio is in the gate's hold already: its render needs the working sets only.
    if (render && is_held(i)) return {streaming_track_bytes * formats, in_memory, false, false, formats};
    if (render && use_gpu && in_memory <= budget) return {in_memory, in_memory, false, true, formats};
    if (in_memory <= share) return {in_memory, in_memory, false, false, formats};
    // Streamed: as many formats side by side as the track's share of the budget holds working
    // sets for (at least one, so a track is never refused for its length).
    const std::size_t at_once = std::clamp<std::size_t>(share / streaming_track_bytes, 1, formats);
    return {streaming_track_bytes * at_once, in_memory, true, false, at_once};
  }

  bool is_held(std::size_t i) const {
    std::lock_guard lock(held_mutex);
    return held.count(i) != 0;
  }

  // The render pass's calls for the window's tracks: engine tracks packed by rate and by the
  // host's and the device's share of memory (pack_batches); every track alone with the CPU backend.
  std::vector<std::vector<std::size_t>> render_batches(const render_window& window) {
    std::vector<batch_candidate> candidates;
    for (const std::size_t i : window.tracks) {
      if (!state[i].needs_render || !state[i].error.empty()) continue;
      const planned_track& t = plan.tracks[i];
      const admission a = admit(i, true);
      const std::size_t frames = t.info ? static_cast<std::size_t>(t.info->frames) : 0;
      const double rate = t.info ? t.info->sample_rate_hz : 0.0;
      candidates.push_back(
          {i, rate, a.host_bytes, a.on_engine ? engine_track_bytes(frames, rate, plan.profiles) : 0, a.on_engine});
    }
    batch_limits limits;
    limits.host_bytes = budget / max_tokens;
    limits.tracks = 1;
    if (use_gpu) {
      try {
        if (render_engine* e = engine_here()) {
          limits.device_bytes = e->call_budget_bytes();
          limits.tracks = max_tracks_per_call;
        }
      } catch (const std::exception&) {
        // No engine now: each track tries on its own and reports why (render_on_engine).
      }
    }
    return pack_batches(candidates, limits);
  }

  // Stage 1 of every pass: the batches in catalog order, admitted by the memory gate (decoding
  // happens in the parallel stage after it). `render`: the render pass, else an album pass.
  auto decoder(std::vector<std::vector<std::size_t>> batches, bool render) {
    next = 0;
    return [this, render, batches = std::move(batches)](tbb::flow_control& fc) -> token {
      if (next >= batches.size()) {
        fc.stop();
        return nullptr;
      }
      auto batch = std::make_unique<work_batch>();
      for (const std::size_t i : batches[next]) {
        const admission a = admit(i, render);
        work_item& w = batch->items.emplace_back();
        w.index = i;
        w.spill_to_files = a.spill_to_files;
        w.on_engine = a.on_engine;
        w.formats_at_once = a.formats_at_once;
        if (render && use_gpu && !a.on_engine)
          w.cpu_note = fmt::format(
              "the GPU engine holds a whole track, and this one ({} MB in flight) is wider than --max-memory "
              "({} MB); rendered on the CPU, streamed",
              a.in_memory_bytes >> 20, budget >> 20);
        batch->reserved_bytes += a.host_bytes;
      }
      ++next;
      gate.acquire(batch->reserved_bytes);
      return batch;
    };
  }

  // Stages 1-2 of the chain on the CPU, every distinct pre-chain in one pass over the source:
  // kept for rendering (keep_audio), measured for the album decision (measure), or both.
  void run_prechains(work_item& w, bool keep_audio, bool measure) {
    LATHE_EXPECTS(w.source.has_value(), "the pre-chains run on the decoded source");
    track_state& s = state[w.index];
    const audio_spill& src = *w.source;
    const double rate = w.info.sample_rate_hz;
    struct job {
      std::string key;
      prechain_stream stream;
      std::optional<audio_spill> out;
      loudness_meter meter;
      std::optional<true_peak_meter> peaks;
    };
    std::deque<job> jobs;
    for (const delivery_profile& pf : s.profiles) {
      const std::string key = prechain_key(pf);
      if (w.pre.count(key) != 0 || std::any_of(jobs.begin(), jobs.end(), [&](const job& j) { return j.key == key; }))
        continue;
      job& j = jobs.emplace_back(job{key, prechain_stream(pf, rate, src.channels(), src.frames()), {}, {}, {}});
      if (keep_audio) j.out = make_spill(w, src.channels());
      if (measure) {
        j.meter.prepare(rate, src.channels());
        j.peaks.emplace(rate, src.channels());
      }
    }
    if (jobs.empty()) return;
    auto feed = [&](job& j) {
      return [&j](const_block_view v) {
        if (j.out) j.out->append(v);
        if (j.peaks) {
          j.meter.process(v);
          j.peaks->add(v.ch.data(), v.frames);
        }
      };
    };
    audio_buffer block(src.channels(), spill_block_frames);
    for (std::size_t pos = 0; pos < src.frames(); pos += spill_block_frames) {
      const std::size_t n = std::min(spill_block_frames, src.frames() - pos);
      src.read(pos, block.view(0, n));
      for (job& j : jobs) {
        auto sink = feed(j);
        j.stream.push(std::as_const(block).view(0, n), sink);
      }
    }
    for (job& j : jobs) {
      auto sink = feed(j);
      j.stream.finish(sink);
      s.chain_reports[j.key] = j.stream.report();
      if (keep_audio) {
        j.out->seal();  // the formats read it side by side
        w.pre.emplace(j.key, std::move(*j.out));
      }
      if (measure) {
        s.pre_loudness_lufs[j.key] = j.meter.integrated_lufs();
        s.pre_true_peak_dbtp[j.key] = 20.0 * std::log10(static_cast<double>(j.peaks->finish()));
      }
    }
  }

  // Tonal balance of the input: on the engine's device for engine tracks (the CPU if it fails).
  tonal_analysis tonal_of(const decoded_track& d) {
    if (use_gpu) {
      render_engine* e = nullptr;
      try {
        e = engine_here();
        if (e != nullptr) return e->tonal(d.audio, d.info.sample_rate_hz);
      } catch (const engine_lost& x) {
        if (e != nullptr) lose_device(e->device(), x.what());
      } catch (const std::exception& x) {
        std::lock_guard lock(log_mutex);
        std::fprintf(stderr, "lathe: GPU tonal analysis failed on %s (%s); measuring it on the CPU\n",
                     d.info.path.c_str(), x.what());
      }
    }
    return analyze_tonal(d.audio, d.info.sample_rate_hz);
  }

  // Decodes the track: the whole buffer for the GPU engine (whole_buffer), else block by block
  // into its source spill. The input is measured on the way when it is not known yet (only the
  // sample scan when scan_only: the GPU meters the rest).
  void load(work_item& w, bool whole_buffer, bool scan_only, bool keep_source = true) {
    struct observed {
      const master_options& opt;
      std::size_t track;
      observed(const master_options& o, std::size_t t) : opt(o), track(t) {
        if (opt.decode_observer) opt.decode_observer(track, true);
      }
      ~observed() {
        if (opt.decode_observer) opt.decode_observer(track, false);
      }
    } observe(opt, w.index);
    track_state& s = state[w.index];
    const std::filesystem::path& path = plan.tracks[w.index].entry.path;
    if (whole_buffer) {
      w.decoded = decode_file(path);
      w.info = w.decoded->info;
      w.source = audio_spill::borrow(w.decoded->audio);
      const double rate = w.info.sample_rate_hz;
      if (!s.input) {
        s.input = scan_only ? scan_samples(w.decoded->audio, rate) : analyze(w.decoded->audio, rate);
        s.input_is_scan_only = scan_only;
      }
      if (!s.tonal) s.tonal = tonal_of(*w.decoded);
      return;
    }
    audio_reader reader(path);
    const double rate = reader.info().sample_rate_hz;
    std::optional<track_analyzer> input;
    std::optional<tonal_analyzer> tonal;
    if (!s.input) input.emplace(rate, 2);
    if (!s.tonal) tonal.emplace(rate);
    if (keep_source) w.source = make_spill(w, 2);
    audio_buffer block(2, spill_block_frames);
    while (const std::size_t n = reader.read(block.view())) {
      const const_block_view v = std::as_const(block).view(0, n);
      if (w.source) w.source->append(v);
      if (input) input->add(v);
      if (tonal) tonal->add(v);
    }
    w.info = reader.info();
    if (input) {
      s.input = input->finish();
      s.input_is_scan_only = false;
    }
    if (tonal) s.tonal = tonal->finish();
  }

  // Render pass: input analysis, then the pre-chains (which the engine runs itself for its
  // tracks), or what the album pass kept of them. For an engine track only the one-pass sample
  // scan runs here; the engine meters the input on the device and complete_analysis() finishes
  // it (render_on_engine).
  void prepare(work_item& w) {
    if (take_held(w)) return;
    load(w, w.on_engine, w.on_engine && !needs_input_loudness);
    targets.adapt(plan.tracks[w.index], state[w.index]);
    if (!w.on_engine) run_prechains(w, true, false);
  }

  bool take_held(work_item& w) {
    std::lock_guard lock(held_mutex);
    const auto it = held.find(w.index);
    if (it == held.end()) return false;
    w.info = it->second.info;
    w.pre = std::move(it->second.pre);
    w.held_bytes = it->second.bytes;
    held.erase(it);
    return true;
  }

  // Album pass: the track's loudness and true peak after each distinct pre-chain, for the album
  // decision. A track still to render on the CPU also keeps that audio, with its mix checked,
  // while the gate's hold has room (spills in memory only): its render then neither decodes it
  // nor runs its pre-chains again. The masters are the same either way.
  void measure_prechains(work_item& w) {
    track_state& s = state[w.index];
    const bool keep = !use_gpu && s.needs_render && !w.spill_to_files;
    load(w, false, false, true);
    targets.adapt(plan.tracks[w.index], s);
    run_prechains(w, keep, true);
    if (keep) check_mix(w);
    w.source.reset();
    std::size_t bytes = 0;
    for (const auto& [key, spill] : w.pre) bytes += spill.memory_bytes();
    if (keep && s.error.empty() && gate.hold(bytes, hold_limit)) {
      std::lock_guard lock(held_mutex);
      held.emplace(w.index, held_track{w.info, std::move(w.pre), bytes});
    }
    w.pre.clear();
  }

  // Drops what no render took (its track failed first).
  void release_held() {
    std::lock_guard lock(held_mutex);
    for (auto& [i, h] : held) gate.unhold(h.bytes);
    held.clear();
  }

  void fail_track(work_item& w, std::string why) {
    if (state[w.index].error.empty()) state[w.index].error = std::move(why);
  }

  // A pass over the album tracks of `tracks` that decodes each one and runs `body` on it.
  template <class Body>
  void album_pass(const std::vector<std::size_t>& tracks, Body body) {
    std::vector<std::vector<std::size_t>> batches;
    for (const std::size_t i : tracks)
      if (state[i].needs_album_pass) batches.push_back({i});
    tbb::parallel_pipeline(max_tokens, tbb::make_filter<void, token>(tbb::filter_mode::serial_in_order,
                                                                     decoder(std::move(batches), false)) &
                                           tbb::make_filter<token, void>(tbb::filter_mode::parallel, [&](token b) {
                                             for (work_item& w : b->items) {
                                               try {
                                                 if (!w.error.empty())
                                                   fail_track(w, w.error);
                                                 else
                                                   body(w);
                                               } catch (const std::exception& e) {
                                                 fail_track(w, track_error_text(e));
                                               }
                                             }
                                             gate.release(b->reserved_bytes);
                                           }));
  }

  // A GPU failure on track `w`: fails it with --backend gpu, else the CPU renders it and says why.
  void engine_failed(work_item& w, const std::string& note) {
    if (opt.backend.strict)
      fail_track(w, note + "; --backend gpu does not render on the CPU instead");
    else
      w.cpu_note = note + "; rendered on the CPU";
  }

  // One engine call for `group` (tracks of one rate whose formats to render are the same): the
  // masters, each pre-chain's report and the input's loudness and true peak. A failure sends
  // the whole group to the CPU (or fails it, with --backend gpu); a lost device takes no more.
  void render_on_engine(std::span<work_item* const> group) {
    const double rate = group.front()->info.sample_rate_hz;
    const track_state& first = state[group.front()->index];
    std::vector<delivery_profile> todo;
    std::vector<std::size_t> index;
    for (std::size_t f = 0; f < n_formats; ++f) {
      if (first.resumed[f]) continue;
      todo.push_back(first.profiles[f]);
      index.push_back(f);
    }
    std::vector<engine_track> tracks;
    for (work_item* w : group) {
      const track_state& s = state[w->index];
      engine_track& g = tracks.emplace_back();
      g.audio = &w->decoded->audio;
      g.seed_base = plan.tracks[w->index].dither_seed_base;
      for (const std::size_t f : index) g.targets_lufs.push_back(s.targets_lufs[f]);
    }
    render_engine* engine = nullptr;
    try {
      engine = engine_here();
      if (engine == nullptr) {
        const std::string note = all_lost_note();
        for (work_item* w : group) engine_failed(*w, note);
        return;
      }
      std::vector<engine_result> r = engine->render(tracks, rate, todo);
      LATHE_EXPECTS(r.size() == group.size(), "one engine result per track");
      for (std::size_t k = 0; k < group.size(); ++k) {
        work_item& w = *group[k];
        track_state& s = state[w.index];
        for (std::size_t j = 0; j < index.size(); ++j) {
          w.masters[index[j]] = std::move(r[k].masters[j]);
          s.chain_reports[prechain_key(todo[j])] = std::move(r[k].chain_reports[j]);
        }
        if (s.input_is_scan_only) {
          complete_analysis(*s.input, std::move(r[k].input_blocks), r[k].input_true_peak);
          s.input_is_scan_only = false;
        }
      }
    } catch (const engine_lost& e) {
      if (engine != nullptr) lose_device(engine->device(), e.what());
      for (work_item* w : group) engine_failed(*w, std::string("the GPU failed (") + e.what() + ")");
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(log_mutex);
        for (work_item* w : group)
          std::fprintf(stderr, "lathe: GPU failed on %s (%s)%s\n", plan.tracks[w->index].entry.path.c_str(), e.what(),
                       opt.backend.strict ? "" : "; rendering it on the CPU");
      }
      for (work_item* w : group) {
        w->masters.assign(n_formats, std::nullopt);
        engine_failed(*w, std::string("the GPU failed (") + e.what() + ")");
      }
    }
  }

  // The track's progress line.
  void finish_track(work_item& w) {
    reported[w.index] = 1;
    const planned_track& t = plan.tracks[w.index];
    json entry = {{"path", t.entry.relative_path.generic_string()}};
    if (!state[w.index].error.empty()) {
      entry["status"] = "failed";
      entry["error"] = state[w.index].error;
    } else {
      entry["status"] = "ok";
    }
    progress->track_done(entry, t.duration_s());
  }

  // Pass 2, stage 2: input analysis and the pre-chains, the batch's tracks side by side.
  token analyze_and_process(token b) {
    tbb::parallel_for_each(b->items.begin(), b->items.end(), [this](work_item& w) {
      if (!w.error.empty()) {
        fail_track(w, w.error);
        return;
      }
      try {
        prepare(w);
      } catch (const std::exception& e) {
        fail_track(w, track_error_text(e));
      }
    });
    return b;
  }

  // The formats still to render of a track, as the engine call that renders them must share them.
  std::string formats_to_render(const work_item& w) const {
    const track_state& s = state[w.index];
    std::string key;
    for (std::size_t f = 0; f < n_formats; ++f) key += s.resumed[f] ? "-\n" : profile_fingerprint(s.profiles[f]) + "\n";
    return key;
  }

  // Pass 2, stage 3: the engine's calls for the batch (the whole tracks on the device; one call
  // per distinct set of formats to render), then each track's mix check.
  token render_on_device_and_check_mix(token b) {
    std::vector<std::pair<std::string, std::vector<work_item*>>> groups;
    for (work_item& w : b->items) {
      w.masters.resize(n_formats);
      if (!w.on_engine || !state[w.index].error.empty()) continue;
      std::string key = formats_to_render(w);
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
      if (it == groups.end()) it = groups.insert(groups.end(), {std::move(key), {}});
      it->second.push_back(&w);
    }
    for (const auto& [key, group] : groups) render_on_engine(group);
    tbb::parallel_for_each(b->items.begin(), b->items.end(), [this](work_item& w) { check_mix(w); });
    return b;
  }

  // Mix notes: what the mix itself has, for the people who made it.
  void check_mix(work_item& w) {
    track_state& s = state[w.index];
    if (!s.error.empty()) return;
    const double rate = w.info.sample_rate_hz;
    try {
      if (s.input_is_scan_only) {  // the engine did not meter it
        s.input = analyze(w.decoded->audio, rate);
        s.input_is_scan_only = false;
      }
      if (!s.mix_checked && s.input && !s.input_is_scan_only) {
        mix_check_input in;
        in.spill = &*w.source;
        in.sample_rate_hz = rate;
        in.source = &w.info;
        in.analysis = &*s.input;
        in.tonal = s.tonal ? &*s.tonal : nullptr;
        in.target = targets.notes_target();
        s.mix_notes = lathe::check_mix(in);
        s.mix_checked = true;
      }
    } catch (const std::exception& e) {
      fail_track(w, track_error_text(e));
    }
  }

  // Pass 2, stage 4: render on the CPU (normalization, limiting, resampling, dither, streamed
  // into the file), or write what the GPU rendered; then the report entry and the sidecar of
  // each output.
  void deliver(token b) {
    tbb::parallel_for_each(b->items.begin(), b->items.end(), [this](work_item& w) { deliver(w); });
    gate.release(b->reserved_bytes);
    for (work_item& w : b->items) finish_track(w);
  }

  void deliver(work_item& w) {
    track_state& s = state[w.index];
    const planned_track& t = plan.tracks[w.index];
    if (s.error.empty()) {
      try {
        // The track's record goes first: a sidecar names an output complete only after it.
        record::track_record r;
        if (s.input && !s.input_is_scan_only) r.input = s.input;
        r.tonal = s.tonal;
        if (s.mix_checked) r.mix_notes = s.mix_notes;
        record::save_track_record(opt.out_dir, targets.record_key(t), r);
        const double rate = w.info.sample_rate_hz;
        std::vector<std::size_t> todo;
        for (std::size_t f = 0; f < n_formats; ++f) {
          if (s.resumed[f]) continue;
          todo.push_back(f);
          // What the CPU renders from, made before the formats run side by side.
          if (!w.masters[f] && w.pre.count(prechain_key(s.profiles[f])) == 0) run_prechains(w, true, false);
        }
        if (!t.album_key.empty()) s.output_blocks.resize(n_formats);
        auto deliver_format = [&](std::size_t f) {
          const delivery_profile& p = s.profiles[f];
          const delivery_profile& shipped = plan.profiles[f];
          const std::filesystem::path dest = opt.out_dir / t.outputs[f];
          const target_curve* target = targets.target_of(t, p);
          rendered_master m;
          tonal_analysis mt;
          translation_check translation;
          if (w.masters[f]) {  // rendered on the GPU
            m = std::move(*w.masters[f]);
            w.masters[f].reset();
            pcm_frames pcm;
            pcm.channels = 2;
            pcm.sample_rate_hz = m.measured.sample_rate_hz;
            pcm.bit_depth = shipped.bit_depth;
            pcm.int_samples = m.int_samples;
            pcm.float_samples = m.float_samples;
            write_audio_file(dest, shipped.container, pcm, t.tags);
            const audio_buffer master = delivered_audio(m);
            mt = analyze_tonal(master, m.measured.sample_rate_hz);
            translation = check_translation(master, m.measured.sample_rate_hz, mt, target);
          } else {
            master_writer out(dest, shipped.container, t.tags);
            const std::uint64_t seed = fnv1a64(p.name, t.dither_seed_base);
            m = render_master(w.pre.at(prechain_key(p)), rate, p, s.targets_lufs[f], seed, out,
                              w.spill_to_files ? spill_dir : std::filesystem::path());
            if (!w.cpu_note.empty()) m.backend_note = w.cpu_note;
            const master_writer::measured measured = out.commit(target);
            mt = measured.tonal;
            translation = measured.translation;
          }
          json entry = to_json(m, shipped);
          entry["path"] = t.outputs[f].generic_string();
          if (const auto it = s.chain_reports.find(prechain_key(p)); it != s.chain_reports.end())
            entry["chain"]["stages"] = it->second;
          if (!s.adaptive_reports[f].is_null()) entry["adaptive"] = s.adaptive_reports[f];
          // Translation: the master in mono, on a small speaker, against its target curve.
          entry["translation"] = to_json(translation);
          entry["tonal"] = to_json(mt);
          s.master_tonal[f] = mt;
          s.outputs[f] = entry;
          const json sidecar = {{"fingerprint", t.fingerprints[f]},
                                {"bytes", std::filesystem::file_size(dest)},
                                {"output", entry},
                                {"master_tonal", record::exact(mt)},
                                {"blocks", record::exact(m.measured.blocks)}};
          if (!t.album_key.empty()) s.output_blocks[f] = std::move(m.measured.blocks);
          write_text_atomic(state_path(opt.out_dir, t.outputs[f]), sidecar.dump(1));
        };
        // The formats render side by side, as many at once as the track's reservation holds
        // working sets for (admit), so a catalog's last tracks, or a one-track run, use the idle
        // cores. Each format's output is the same whatever runs beside it.
        for (std::size_t k = 0; k < todo.size(); k += w.formats_at_once) {
          const auto first = todo.begin() + static_cast<std::ptrdiff_t>(k);
          tbb::parallel_for_each(
              first, first + static_cast<std::ptrdiff_t>(std::min(w.formats_at_once, todo.size() - k)), deliver_format);
        }
      } catch (const std::exception& e) {
        fail_track(w, track_error_text(e));
      }
    }
    w.pre.clear();
    if (w.held_bytes != 0) gate.unhold(std::exchange(w.held_bytes, 0));
    w.source.reset();
    w.decoded.reset();
  }
};

render_graph::render_graph(const run_plan& plan, const master_options& opt, std::vector<track_state>& state,
                           const adaptive_targets& targets, std::size_t budget, int threads)
    : impl_(std::make_unique<impl>(plan, opt, state, targets, budget, threads)) {}

render_graph::~render_graph() = default;

void render_graph::analyze_album_tracks() {
  std::vector<std::size_t> all(impl_->n_tracks);
  std::iota(all.begin(), all.end(), std::size_t{0});
  impl_->album_pass(all, [this](work_item& w) { impl_->load(w, false, false, false); });
}

std::vector<render_window> render_graph::windows() const {
  const impl& g = *impl_;
  // The engine holds nothing between passes: one window.
  const std::size_t limit = g.use_gpu ? std::numeric_limits<std::size_t>::max() : g.hold_limit;
  std::vector<render_window> out(1);
  std::map<std::string, int> prechains;
  for (const delivery_profile& p : g.plan.profiles) prechains[prechain_key(p)] = 1;
  const auto held_bytes = [&](std::size_t i) {
    const planned_track& t = g.plan.tracks[i];
    return t.info ? static_cast<std::size_t>(t.info->frames) * 2 * sizeof(float) * prechains.size() : 0;
  };
  std::map<std::string, std::size_t> window_of;
  std::size_t bytes = 0;
  for (const planned_track& t : g.plan.tracks) {
    if (!t.album_key.empty() && window_of.count(t.album_key) == 0) {
      std::size_t album_bytes = 0;
      for (const std::size_t i : g.plan.albums.at(t.album_key)) album_bytes += held_bytes(i);
      if (!out.back().albums.empty() && bytes + album_bytes > limit) {
        out.emplace_back();
        bytes = 0;
      }
      bytes += album_bytes;
      window_of[t.album_key] = out.size() - 1;
      out.back().albums.push_back(t.album_key);
    }
    out[t.album_key.empty() ? out.size() - 1 : window_of.at(t.album_key)].tracks.push_back(t.index);
  }
  return out;
}

void render_graph::measure_album_prechains(const render_window& window) {
  impl_->album_pass(window.tracks, [this](work_item& w) { impl_->measure_prechains(w); });
}

void render_graph::begin_render(double audio_to_do_s) {
  impl& g = *impl_;
  g.progress.emplace(g.opt,
                     std::count_if(g.state.begin(), g.state.end(),
                                   [](const track_state& s) { return s.needs_render || !s.error.empty(); }),
                     audio_to_do_s);
  g.reported.assign(g.n_tracks, 0);
}

void render_graph::render(const render_window& window) {
  impl& g = *impl_;
  tbb::parallel_pipeline(
      g.max_tokens,
      tbb::make_filter<void, token>(tbb::filter_mode::serial_in_order, g.decoder(g.render_batches(window), true)) &
          tbb::make_filter<token, token>(tbb::filter_mode::parallel,
                                         [&g](token b) { return g.analyze_and_process(std::move(b)); }) &
          tbb::make_filter<token, token>(tbb::filter_mode::parallel,
                                         [&g](token b) { return g.render_on_device_and_check_mix(std::move(b)); }) &
          tbb::make_filter<token, void>(tbb::filter_mode::parallel, [&g](token b) { g.deliver(std::move(b)); }));
  g.release_held();
}

void render_graph::end_render() {
  impl& g = *impl_;
  // Tracks that failed before the render passes (unreadable headers, album-pass failures) are
  // reported too.
  for (const planned_track& t : g.plan.tracks) {
    if (g.reported[t.index] || g.state[t.index].error.empty()) continue;
    work_item w;
    w.index = t.index;
    g.finish_track(w);
  }
  g.progress->finish();
}

std::size_t render_graph::peak_reserved_bytes() const {
  return impl_->gate.peak();
}

}  // namespace lathe
