#include "pipeline.hpp"

#include <signal.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <nlohmann/json.hpp>

#include "adaptive_targets.hpp"
#include "album_decisions.hpp"
#include "lathe/analysis.hpp"
#include "lathe/chain.hpp"
#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "lathe/mix_notes.hpp"
#include "lathe/spill.hpp"
#include "lathe/tonal.hpp"
#include "lathe/true_peak.hpp"
#include "master_writer.hpp"
#include "report.hpp"
#include "run_report.hpp"
#include "track_record.hpp"
#include "track_state.hpp"
#ifdef LATHE_HAVE_CUDA
#include <oneapi/tbb/enumerable_thread_specific.h>

#include "gpu_engine.hpp"
#include "lathe_gpu/device.hpp"
#endif

namespace lathe {

using nlohmann::json;

std::size_t parse_size(const std::string& text) {
  std::size_t pos = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw config_error(fmt::format("--max-memory: '{}' is not a size (examples: 512M, 4G, 1.5GiB)", text));
  }
  std::string unit = text.substr(pos);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  double mult = 1.0;
  if (unit.empty() || unit == "B")
    mult = 1.0;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024.0;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024.0 * 1024.0;
  else if (unit == "T" || unit == "TB" || unit == "TIB")
    mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  else
    throw config_error(fmt::format("--max-memory: unknown unit '{}' in '{}' (use K, M, G or T)", unit, text));
  if (!(value > 0.0)) throw config_error(fmt::format("--max-memory: '{}' must be positive", text));
  return static_cast<std::size_t>(value * mult);
}

std::size_t estimate_track_bytes(const planned_track& t, const run_plan& plan) {
  if (!t.info) return 0;
  const double in_rate = t.info->sample_rate_hz;
  const double channel_bytes = static_cast<double>(t.info->frames) * sizeof(float);
  const double stereo = 2.0 * channel_bytes;
  std::map<std::string, int> prechains;
  double formats = 0.0;
  for (const delivery_profile& p : plan.profiles) {
    prechains[prechain_key(p)] = 1;
    // resampled copy, limiter output, delivered copy, integer PCM, limiter envelope, meter scratch
    formats += (p.output_rate_hz(in_rate) / in_rate) * (4.0 * stereo + 2.0 * channel_bytes);
  }
  const double decoded = stereo * (1.0 + static_cast<double>(prechains.size()));
  return static_cast<std::size_t>(decoded + formats);
}

namespace {

// A temporary that lathe writes beside a final name (".NAME.tmp-PID-N") and whose writer is
// gone: a run that was killed. Those of a live process (another run) are left alone.
void remove_stale_temporaries(const std::filesystem::path& out_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(out_dir, ec)) return;
  std::vector<std::filesystem::path> stale;
  for (auto it = std::filesystem::recursive_directory_iterator(out_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::size_t tmp = name.rfind(".tmp-");
    if (name.empty() || name[0] != '.' || tmp == std::string::npos || !it->is_regular_file(ec)) continue;
    const std::string rest = name.substr(tmp + 5);
    const std::size_t dash = rest.find('-');
    if (dash == std::string::npos || dash == 0) continue;
    const std::string pid_text = rest.substr(0, dash);
    if (!std::all_of(pid_text.begin(), pid_text.end(), [](unsigned char c) { return std::isdigit(c); })) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    stale.push_back(it->path());
  }
  for (const auto& p : stale) std::filesystem::remove(p, ec);
}

std::size_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : (8ull << 30);
}

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
  std::size_t peak() const { return peak_; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t budget_, used_ = 0, peak_ = 0;
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

// A track in flight: move-only, so each stage owns it in turn.
struct work_item {
  std::size_t index = 0;
  std::size_t reserved_bytes = 0;
  bool spill_to_files = false;           // spills in files (bounded memory) or in memory
  std::optional<decoded_track> decoded;  // the whole track, for the GPU engine
  std::optional<audio_spill> source;     // the decoded track (borrowing `decoded` when it exists)
  source_info info;
  std::map<std::string, audio_spill> pre;               // pre-chain key -> processed audio
  std::vector<std::optional<rendered_master>> masters;  // per format, rendered by the GPU engine
  std::string error;
};
using token = std::unique_ptr<work_item>;

// An output is complete when its sidecar carries its fingerprint and its byte count; `sidecar`
// then holds the report entry and what the album figures need.
bool resume_complete(const std::filesystem::path& out_dir, const planned_track& t, std::size_t f, json& sidecar) {
  const std::filesystem::path state = state_path(out_dir, t.outputs[f]);
  std::ifstream in(state);
  if (!in) return false;
  try {
    json j = json::parse(in);
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(out_dir / t.outputs[f], ec);
    if (ec || j.value("fingerprint", "") != t.fingerprints[f] || j.value("bytes", std::uintmax_t{0}) != bytes)
      return false;
    if (!j.contains("output")) return false;
    sidecar = std::move(j);
    return true;
  } catch (const std::exception&) {
    return false;  // a damaged sidecar means "not done"
  }
}

std::string track_error_text(const std::exception& e) {
  if (const auto* ie = dynamic_cast<const input_error*>(&e)) return ie->reason();
  return e.what();
}

}  // namespace

