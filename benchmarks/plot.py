#!/usr/bin/env python3
"""Plot bench_c / bench_py JSON: datagrams/s and MB/s against payload size.

    plot.py OUTPUT.png RESULT.json [RESULT.json ...]
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(argv: List[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, paths = argv[1], argv[2:]
    fig, (ax_d, ax_m) = plt.subplots(1, 2, figsize=(13, 5.5))
    styles = ["-", "--", ":", "-."]
    markers = "osD^v<>pP*Xh"
    colors = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    n = 0  # series so far: each gets its own colour and marker
    for k, path in enumerate(paths):
        with open(path, encoding="utf-8") as f:
            doc: Dict[str, Any] = json.load(f)
        series: Dict[str, List[Tuple[int, float, float]]] = {}
        for r in doc["results"]:
            series.setdefault(r["variant"], []).append(
                (max(r["size"], 1), r["dgrams_per_s"], r["mb_per_s"]))
        for name, pts in sorted(series.items()):
            pts.sort()
            label = f"{doc['benchmark']}: {name}"
            xs = [p[0] for p in pts]
            style = {"linestyle": styles[k % len(styles)], "marker": markers[n % len(markers)],
                     "color": colors[n % len(colors)], "label": label, "markersize": 4}
            n += 1
            ax_d.plot(xs, [p[1] for p in pts], **style)
            ax_m.plot(xs, [p[2] for p in pts], **style)
        transport = doc.get("transport", "?")
    for ax, what in ((ax_d, "datagrams/s"), (ax_m, "MB/s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("payload size (bytes; 0 plotted at 1)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_m.set_yscale("log")
    ax_d.set_title(f"datagrams/s (send + receive, one thread; {transport})")
    ax_m.set_title("MB/s")
    ax_m.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
