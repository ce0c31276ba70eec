"""How ``predictor run`` shows a run: a progress display while it runs, tables at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["ProgressLine", "render"]


class ProgressLine:
    """Prints one line per phase, step and re-plan as the run goes (to stderr)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: str, details: dict[str, Any]) -> None:
        if event == "phase":
            self.console.print(f"[bold]phase {details['index'] + 1} {details['phase']}[/]: "
                               f"{details['steps']} step(s) in {details['batches']} batch(es)")
        elif event == "step":
            status = details["status"]
            colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[status]
            where = details.get("server") or "-"
            if details.get("served_from") == "cache":
                where = "cache"
            latency = details.get("latency_ms")
            self.console.print(f"  [{colour}]{status:7}[/] {details['id']:24} {where:16} "
                               + (f"{latency:9.1f} ms" if latency is not None else "")
                               + (f"  recovered: {', '.join(details['recoveries'])}"
                                  if details.get("recoveries") else ""))
        elif event == "replan":
            self.console.print(f"  [magenta]re-plan[/] after {details['after_phase']}: "
                               f"{details['reason']} (parallelism "
                               f"{details['parallelism'][0]} -> {details['parallelism'][1]})")


def _interval(estimate: dict[str, float]) -> str:
    return f"{estimate['expected']:.0f} [{estimate['low']:.0f}, {estimate['high']:.0f}]"


def render(report: dict[str, Any], console: Console) -> None:
    """The run's report as terminal tables: phases, decisions by source, validation."""
    phases = Table(title=f"{report['workflow']} ({report['workflow_id']})")
    for column in ("phase", "predicted ms", "actual ms", "wall ms", "predicted tokens",
                   "actual tokens", "source", "within", "steps"):
        phases.add_column(column, justify="left" if column == "phase" else "right")
    for phase in report["phases"]:
        actual = phase["actual"]
        phases.add_row(
            phase["phase"], _interval(phase["predicted"]["duration_ms"]),
            f"{actual['duration_ms']:.0f}", f"{actual['wall_ms']:.0f}",
            _interval(phase["predicted"]["tokens"]), f"{actual['tokens']:.0f}",
            phase["predicted"]["source"], "yes" if phase["within"] else "[red]no[/]",
            f"{actual['steps'] - actual['failed']}/{actual['steps']}")
    console.print(phases)
    decisions = Table(title="decisions taken")
    for column in ("decision", "source", "count", "example"):
        decisions.add_column(column)
    counted = Counter((d["decision"], d["source"]) for d in report["decisions"])
    for (name, source), count in sorted(counted.items()):
        example = next(d["detail"] for d in report["decisions"]
                       if d["decision"] == name and d["source"] == source)
        decisions.add_row(name, source, str(count), example[:70])
    console.print(decisions)
    attempts = sum(len(step.get("attempts", [])) for step in report["steps"])
    recovered = [step for step in report["steps"] if step.get("recoveries")]
    cache = report["cache"]
    console.print(f"steps {report['steps_succeeded']}/{report['steps_total']} ok, "
                  f"{attempts} attempt(s), {len(recovered)} step(s) with recoveries, "
                  f"{len(report['replans'])} re-plan(s), cache hit ratio "
                  f"{cache['hit_ratio']:.2f}, wall {report['wall_ms']:.0f} ms")
    for check in report["validation"]["checks"]:
        verdict = "unknown" if check["met"] is None else "met" if check["met"] else "NOT met"
        actual = "-" if check["actual"] is None else f"{check['actual']:g}"
        console.print(f"  {check['name']}: {actual} (expected {check['expected']:g}) {verdict}")
    console.print("[bold green]run succeeded[/]" if report["success"]
                  else "[bold red]run did not meet its expectations[/]")
