#!/usr/bin/env python3
"""Checks lathe's masters of a real catalog with an independent meter (libebur128, through
build/lathe_ebur128), the acceptance test of the CPU pipeline:

1. --track-mode, formats streaming, cd, hires, broadcast: every master within +-0.1 LU of its
   target, true peak at or under its ceiling, at the profile's rate and bit depth.
2. album mode, formats streaming and cd: each album's loudest track within +-0.1 LU of the
   target, and every other track keeps its loudness relative to the loudest (pre-chain loudness
   differences from report.json against measured output differences, +-0.1 LU).

Catalog: Debian's warzone2100-music decoded to FLAC with a manifest of its three albums
(bench/catalog_bench.py's decode step). Writes a JSON summary (--out) and exits 1 on any miss.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import catalog_bench  # noqa: E402

ROOT = catalog_bench.ROOT
TOLERANCE_LU = 0.1


def profile(name):
    import tomllib
    return tomllib.load(open(os.path.join(ROOT, "configs", name + ".toml"), "rb"))


def oracle(tool, paths):
    out = []
    for i in range(0, len(paths), 16):
        out += json.loads(subprocess.run([tool] + paths[i:i + 16], check=True, capture_output=True, text=True).stdout)
    return {r["path"]: r for r in out}


def master(lathe, manifest, out, formats, extra, jobs):
    t = time.monotonic()
    subprocess.run([lathe, "master", manifest, "--out", out, "--formats", ",".join(formats), "--jobs", str(jobs),
                    "--log-format", "json", "--config-dir", os.path.join(ROOT, "configs")] + extra,
                   check=True, capture_output=True)
    return time.monotonic() - t, json.load(open(os.path.join(out, "report.json")))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "work"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    lathe = os.path.join(a.build, "lathe")
    tool = os.path.join(a.build, "lathe_ebur128")
    cat, files = catalog_bench.decode_catalog(a.work, a.limit)
    manifest = os.path.join(cat, "manifest.csv")
    failures = []
    commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    result = {"git_commit": commit, "catalog": {"source": "warzone2100-music (Debian), decoded to 24-bit FLAC", "tracks": len(files)},
              "meter": "libebur128 (independent of lathe's meter)", "tolerance_lu": TOLERANCE_LU}

    # 1. track mode
    formats = ["streaming", "cd", "hires", "broadcast"]
    out = os.path.join(a.work, "verify-track")
    subprocess.run(["rm", "-rf", out])
    wall, report = master(lathe, manifest, out, formats, ["--track-mode"], a.jobs)
    audio_s = sum(t["source"]["frames"] / t["source"]["sample_rate_hz"] for t in report["tracks"] if "source" in t)
    result["track_mode"] = {"wall_s": round(wall, 1), "audio_hours": round(audio_s / 3600, 3),
                            "x_realtime": round(audio_s / wall, 1), "formats": {}}
    for fmt in formats:
        p = profile(fmt)
        target, ceiling = p["loudness"]["target_lufs"], p["loudness"]["ceiling_dbtp"]
        rate, bits = p["output"].get("sample_rate_hz", "source"), p["output"]["bit_depth"]
        paths = [os.path.join(out, t["outputs"][fmt]["path"]) for t in report["tracks"] if t["status"] == "ok"]
        readings = oracle(tool, paths)
        errs, tps = [], []
        for t in report["tracks"]:
            if t["status"] != "ok":
                failures.append(f"{t['path']}: {t.get('error')}")
                continue
            r = readings[os.path.join(out, t["outputs"][fmt]["path"])]
            err = r["integrated_lufs"] - target
            errs.append(err)
            tps.append(r["true_peak_dbtp"])
            want_rate = t["source"]["sample_rate_hz"] if rate == "source" else rate
            if abs(err) > TOLERANCE_LU:
                failures.append(f"{fmt} {t['path']}: {r['integrated_lufs']:.3f} LUFS, target {target}")
            if r["true_peak_dbtp"] > ceiling:
                failures.append(f"{fmt} {t['path']}: true peak {r['true_peak_dbtp']:.3f} over {ceiling}")
            if r["sample_rate_hz"] != want_rate or r["bit_depth"] != bits:
                failures.append(f"{fmt} {t['path']}: {r['sample_rate_hz']} Hz/{r['bit_depth']} bit")
        result["track_mode"]["formats"][fmt] = {
            "target_lufs": target, "ceiling_dbtp": ceiling, "masters": len(errs),
            "max_abs_loudness_error_lu": round(max(abs(e) for e in errs), 4),
            "mean_loudness_error_lu": round(sum(errs) / len(errs), 4),
            "max_true_peak_dbtp": round(max(tps), 3)}

    # 2. album mode
    formats = ["streaming", "cd"]
    out = os.path.join(a.work, "verify-album")
    subprocess.run(["rm", "-rf", out])
    wall, report = master(lathe, manifest, out, formats, [], a.jobs)
    by_path = {t["path"]: t for t in report["tracks"]}
    result["album_mode"] = {"wall_s": round(wall, 1), "albums": {}}
    for name, album in report["albums"].items():
        entry = {"tracks": album["tracks"]}
        for fmt in formats:
            d = album["formats"][fmt]
            target = profile(fmt)["loudness"]["target_lufs"]
            paths = [os.path.join(out, by_path[m["path"]]["outputs"][fmt]["path"]) for m in d["tracks"]]
            readings = oracle(tool, paths)
            measured = {m["path"]: readings[p]["integrated_lufs"] for m, p in zip(d["tracks"], paths)}
            pre = {m["path"]: m["pre_loudness_lufs"] for m in d["tracks"]}
            loud = d["loudest_track"]
            loud_err = measured[loud] - target
            rel_errs = [(measured[k] - measured[loud]) - (pre[k] - pre[loud]) for k in measured]
            if abs(loud_err) > TOLERANCE_LU:
                failures.append(f"album {name} {fmt}: loudest track {measured[loud]:.3f} LUFS, target {target}")
            if max(abs(e) for e in rel_errs) > TOLERANCE_LU + 0.01:  # report rounds pre-loudness to 0.01
                failures.append(f"album {name} {fmt}: relative loudness off by {max(abs(e) for e in rel_errs):.3f} LU")
            entry[fmt] = {"loudest_track": loud, "loudest_error_lu": round(loud_err, 4),
                          "album_gain_db": d["album_gain_db"],
                          "max_abs_relative_loudness_error_lu": round(max(abs(e) for e in rel_errs), 4),
                          "spread_of_outputs_lu": round(max(measured.values()) - min(measured.values()), 2)}
        result["album_mode"]["albums"][name] = entry
    result["failures"] = failures
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        open(a.out, "w").write(text + "\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
