// Measures audio files with libebur128 (integrated loudness, LRA, true peak), independently of
// lathe's own meter, and prints one JSON object per file. Used by bench/verify_catalog.py.
// The measurement is the tests' oracle (tests/support/oracle.hpp).
#include <sndfile.h>

#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "support/oracle.hpp"

int main(int argc, char** argv) {
  int status = 0;
  nlohmann::json out = nlohmann::json::array();
  for (int i = 1; i < argc; ++i) {
    try {
      const lathe::test::oracle_reading r = lathe::test::ebur128_measure_file(argv[i]);
      const int sub = r.format & SF_FORMAT_SUBMASK;
      out.push_back({{"path", argv[i]},
                     {"integrated_lufs", r.integrated_lufs},
                     {"loudness_range_lu", r.loudness_range_lu},
                     {"true_peak_dbtp", r.true_peak_dbtp},
                     {"sample_rate_hz", r.sample_rate_hz},
                     {"channels", r.channels},
                     {"bit_depth", sub == SF_FORMAT_PCM_16   ? 16
                                   : sub == SF_FORMAT_PCM_24 ? 24
                                   : sub == SF_FORMAT_FLOAT  ? 32
                                                             : 0},
                     {"frames", r.frames}});
    } catch (const std::exception& e) {
      out.push_back({{"path", argv[i]}, {"error", e.what()}});
      status = 2;
    }
  }
  std::printf("%s\n", out.dump(1).c_str());
  return status;
}
