#!/usr/bin/env python3
"""Draws the latency distribution (CDF) of each small-request scenario of a floe-bench report.

    plot_cdf.py bench/results/<timestamp>.json

Writes one PNG per scenario beside the report, `<timestamp>-small-acks<1|all>-p<N>.png`, with
one curve per broker and backend (Floe on io_uring through `auto`, Floe on std, the peer).
The x axis is logarithmic (ack latency in ms) so the tail is visible; the y axis is the
fraction of requests acknowledged within that time. Needs matplotlib (scripts/bench.sh
installs it into its own virtualenv).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curves(report):
    """(acks, partitions) -> list of (label, [(quantile, us)])."""
    out = {}
    for name in ("floe", "tansu"):
        broker = report.get(name)
        if not broker:
            continue
        for run in broker.get("latency", []):
            key = (run["acks"], run["partitions"])
            label = name if not run.get("backend") else f"{name} ({run['backend']})"
            out.setdefault(key, []).append((label, run["result"]))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = Path(sys.argv[1])
    report = json.loads(path.read_text())
    rate = report["config"]["latency_rate"]
    written = []
    for (acks, partitions), runs in sorted(curves(report).items()):
        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        for label, result in runs:
            points = [(us / 1e3, q) for q, us in result["cdf"] if us > 0]
            if not points:
                continue
            xs, ys = zip(*points)
            ax.step(
                xs,
                ys,
                where="post",
                label=f"{label}: p50 {result['p50_us'] / 1e3:.2f} ms, "
                f"p99 {result['p99_us'] / 1e3:.2f} ms, "
                f"{result['sustained_per_sec']:.0f}/s acked",
            )
        ax.set_xscale("log")
        ax.set_xlabel("send-to-ack latency (ms, log scale)")
        ax.set_ylabel("fraction of records acknowledged")
        ax.set_ylim(0, 1.001)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(
            f"single-record produce, acks={acks}, {partitions} partition"
            f"{'' if partitions == 1 else 's'}, {rate}/s offered "
            f"({report['timestamp']})"
        )
        ax.legend(loc="lower right", fontsize=8)
        out = path.with_name(f"{path.stem}-small-acks{acks}-p{partitions}.png")
        fig.tight_layout()
        fig.savefig(out)
        plt.close(fig)
        written.append(out)
    for out in written:
        print(f"cdf: {out}")


if __name__ == "__main__":
    main()