master_summary run_master(const run_plan& planned, const master_options& opt) {
  const double t0 = now_s();
  const int threads = opt.jobs > 0 ? opt.jobs : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  const run_plan plan = fingerprint_plan(planned, opt.out_dir / ".lathe" / "state" / "inputs");
  const std::size_t n_tracks = plan.tracks.size();
  const std::size_t n_formats = plan.profiles.size();
  std::vector<track_state> state(n_tracks);

  const std::size_t budget = opt.max_memory_bytes > 0 ? opt.max_memory_bytes : physical_memory_bytes() / 2;
  memory_gate gate(budget);
  // Tokens bound the tracks in flight; the memory gate bounds their bytes.
  const auto max_tokens = static_cast<std::size_t>(2 * threads);

  // Spills of an earlier run that was killed are anonymous files, gone with it; a folder left
  // behind is removed, and so are the temporaries of masters and records it was writing.
  {
    std::error_code ec;
    std::filesystem::remove_all(opt.out_dir / ".lathe" / "spill", ec);
    remove_stale_temporaries(opt.out_dir);
  }
  // Which outputs are already complete (resume), and which tracks need work.
  double audio_to_do_s = 0.0;
  for (const planned_track& t : plan.tracks) {
    track_state& s = state[t.index];
    s.outputs.assign(n_formats, json::object());
    s.resumed.assign(n_formats, false);
    s.targets_lufs.assign(n_formats, 0.0);
    for (std::size_t f = 0; f < n_formats; ++f) s.targets_lufs[f] = plan.profiles[f].target_lufs;
    s.profiles = plan.profiles;
    s.adaptive_reports.assign(n_formats, json());
    s.master_tonal.resize(n_formats);
    if (!t.info) {
      s.error = t.probe_error;
      continue;
    }
    for (std::size_t f = 0; f < n_formats; ++f) {
      json sidecar;
      if (resume_complete(opt.out_dir, t, f, sidecar)) {
        s.resumed[f] = true;
        s.outputs[f] = sidecar.at("output");
        // The master's tonal balance and loudness blocks, for the album figures.
        try {
          if (sidecar.contains("master_tonal")) s.master_tonal[f] = record::tonal_from(sidecar["master_tonal"]);
          if (sidecar.contains("blocks")) {
            s.output_blocks.resize(n_formats);
            s.output_blocks[f] = record::blocks_from(sidecar["blocks"]);
          }
        } catch (const json::exception&) {
          s.master_tonal[f].reset();
        }
      } else {
        s.needs_render = true;
      }
    }
    if (s.needs_render) audio_to_do_s += t.duration_s();
  }
  for (const auto& [album, members] : plan.albums) {
    const bool any = std::any_of(members.begin(), members.end(), [&](std::size_t i) { return state[i].needs_render; });
    if (!any) continue;
    for (std::size_t i : members)
      if (state[i].error.empty()) state[i].needs_album_pass = true;
  }

  // Adaptive mastering: target curves, references, album balances.
  adaptive_targets targets(plan, opt.reference_file);
  // A track's record holds its mix notes, which depend on the curve they compare with.
  auto record_key = [&](const planned_track& t) { return t.record_key + "\n" + targets.notes_context(); };
  // Tracks finished earlier: their report entries and mix notes are rebuilt from their records.
  for (const planned_track& t : plan.tracks) {
    track_state& s = state[t.index];
    if (s.needs_render || !s.error.empty()) continue;
    const auto r = record::load_track_record(opt.out_dir, record_key(t));
    if (!r) continue;
    s.input = r->input;
    s.tonal = r->tonal;
    if (r->mix_notes) {
      s.mix_notes = *r->mix_notes;
      s.mix_checked = true;
    }
  }
  // GPU rendering meters the input on the device; a loudness amount under 100 % needs it first.
  const bool needs_input_loudness = std::any_of(plan.profiles.begin(), plan.profiles.end(), [&](const auto& p) {
    return p.adaptive.enabled && (p.adaptive.loudness < 1.0 ||
                                  std::any_of(plan.tracks.begin(), plan.tracks.end(), [](const planned_track& t) {
                                    return t.entry.amounts.loudness.has_value();
                                  }));
  });

  // Analysis and pre-chains (stages 1-2 of the chain), shared by both passes.
  const bool use_gpu = opt.backend.kind == backend_kind::gpu;
  const std::filesystem::path spill_dir = opt.out_dir / ".lathe" / "spill";
  auto make_spill = [&](const work_item& w, int channels) {
    return w.spill_to_files ? audio_spill(channels, spill_dir) : audio_spill(channels);
  };
  // Stage 1 of both passes: tracks in catalog order, admitted by the memory gate (decoding
  // happens in the parallel stage after it).
  // TBB filter bodies are const: the serial filter's cursor lives outside it.
  std::size_t next = 0;
  auto make_decoder = [&](auto wanted) {
    next = 0;
    return [&, wanted](tbb::flow_control& fc) -> token {
      while (next < n_tracks && !wanted(next)) ++next;
      if (next >= n_tracks) {
        fc.stop();
        return nullptr;
      }
      auto item = std::make_unique<work_item>();
      item->index = next++;
      const planned_track& t = plan.tracks[item->index];
      // A track whose audio fits its share of the budget keeps its spills in memory; any other
      // streams through files with a fixed working set. Either way the masters are the same.
      const std::size_t whole = estimate_track_bytes(t, plan);
      if (use_gpu) {
        item->reserved_bytes = whole + streaming_track_bytes;
      } else if (whole + streaming_track_bytes <= budget / max_tokens) {
        item->reserved_bytes = whole + streaming_track_bytes;
      } else {
        item->reserved_bytes = streaming_track_bytes;
        item->spill_to_files = true;
      }
      gate.acquire(item->reserved_bytes);
      return item;
    };
  };
  // Stages 1-2 of the chain on the CPU, every distinct pre-chain in one pass over the source:
  // kept for rendering, or (album pass, keep_audio false) only measured for the album decision.
  auto run_prechains = [&](work_item& w, bool keep_audio) {
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
      if (keep_audio) {
        j.out = make_spill(w, src.channels());
      } else {
        j.meter.prepare(rate, src.channels());
        j.peaks.emplace(rate, src.channels());
      }
    }
    if (jobs.empty()) return;
    auto feed = [&](job& j) {
      return [&j](const_block_view v) {
        if (j.out) {
          j.out->append(v);
        } else {
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
        w.pre.emplace(j.key, std::move(*j.out));
      } else {
        s.pre_loudness_lufs[j.key] = j.meter.integrated_lufs();
        s.pre_true_peak_dbtp[j.key] = 20.0 * std::log10(static_cast<double>(j.peaks->finish()));
      }
    }
  };
  // Input analysis, then the pre-chains (which the GPU engine runs itself when rendering).
  // In GPU rendering only the one-pass sample scan runs here; the engine meters the input on the
  // device and complete_analysis() finishes it (render_on_gpu).
  // The GPU engine, one per worker thread (each with its own stream, so tracks in flight overlap
  // on the device), spread over the GPUs.
#ifdef LATHE_HAVE_CUDA
  const int gpu_count = use_gpu ? static_cast<int>(gpu::devices().size()) : 0;
  const int gpus_used = opt.gpus > 0 ? std::min(opt.gpus, gpu_count) : gpu_count;
  std::atomic<int> next_device{0};
  tbb::enumerable_thread_specific<std::unique_ptr<gpu_engine>> engines;
  std::mutex log_mutex;
  auto engine_here = [&]() -> gpu_engine* {
    std::unique_ptr<gpu_engine>& engine = engines.local();
    if (!engine) engine = std::make_unique<gpu_engine>(next_device++ % std::max(1, gpus_used));
    return engine.get();
  };
#endif
  // Tonal balance of the input: on the device with the GPU backend (the CPU if it fails).
  auto tonal_of = [&](const decoded_track& d) -> tonal_analysis {
#ifdef LATHE_HAVE_CUDA
    if (use_gpu) {
      try {
        return engine_here()->tonal(d.audio, d.info.sample_rate_hz);
      } catch (const std::exception& e) {
        std::lock_guard lock(log_mutex);
        std::fprintf(stderr, "lathe: GPU tonal analysis failed on %s (%s); measuring it on the CPU\n",
                     d.info.path.c_str(), e.what());
      }
    }
#endif
    return analyze_tonal(d.audio, d.info.sample_rate_hz);
  };
  // Decodes the track: the whole buffer for the GPU engine (whole_buffer), else block by block
  // into its source spill. The input is measured on the way when it is not known yet (only the
  // sample scan when scan_only: the GPU meters the rest).
  auto load = [&](work_item& w, bool whole_buffer, bool scan_only, bool keep_source = true) {
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
  };
  auto prepare = [&](work_item& w, bool keep_audio) {
    const bool gpu_render = keep_audio && use_gpu;
    load(w, gpu_render, gpu_render && !needs_input_loudness);
    targets.adapt(plan.tracks[w.index], state[w.index]);
    if (!gpu_render) run_prechains(w, keep_audio);
  };
  auto fail_track = [&](work_item& w, std::string why) {
    if (state[w.index].error.empty()) state[w.index].error = std::move(why);
  };

  // A pass over the album tracks that decodes each one and runs `body` on it.
  auto album_pass = [&](auto body) {
    tbb::parallel_pipeline(max_tokens, tbb::make_filter<void, token>(
                                           tbb::filter_mode::serial_in_order,
                                           make_decoder([&](std::size_t i) { return state[i].needs_album_pass; })) &
                                           tbb::make_filter<token, void>(tbb::filter_mode::parallel, [&](token w) {
                                             try {
                                               if (!w->error.empty())
                                                 fail_track(*w, w->error);
                                               else
                                                 body(*w);
                                             } catch (const std::exception& e) {
                                               fail_track(*w, track_error_text(e));
                                             }
                                             gate.release(w->reserved_bytes);
                                           }));
  };

  // ---- pass 0 (album consistency): every album track's analysis, then each album's balance --
  if (targets.album_balance_needed()) {
    album_pass([&](work_item& w) { load(w, false, false, false); });
    targets.set_album_balances(state);
  }

  // ---- pass 1 (album mode): loudness of every album track after the pre-chain -------------
  album_pass([&](work_item& w) { prepare(w, false); });
  json album_reports = decide_albums(plan, state, opt.out_dir);

  // Rendering on the thread's GPU engine. A failure on the device is reported and the track is
  // rendered on the CPU instead; returns false then.
#ifdef LATHE_HAVE_CUDA
  auto render_on_gpu = [&](work_item& w, const planned_track& t, track_state& s, double rate) -> bool {
    try {
      gpu_engine* engine = engine_here();
      std::vector<delivery_profile> todo;
      std::vector<std::size_t> index;
      gpu_track g;
      g.audio = &w.decoded->audio;
      g.seed_base = t.dither_seed_base;
      for (std::size_t f = 0; f < n_formats; ++f) {
        if (s.resumed[f]) continue;
        todo.push_back(s.profiles[f]);
        index.push_back(f);
        g.targets_lufs.push_back(s.targets_lufs[f]);
      }
      std::vector<gpu_engine::result> r = engine->render({&g, 1}, rate, todo);
      for (std::size_t k = 0; k < index.size(); ++k) {
        w.masters[index[k]] = std::move(r[0].masters[k]);
        s.chain_reports[prechain_key(todo[k])] = std::move(r[0].chain_reports[k]);
      }
      if (s.input_is_scan_only) {
        complete_analysis(*s.input, std::move(r[0].input_blocks), r[0].input_true_peak);
        s.input_is_scan_only = false;
      }
      return true;
    } catch (const std::exception& e) {
      std::lock_guard lock(log_mutex);
      std::fprintf(stderr, "lathe: GPU failed on %s (%s); rendering it on the CPU\n", t.entry.path.c_str(), e.what());
      return false;
    }
  };
#else
  auto render_on_gpu = [](work_item&, const planned_track&, track_state&, double) { return false; };
#endif

  // ---- pass 2: render every output not already complete ----------------------------------
  progress_reporter progress(opt,
                             std::count_if(state.begin(), state.end(),
                                           [](const track_state& s) { return s.needs_render || !s.error.empty(); }),
                             audio_to_do_s);
  std::vector<char> reported(n_tracks, 0);
  auto finish_track = [&](work_item& w) {
    reported[w.index] = 1;
    const planned_track& t = plan.tracks[w.index];
    json entry = {{"path", t.entry.relative_path.generic_string()}};
    if (!state[w.index].error.empty()) {
      entry["status"] = "failed";
      entry["error"] = state[w.index].error;
    } else {
      entry["status"] = "ok";
    }
    progress.track_done(entry, t.duration_s());
  };

  tbb::parallel_pipeline(
      max_tokens,
      tbb::make_filter<void, token>(tbb::filter_mode::serial_in_order, make_decoder([&](std::size_t i) {
                                      return state[i].needs_render && state[i].error.empty();
                                    })) &
          // analyze and process: input analysis and the pre-chains
          tbb::make_filter<token, token>(tbb::filter_mode::parallel,
                                         [&](token w) {
                                           if (!w->error.empty()) {
                                             fail_track(*w, w->error);
                                             return w;
                                           }
                                           try {
                                             prepare(*w, true);
                                           } catch (const std::exception& e) {
                                             fail_track(*w, track_error_text(e));
                                           }
                                           return w;
                                         }) &
          // the GPU engine's render (the whole track on the device), and the mix check
          tbb::make_filter<token, token>(tbb::filter_mode::parallel,
                                         [&](token w) {
                                           track_state& s = state[w->index];
                                           w->masters.resize(n_formats);
                                           if (!s.error.empty()) return w;
                                           const planned_track& t = plan.tracks[w->index];
                                           const double rate = w->info.sample_rate_hz;
                                           try {
                                             if (use_gpu && !render_on_gpu(*w, t, s, rate) && s.input_is_scan_only) {
                                               s.input = analyze(w->decoded->audio, rate);  // the GPU did not meter it
                                               s.input_is_scan_only = false;
                                             }
                                             // Mix notes: what the mix itself has, for the people who made it.
                                             if (!s.mix_checked && s.input && !s.input_is_scan_only) {
                                               mix_check_input in;
                                               in.spill = &*w->source;
                                               in.sample_rate_hz = rate;
                                               in.source = &w->info;
                                               in.analysis = &*s.input;
                                               in.tonal = s.tonal ? &*s.tonal : nullptr;
                                               in.target = targets.notes_target();
                                               s.mix_notes = check_mix(in);
                                               s.mix_checked = true;
                                             }
                                           } catch (const std::exception& e) {
                                             fail_track(*w, track_error_text(e));
                                           }
                                           return w;
                                         }) &
          // render on the CPU (normalization, limiting, resampling, dither, streamed into the file),
          // or write what the GPU rendered; then the report entry and the sidecar of each output
          tbb::make_filter<token, void>(tbb::filter_mode::parallel, [&](token w) {
            track_state& s = state[w->index];
            const planned_track& t = plan.tracks[w->index];
            if (s.error.empty()) {
              try {
                // The track's record goes first: a sidecar names an output complete only after it.
                record::track_record r;
                if (s.input && !s.input_is_scan_only) r.input = s.input;
                r.tonal = s.tonal;
                if (s.mix_checked) r.mix_notes = s.mix_notes;
                record::save_track_record(opt.out_dir, record_key(t), r);
                const double rate = w->info.sample_rate_hz;
                for (std::size_t f = 0; f < n_formats; ++f) {
                  if (s.resumed[f]) continue;
                  const delivery_profile& p = s.profiles[f];
                  const delivery_profile& shipped = plan.profiles[f];
                  const std::filesystem::path dest = opt.out_dir / t.outputs[f];
                  const target_curve* target = targets.target_of(t, p);
                  rendered_master m;
                  tonal_analysis mt;
                  translation_check translation;
                  if (w->masters[f]) {  // rendered on the GPU
                    m = std::move(*w->masters[f]);
                    w->masters[f].reset();
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
                    if (w->pre.count(prechain_key(p)) == 0) run_prechains(*w, true);
                    master_writer out(dest, shipped.container, t.tags);
                    const std::uint64_t seed = fnv1a64(p.name, t.dither_seed_base);
                    m = render_master(w->pre.at(prechain_key(p)), rate, p, s.targets_lufs[f], seed, out,
                                      w->spill_to_files ? spill_dir : std::filesystem::path());
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
                  if (!t.album_key.empty()) {
                    s.output_blocks.resize(n_formats);
                    s.output_blocks[f] = std::move(m.measured.blocks);
                  }
                  write_text_atomic(state_path(opt.out_dir, t.outputs[f]), sidecar.dump(1));
                }
              } catch (const std::exception& e) {
                fail_track(*w, track_error_text(e));
              }
            }
            w->pre.clear();
            w->source.reset();
            w->decoded.reset();
            gate.release(w->reserved_bytes);
            finish_track(*w);
          }));
  // Tracks that failed before this pass (unreadable headers, album-pass failures) are reported too.
  for (const planned_track& t : plan.tracks) {
    if (reported[t.index] || state[t.index].error.empty()) continue;
    work_item w;
    w.index = t.index;
    finish_track(w);
  }
  progress.finish();
  return write_run_report(plan, state, std::move(album_reports), opt, {t0, threads, budget, gate.peak()});
}

}  // namespace lathe
