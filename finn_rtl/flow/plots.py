"""Charts for reports and the explorer: matplotlib (Agg, no display) rendered to SVG text, which
an HTML report embeds as it is (no network access, no image files beside it)."""
from __future__ import annotations

import io


def _figure(width=7.0, height=3.6, **subplots):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt.subplots(figsize=(width, height), layout="constrained", **subplots)


def _svg(fig) -> str:
    from matplotlib import pyplot as plt

    buffer = io.StringIO()
    # No metadata: no date (the same build renders the same page), no RDF block.
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # without the XML prolog and doctype, to embed in HTML


def frontier_plot(frontier, clock_mhz: float, budget=None) -> str:
    """FPS against LUTs of the Pareto-optimal foldings; the budget's LUT limit as a line."""
    fig, ax = _figure()
    luts = [c.luts for c in frontier]
    fps = [c.fps(clock_mhz) for c in frontier]
    fits = [not (budget and budget.exceeded(c.total)) for c in frontier]
    ax.plot(luts, fps, color="0.6", zorder=1)
    ax.scatter([x for x, f in zip(luts, fits) if f], [y for y, f in zip(fps, fits) if f], color="tab:blue",
               label="fits", zorder=2)
    ax.scatter([x for x, f in zip(luts, fits) if not f], [y for y, f in zip(fps, fits) if not f],
               color="tab:red", marker="x", label="over budget", zorder=2)
    if budget is not None and budget.lut is not None:
        ax.axvline(budget.lut, color="tab:red", linestyle="--", linewidth=1, label="LUT budget")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("LUTs (estimate)")
    ax.set_ylabel(f"frames per second at {clock_mhz:g} MHz")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend()
    return _svg(fig)
