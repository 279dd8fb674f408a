// The GPU backend's host side without a GPU: the batch packer's rules, and whole catalog runs
// on an emulated engine (the CPU chain behind render_engine) that check what the render graph
// does with engine calls: tracks packed per call, every master delivered to its own file,
// failures rendered on the CPU (or failed, with --backend gpu), a lost device dropped once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "demo_catalog.hpp"
#include "lathe/catalog.hpp"
#include "lathe/chain.hpp"
#include "lathe/loudness.hpp"
#include "lathe/master.hpp"
#include "lathe/true_peak.hpp"
#include "pipeline.hpp"
#include "plan.hpp"
#include "render_engine.hpp"
#include "support/files.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {
namespace {

using test::read_json;
using test::slurp;
using test::temp_dir;

// ---- the packer ---------------------------------------------------------------------------

// Every candidate once, in order; a batch of several tracks holds engine tracks of one rate
// within every limit.
void expect_packing_rules(const std::vector<batch_candidate>& c, const batch_limits& limits,
                          const std::vector<std::vector<std::size_t>>& batches) {
  std::vector<std::size_t> flat;
  for (const auto& b : batches) {
    ASSERT_FALSE(b.empty());
    flat.insert(flat.end(), b.begin(), b.end());
    if (b.size() == 1) continue;
    std::size_t host = 0, device = 0;
    for (const std::size_t t : b) {
      const batch_candidate& x = c[t];
      EXPECT_TRUE(x.on_engine) << "a CPU track shares a call";
      EXPECT_EQ(x.rate_hz, c[b.front()].rate_hz) << "rates mixed in one call";
      host += x.host_bytes;
      device += x.device_bytes;
    }
    EXPECT_LE(host, limits.host_bytes);
    EXPECT_LE(device, limits.device_bytes);
    EXPECT_LE(b.size(), limits.tracks);
  }
  std::vector<std::size_t> expected(c.size());
  for (std::size_t i = 0; i < c.size(); ++i) expected[i] = c[i].track;
  EXPECT_EQ(flat, expected);
}

TEST(PackBatches, ConsecutiveTracksOfOneRateShareACallWithinTheLimits) {
  const batch_limits limits{100, 1000, 3};
  const std::vector<batch_candidate> c = {
      {0, 44'100, 10, 100, true},  {1, 44'100, 10, 100, true},  {2, 44'100, 10, 100, true},  // 3 tracks: full
      {3, 44'100, 10, 100, true},  {4, 48'000, 10, 100, true},                               // the rate changes
      {5, 48'000, 95, 100, true},                                                            // host bytes over
      {6, 48'000, 10, 950, true},  {7, 48'000, 10, 100, true},                               // device bytes over
      {8, 48'000, 500, 100, true},                                                           // wider than a call
      {9, 48'000, 10, 100, false}, {10, 48'000, 10, 100, true},                              // a CPU track
  };
  const auto batches = pack_batches(c, limits);
  expect_packing_rules(c, limits, batches);
  const std::vector<std::vector<std::size_t>> expected = {{0, 1, 2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}};
  EXPECT_EQ(batches, expected);
}

TEST(PackBatches, RandomCatalogsKeepTheRules) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<batch_candidate> c(std::uniform_int_distribution<std::size_t>(0, 40)(rng));
    for (std::size_t i = 0; i < c.size(); ++i) {
      const double rates[] = {44'100.0, 48'000.0, 96'000.0};
      c[i] = {i, rates[rng() % 3], 1 + rng() % 200, 1 + rng() % 2000, rng() % 5 != 0};
    }
    const batch_limits limits{1 + rng() % 400, 1 + rng() % 4000, 1 + rng() % 8};
    expect_packing_rules(c, limits, pack_batches(c, limits));
  }
}

TEST(EngineTrackBytes, GrowWithTheTrackTheFormatRateAndTheDistinctPreChains) {
  delivery_profile streaming;
  streaming.sample_rate_hz = 44'100.0;
  delivery_profile hires = streaming;
  hires.sample_rate_hz = 96'000.0;
  const std::vector<delivery_profile> one = {streaming};
  const std::size_t minute = 60 * 44'100;
  const std::size_t a = engine_track_bytes(minute, 44'100.0, one);
  // At least the input, its pre-chain and one format's eight stereo float copies.
  EXPECT_GE(a, 10 * 2 * sizeof(float) * minute);
  EXPECT_NEAR(static_cast<double>(engine_track_bytes(2 * minute, 44'100.0, one)), 2.0 * static_cast<double>(a), 2.0);
  const std::vector<delivery_profile> wider = {streaming, hires};
  EXPECT_GT(engine_track_bytes(minute, 44'100.0, wider), a);
  delivery_profile glued = streaming;
  glued.chain_order.push_back(chain_stage::saturation);
  const std::vector<delivery_profile> two_chains = {streaming, glued};
  EXPECT_EQ(engine_track_bytes(minute, 44'100.0, two_chains) - a, 2 * sizeof(float) * minute);
}

// ---- the emulated engine ------------------------------------------------------------------

// What the emulated engines of one run saw and what they are told to do.
struct emulation {
  std::mutex mutex;
  std::vector<std::pair<double, std::vector<std::size_t>>> calls;  // rate, frames of each track
  int fail_call = -1;                                              // this call throws lathe::error
  int lose_call = -1;                                              // this call loses the device
  bool lost = false;                                               // every call fails from then on
  std::size_t call_budget = std::size_t{1} << 34;
  std::atomic<int> engines_made{0};
};

// The CPU chain behind render_engine, as the CUDA engine's fallback renders a master: the whole
// track through apply_prechain, then render_master.
class emulated_engine final : public render_engine {
 public:
  explicit emulated_engine(emulation& e) : e_(e) { ++e_.engines_made; }

  std::vector<engine_result> render(std::span<const engine_track> tracks, double rate,
                                    std::span<const delivery_profile> profiles) override {
    {
      std::lock_guard lock(e_.mutex);
      if (e_.lost) throw engine_lost("emulated device lost");
      const int call = static_cast<int>(e_.calls.size());
      std::vector<std::size_t> frames;
      for (const engine_track& t : tracks) frames.push_back(t.audio->frames());
      e_.calls.emplace_back(rate, std::move(frames));
      if (call == e_.fail_call) throw error("emulated failure");
      if (call == e_.lose_call) {
        e_.lost = true;
        throw engine_lost("emulated sticky error");
      }
    }
    std::vector<engine_result> out(tracks.size());
    for (std::size_t k = 0; k < tracks.size(); ++k) {
      const audio_buffer& a = *tracks[k].audio;
      engine_result& r = out[k];
      loudness_meter meter;
      meter.prepare(rate, a.channels());
      meter.process(a.view());
      r.input_blocks = meter.blocks();
      true_peak_meter peaks(rate, a.channels());
      peaks.add(a.view().ch.data(), a.frames());
      r.input_true_peak = peaks.finish();
      for (std::size_t f = 0; f < profiles.size(); ++f) {
        json report;
        const audio_buffer pre = apply_prechain(a, rate, profiles[f], &report);
        rendered_master m = render_master(pre, rate, profiles[f], tracks[k].targets_lufs[f],
                                          fnv1a64(profiles[f].name, tracks[k].seed_base));
        m.backend = "emulated";
        r.masters.push_back(std::move(m));
        r.cpu_fallback.push_back(false);
        r.chain_reports.push_back(std::move(report));
      }
    }
    return out;
  }

  tonal_analysis tonal(const audio_buffer& stereo, double rate) override {
    {
      std::lock_guard lock(e_.mutex);
      if (e_.lost) throw engine_lost("emulated device lost");
    }
    return analyze_tonal(stereo, rate);
  }
  std::size_t call_budget_bytes() const override { return e_.call_budget; }
  int device() const noexcept override { return 0; }

 private:
  emulation& e_;
};

class EmulatedEngine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    catalog_ = new fs::path(temp_dir("catalog"));
    write_demo_catalog(*catalog_, 6.0);
    cpu_ = new fs::path(temp_dir("cpu"));
    master(*cpu_, nullptr, false);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*catalog_);
    fs::remove_all(*cpu_);
    delete catalog_;
    delete cpu_;
  }
  static run_plan plan() {
    std::vector<delivery_profile> ps;
    for (const char* n : {"streaming", "cd", "hires"})
      ps.push_back(load_profile(fs::path(LATHE_SOURCE_DIR) / "configs" / (std::string(n) + ".toml")));
    return make_plan(load_catalog(*catalog_ / "manifest.csv"), ps, album_mode::album);
  }
  // The CPU backend when `e` is null, else the GPU backend on emulated engines.
  static master_summary master(const fs::path& out, emulation* e, bool strict, int jobs = 2,
                               std::size_t max_memory = 0) {
    master_options opt;
    opt.out_dir = out;
    opt.jobs = jobs;
    opt.max_memory_bytes = max_memory;
    opt.log = log_format::json;
    if (e != nullptr) {
      opt.backend = {backend_kind::gpu, "emulated engine", strict};
      opt.make_engine = [e](int) { return std::make_unique<emulated_engine>(*e); };
    }
    return run_master(plan(), opt);
  }
  // Per output path: its chain.backend and chain.backend_note.
  static std::map<std::string, std::pair<std::string, std::string>> backends(const fs::path& out) {
    std::map<std::string, std::pair<std::string, std::string>> b;
    const json report = read_json(out / "report.json");
    for (const json& t : report["tracks"])
      if (t.contains("outputs"))
        for (const auto& [name, o] : t["outputs"].items())
          b[o["path"].get<std::string>()] = {o["chain"]["backend"], o["chain"].value("backend_note", "")};
    return b;
  }
  static void expect_same_masters_as_the_cpu(const fs::path& out) {
    std::size_t compared = 0;
    for (const auto& f : fs::recursive_directory_iterator(*cpu_)) {
      const fs::path rel = fs::relative(f.path(), *cpu_);
      if (!f.is_regular_file() || *rel.begin() == ".lathe" || rel.extension() == ".json" || rel.extension() == ".md")
        continue;
      ASSERT_TRUE(fs::exists(out / rel)) << rel;
      EXPECT_EQ(slurp(f.path()), slurp(out / rel)) << rel << " differs from the CPU backend's";
      ++compared;
    }
    EXPECT_EQ(compared, 7u * 3u);
  }
  // A fresh output folder, removed after the test.
  fs::path fresh(const std::string& name) { return made_.emplace_back(temp_dir(name)); }
  void TearDown() override {
    for (const fs::path& d : made_) fs::remove_all(d);
  }
  std::vector<fs::path> made_;
  static fs::path* catalog_;
  static fs::path* cpu_;
};
fs::path* EmulatedEngine::catalog_ = nullptr;
fs::path* EmulatedEngine::cpu_ = nullptr;

TEST_F(EmulatedEngine, PacksTracksPerCallAndDeliversEachMasterToItsOwnFile) {
  const fs::path out = fresh("batched");
  emulation e;
  const master_summary s = master(out, &e, true);
  EXPECT_EQ(s.failed, 0u);
  expect_same_masters_as_the_cpu(out);

  // One call per run of consecutive tracks of one rate (the limits are wide): each track once.
  const run_plan p = plan();
  std::vector<std::pair<double, std::vector<std::size_t>>> expected;
  for (const planned_track& t : p.tracks) {
    if (expected.empty() || expected.back().first != t.info->sample_rate_hz)
      expected.push_back({t.info->sample_rate_hz, {}});
    expected.back().second.push_back(static_cast<std::size_t>(t.info->frames));
  }
  std::sort(e.calls.begin(), e.calls.end());  // the calls run side by side
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(e.calls, expected);
  EXPECT_TRUE(std::any_of(e.calls.begin(), e.calls.end(), [](const auto& c) { return c.second.size() > 1; }));

  // The report says which backend rendered each master, and the inputs are measured.
  const json report = read_json(out / "report.json");
  EXPECT_EQ(report["summary"]["masters_by_backend"], json({{"emulated", 7 * 3}}));
  EXPECT_EQ(report["summary"]["masters_on_cpu_in_gpu_run"], 0);
  EXPECT_EQ(report["summary"]["cpu_reasons_in_gpu_run"], json::object());
  const json cpu_report = read_json(*cpu_ / "report.json");
  for (std::size_t i = 0; i < 7; ++i) {
    const json& a = report["tracks"][i];
    const json& b = cpu_report["tracks"][i];
    EXPECT_EQ(a["input"]["integrated_lufs"], b["input"]["integrated_lufs"]) << i;
    EXPECT_EQ(a["input"]["true_peak_dbtp"], b["input"]["true_peak_dbtp"]) << i;
    EXPECT_EQ(a["tonal"], b["tonal"]) << i;
  }
}

TEST_F(EmulatedEngine, SmallDeviceBudgetGivesOneTrackPerCallAndTheSameMasters) {
  const fs::path out = fresh("one-per-call");
  emulation e;
  e.call_budget = 1;  // no two tracks fit
  master(out, &e, true);
  EXPECT_EQ(e.calls.size(), 7u);
  for (const auto& c : e.calls) EXPECT_EQ(c.second.size(), 1u);
  expect_same_masters_as_the_cpu(out);
}

// The engine holds whole tracks; under a bound narrower than a track the GPU backend renders it
// on the CPU, streamed, and says so, so --max-memory holds on either backend.
TEST_F(EmulatedEngine, TracksWiderThanTheMemoryBoundRenderOnTheCpuStreamed) {
  const fs::path out = fresh("narrow");
  emulation e;
  const master_summary s = master(out, &e, true, 2, streaming_track_bytes);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_TRUE(e.calls.empty());
  expect_same_masters_as_the_cpu(out);
  for (const auto& [path, b] : backends(out)) {
    EXPECT_EQ(b.first, "cpu") << path;
    EXPECT_NE(b.second.find("is wider than --max-memory"), std::string::npos) << path << ": " << b.second;
  }
}

TEST_F(EmulatedEngine, AFailedCallRendersOnTheCpuAndSaysWhyOrFailsWithBackendGpu) {
  {
    const fs::path out = fresh("fail-auto");
    emulation e;
    e.fail_call = 0;
    const master_summary s = master(out, &e, false, 1);
    EXPECT_EQ(s.failed, 0u);
    expect_same_masters_as_the_cpu(out);
    const std::size_t first_call = e.calls.at(0).second.size();
    std::size_t on_cpu = 0;
    for (const auto& [path, b] : backends(out)) {
      if (b.first != "cpu") continue;
      ++on_cpu;
      EXPECT_EQ(b.second, "the GPU failed (emulated failure); rendered on the CPU") << path;
    }
    EXPECT_EQ(on_cpu, 3 * first_call);
    EXPECT_EQ(read_json(out / "report.json")["summary"]["cpu_reasons_in_gpu_run"],
              json({{"the GPU failed (emulated failure); rendered on the CPU", 3 * first_call}}));
  }
  {
    const fs::path out = fresh("fail-strict");
    emulation e;
    e.fail_call = 0;
    const master_summary s = master(out, &e, true, 1);
    EXPECT_EQ(s.failed, e.calls.at(0).second.size());
    const json report = read_json(out / "report.json");
    for (const json& t : report["tracks"]) {
      if (t["status"] != "failed") continue;
      EXPECT_NE(t["error"].get<std::string>().find("--backend gpu does not render on the CPU"), std::string::npos)
          << t["error"];
    }
  }
}

TEST_F(EmulatedEngine, ALostDeviceIsDroppedOnceAndTheRestRendersOnTheCpu) {
  const fs::path out = fresh("lost");
  emulation e;
  e.lose_call = 0;
  const master_summary s = master(out, &e, false, 1);
  EXPECT_EQ(s.failed, 0u);
  expect_same_masters_as_the_cpu(out);
  // After the loss no engine is made or called again.
  EXPECT_EQ(e.calls.size(), 1u);
  const int made = e.engines_made;
  EXPECT_EQ(made, 1);
  std::size_t failed_in_call = 0, after = 0;
  for (const auto& [path, b] : backends(out)) {
    EXPECT_EQ(b.first, "cpu") << path;
    if (b.second == "the GPU failed (emulated sticky error); rendered on the CPU")
      ++failed_in_call;
    else if (b.second == "the GPU was lost earlier in the run (emulated sticky error); rendered on the CPU")
      ++after;
    else
      ADD_FAILURE() << path << ": " << b.second;
  }
  EXPECT_EQ(failed_in_call, 3 * e.calls[0].second.size());
  EXPECT_EQ(failed_in_call + after, 7u * 3u);
  EXPECT_GT(after, 0u);

  // With --backend gpu every track fails instead.
  const fs::path strict = fresh("lost-strict");
  emulation f;
  f.lose_call = 0;
  EXPECT_EQ(master(strict, &f, true, 1).failed, 7u);
}

}  // namespace
}  // namespace lathe
