#pragma once
// JSON forms of what lathe measured and did, for report.json and the resume sidecars.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "lathe/analysis.hpp"
#include "lathe/audio_io.hpp"
#include "lathe/master.hpp"
#include "lathe/profile.hpp"

namespace lathe {

/// A finite double, or null (JSON has no infinities: silence reads -inf LUFS).
nlohmann::json number_or_null(double v);
/// Rounded to `decimals` for the report (measurements carry no more precision than that).
nlohmann::json rounded(double v, int decimals = 3);

nlohmann::json to_json(const source_info& info);
nlohmann::json to_json(const track_analysis& a);
nlohmann::json to_json(const delivery_profile& p);
nlohmann::json to_json(const tonal_analysis& t);
/// The chain's settings and what it did for one master, and the measured output.
nlohmann::json to_json(const rendered_master& m, const delivery_profile& p);

/// Writes text to `dest` through a temporary file and a rename. Throws output_error.
void write_text_atomic(const std::filesystem::path& dest, const std::string& text);

}  // namespace lathe
