"""Benchmark the data stages: corpus build time, ingest + clean throughput, peak memory.

Each phase runs as its own process tree (exactly as a user runs it); peak memory is the largest
summed RSS of the tree, sampled every 50 ms with psutil. Results go to
``benchmarks/results/data.json``.

    python benchmarks/bench_data.py            # full default corpus (needs the Debian packages)
    python benchmarks/bench_data.py --cold     # also time downloading the packages
    python benchmarks/bench_data.py --work DIR # keep the built corpus in DIR
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def run_measured(args: list[str]) -> dict[str, float]:
    """Run ``args``; return wall seconds and peak RSS (MiB) of the whole process tree."""
    start = time.perf_counter()
    # output goes to a file, not a pipe: a stage's progress bars over tens of thousands of clips
    # fill a pipe's buffer, and a child blocked writing to an unread pipe never finishes
    with tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True)
        parent = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        if proc.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed:\n{output.read()[-3000:]}")
    return {"seconds": round(time.perf_counter() - start, 2), "peak_rss_mib": round(peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data.json")
    parser.add_argument("--cold", action="store_true", help="empty download cache: include fetching the packages")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="marssep-bench-"))
    raw, catalog, clean = work / "raw", work / "catalog", work / "clean"
    python = sys.executable
    marssep = str(Path(python).parent / "marssep")

    build_args = [marssep, "data", "build-default", "--out", str(raw)]
    if args.cold:
        build_args += ["--deb-cache", str(work / "debs")]
    build = run_measured(build_args)
    ingest = run_measured([python, "pipeline/ingest.py", "--raw", str(raw), "--out", str(catalog)])
    cleaned = run_measured(
        [python, "pipeline/clean.py", "--raw", str(raw), "--catalog", str(catalog / "catalog.parquet"),
         "--out", str(clean), "--metrics", str(work / "data.json")]
    )
    metrics = json.loads((work / "data.json").read_text())
    deb_gb = sum(deb.stat().st_size for deb in (work / "debs").glob("*.deb")) / 1e9
    clips = metrics["catalog_clips"]
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "corpus_build": {
            **build,
            "clips": clips,
            "includes": f"download ({deb_gb:.2f} GB of .deb) + extract + render" if args.cold else "extract + render (cached .deb)",
        },
        "ingest": {**ingest, "clips_per_second": round(clips / ingest["seconds"], 1)},
        "clean": {**cleaned, "clips_per_second": round(clips / cleaned["seconds"], 1)},
        "ingest_plus_clean_clips_per_second": round(clips / (ingest["seconds"] + cleaned["seconds"]), 1),
        "kept_clips": metrics["kept_clips"],
        "quarantined_clips": metrics["quarantined_clips"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
