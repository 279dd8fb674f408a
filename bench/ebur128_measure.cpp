// Measures audio files with libebur128 (integrated loudness, LRA, true peak), independently of
// lathe's own meter, and prints one JSON object per file. Used by bench/verify_catalog.py.
#include <ebur128.h>
#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

int main(int argc, char** argv) {
  int status = 0;
  nlohmann::json out = nlohmann::json::array();
  for (int i = 1; i < argc; ++i) {
    SF_INFO info{};
    SNDFILE* f = sf_open(argv[i], SFM_READ, &info);
    if (f == nullptr) {
      out.push_back({{"path", argv[i]}, {"error", sf_strerror(nullptr)}});
      status = 2;
      continue;
    }
    ebur128_state* st = ebur128_init(static_cast<unsigned>(info.channels), static_cast<unsigned long>(info.samplerate),
                                     EBUR128_MODE_I | EBUR128_MODE_LRA | EBUR128_MODE_TRUE_PEAK);
    std::vector<double> buf(static_cast<std::size_t>(8192 * info.channels));
    sf_count_t n = 0;
    while ((n = sf_readf_double(f, buf.data(), 8192)) > 0)
      ebur128_add_frames_double(st, buf.data(), static_cast<std::size_t>(n));
    double integrated = 0.0, lra = 0.0, tp = 0.0;
    ebur128_loudness_global(st, &integrated);
    ebur128_loudness_range(st, &lra);
    for (int c = 0; c < info.channels; ++c) {
      double v = 0.0;
      ebur128_true_peak(st, static_cast<unsigned>(c), &v);
      tp = std::max(tp, v);
    }
    const int sub = info.format & SF_FORMAT_SUBMASK;
    out.push_back({{"path", argv[i]},
                   {"integrated_lufs", integrated},
                   {"loudness_range_lu", lra},
                   {"true_peak_dbtp", 20.0 * std::log10(tp)},
                   {"sample_rate_hz", info.samplerate},
                   {"channels", info.channels},
                   {"bit_depth", sub == SF_FORMAT_PCM_16   ? 16
                                 : sub == SF_FORMAT_PCM_24 ? 24
                                 : sub == SF_FORMAT_FLOAT  ? 32
                                                           : 0},
                   {"frames", info.frames}});
    ebur128_destroy(&st);
    sf_close(f);
  }
  std::printf("%s\n", out.dump(1).c_str());
  return status;
}
