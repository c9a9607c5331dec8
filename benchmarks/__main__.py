"""`python -m benchmarks [--quick] [--only NAME ...] [--out FILE]`

Prints a table per benchmark and writes everything, with the machine, to JSON.
Times are medians of interleaved repetitions after warm-up, and only their ratios
within this one run are meaningful; absolute times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

from benchmarks import attention, common, files, memory, presets, startup

BENCHMARKS = ("attention", "presets", "startup", "files", "memory")


def targets(report: dict) -> list[str]:
    """Which of the targets (benchmarks/README.md) this run meets."""
    lines = []
    if "attention" in report:
        for r in report["attention"]:
            vs_doc = r["vs_documents"]["median"]
            lines.append(f"attention {r['shape']} {'XLA' if r['xla'] else 'no XLA'} {r['phase']}: "
                         f"ours/documents {vs_doc:.3f} (target <= 1.0): {'met' if vs_doc <= 1.0 else 'MISSED'}")
            if r["shape"] == "large":
                vs_proj = r["vs_projection"]["median"]
                lines.append(f"   ours/projection {vs_proj:.3f} (target <= 1.3): "
                             f"{'met' if vs_proj <= 1.3 else 'MISSED'}")
    if "presets" in report:
        for r in report["presets"]:
            m, q1, q3 = (r["zoo_vs_plain"][k] for k in ("median", "q1", "q3"))
            verdict = "met" if abs(m - 1) <= 0.02 else "MISSED"
            ops = r["forward_graph_ops"]
            if (verdict == "MISSED" and q1 <= 1.0 <= q3 and ops["zoo"] is not None
                    and ops["zoo"] <= ops["plain"]):
                verdict = (f"not resolved: 1.0 lies within the quartiles [{q1:.2f}-{q3:.2f}] and "
                           f"the zoo's forward graph has no more ops ({ops['zoo']} vs {ops['plain']})")
            lines.append(f"preset {r['preset']}: zoo/plain {m:.3f} (target within 2%): {verdict}")
    if "startup" in report:
        d = report["startup"]["difference_seconds"]
        lines.append(f"import keras_bigmodel - import keras: {d:+.3f} s (target < 0.3 s): "
                     f"{'met' if d < 0.3 else 'MISSED'}")
    if "files" in report:
        for r in report["files"]:
            lines.append(f"file {r['preset']}: {r['file_vs_raw']:.3f}x raw (target <= 1.02x + 64 KiB): "
                         f"{'met' if r['within_target'] else 'MISSED'}")
    if "memory" in report and "error" not in report["memory"]:
        m = report["memory"]
        ratio = m["ours_forward_temp_bytes"] / m["input_bytes"]
        lines.append(f"attention forward temporaries (XLA) {ratio:.2f}x its input; a time x time "
                     f"matrix would be {m['time_by_time_matrix_bytes'] / m['input_bytes']:.2f}x")
        growth = {k: m.get(f"{k}_tf_graph_train_peak_rss_growth_bytes") for k in
                  ("ours", "documents", "projection")}
        if all(v is not None for v in growth.values()):
            lines.append("TF graph-mode train step peak RSS growth vs input: " + ", ".join(
                f"{k} {v / m['input_bytes']:.2f}x" for k, v in growth.items()))
    return lines


def retarget(path: str) -> None:
    """Recomputes the target verdicts of a saved run (after a change to `targets`)."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    report["targets"] = targets(report)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print("\n".join(report["targets"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="small shapes, few repetitions (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--out", help="JSON output (default: benchmarks/results/<time>.json)")
    args = parser.parse_args(argv)
    chosen = args.only or BENCHMARKS
    report = {"machine": common.machine(), "quick": args.quick,
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print("machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()), flush=True)
    started = time.perf_counter()
    for name in chosen:
        print(f"\n== {name}", flush=True)
        module = {"attention": attention, "presets": presets, "startup": startup, "files": files,
                  "memory": memory}[name]
        result = module.run(quick=args.quick)
        report[name] = result
        if hasattr(module, "rows"):
            print(common.table(module.HEADERS, module.rows(result)), flush=True)
        else:
            print(json.dumps(result, indent=2), flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["targets"] = targets(report)
    print("\n== targets")
    print("\n".join(report["targets"]))
    out = args.out or os.path.join(os.path.dirname(__file__), "results",
                                   time.strftime("%Y%m%d-%H%M%S") + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
