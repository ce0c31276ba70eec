"""The ``predictor`` command line (DESIGN's command-line contract).

Heavy imports (models, MLflow, the web stack) happen inside the commands
that need them, so ``predictor simulate`` and ``predictor ingest`` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

__all__ = ["app"]

app = typer.Typer(
    name="predictor",
    help="Learn from MCP tool-call telemetry and answer routing, scaling, caching and "
    "recovery questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        from predictor import __version__

        typer.echo(f"predictor {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Learn from MCP tool-call telemetry and answer routing, scaling, caching and recovery
    questions."""


@app.command()
def simulate(
    events: Annotated[
        int,
        typer.Option(
            "--events", min=1, help="Records to write (calls and health probes together)."
        ),
    ] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 0,
    out: Annotated[str, typer.Option(help="Output JSONL file, or - for stdout.")] = "-",
) -> None:
    """Write synthetic telemetry with known structure (see data.simulator)."""
    from predictor.data.simulator import write_simulation

    write_simulation(out, events, seed)
    if out != "-":
        typer.echo(f"wrote {events} records to {out}", err=True)


@app.command()
def ingest(
    logs: Annotated[
        list[str], typer.Argument(help="JSONL, CSV or Parquet files (gzip ok), or - for stdin.")
    ],
    db: Annotated[str, typer.Option(help="Event store: a SQLite file, or a postgresql:// "
                                    "URL.", envvar="PREDICTOR_DB")] = "predictor.db",
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit non-zero and store nothing if any record is rejected."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    batch: Annotated[int, typer.Option(min=1, help="Records per durable append.")] = 10_000,
) -> None:
    """Validate telemetry files and load the valid records into the event store."""
    from predictor.data.ingest import ingest_files
    from predictor.data.readers import StrictModeError

    try:
        summary = ingest_files(logs, db, strict=strict, batch=batch)
    except StrictModeError as err:
        typer.echo(f"rejected (--strict): {err}", err=True)
        if as_json:
            typer.echo(
                orjson.dumps(
                    {"read": None, "accepted": 0, "rejected": 1, "errors": [err.error.as_dict()]}
                ).decode()
            )
        raise typer.Exit(1) from None
    except OSError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(orjson.dumps(summary.as_dict()).decode())
    else:
        _print_ingest_summary(summary, db)
    if summary.accepted == 0:
        from predictor.data.schema import CALL_FIELDS, HEALTH_FIELDS

        typer.echo("error: no record accepted. Each record needs ts (RFC 3339 or epoch "
                   "seconds) and server, and a call also tool; known fields: "
                   f"{', '.join(sorted((CALL_FIELDS | HEALTH_FIELDS) - {'attrs'}))} "
                   "(others are kept in attrs)", err=True)
        raise typer.Exit(1)


def _print_ingest_summary(summary, db: Path) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    table = Table(title=f"ingest into {db}")
    for col in ("read", "accepted", "rejected"):
        table.add_column(col, justify="right")
    table.add_row(str(summary.read), str(summary.accepted), str(summary.rejected))
    console.print(table)
    for err in summary.errors[:10]:
        console.print(f"[red]{err.file}:{err.line}[/red] {err.field}: {err.reason}")
    if summary.rejected > 10:
        console.print(f"... {summary.rejected - 10} more rejected (see --json)")


@app.command()
def summary(
    db: Annotated[str, typer.Option(help="Event store: a SQLite file, or a postgresql:// "
                                    "URL.", envvar="PREDICTOR_DB")] = "predictor.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON: counts, "
                                          "span, and per server calls, failures, success "
                                          "rate and latency.")] = False,
) -> None:
    """Summarize what the event store holds, per server."""
    from predictor.data.store import open_store, store_exists
    from predictor.data.summary import summarize, summary_dict
    from predictor.serving.champions import redact

    if not store_exists(db):
        typer.echo(f"error: no event store at {db}", err=True)
        raise typer.Exit(2)
    try:
        with open_store(db) as store:
            frame = store.frame()
    except Exception as err:  # a database that refuses the connection, say
        typer.echo(f"error: {redact(db)}: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(orjson.dumps(summary_dict(frame)).decode() if as_json else summarize(frame))


@app.command()
def evaluate(
    log: Annotated[str | None, typer.Argument(help="Telemetry log (JSONL, CSV, Parquet; "
                                              "gzip ok).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write PNG plots into this folder.")] = None,
    cache_size: Annotated[int | None, typer.Option(min=1, help="Cache size in keys (default: "
                                                   "5 % of the test part's distinct keys).")
                          ] = None,
    window: Annotated[float, typer.Option(min=1, help="Scaling window in seconds.")] = 60.0,
    capacity: Annotated[float | None, typer.Option(min=0, help="Calls one replica serves per "
                                                   "window (default: training mean / 4).")
                        ] = None,
    closed_loop: Annotated[int | None, typer.Option("--closed-loop", min=100,
                                                    help="Act on the simulator for N calls "
                                                    "instead of replaying a log.")] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed for --closed-loop.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress on stderr.")] = False,
) -> None:
    """Replay a log in time order and score every model family against its baselines."""
    progress = _progress(quiet)

    if closed_loop is not None:
        from predictor.training.closed_loop import run_closed_loop

        result = run_closed_loop(closed_loop, seed=seed, progress=progress)
    else:
        if log is None:
            typer.echo("error: give a LOG to evaluate, or --closed-loop N", err=True)
            raise typer.Exit(2)
        from predictor.training.evaluate import evaluate_log

        try:
            evaluation = evaluate_log(log, cache_size=cache_size, window_s=window,
                                      capacity=capacity, progress=progress,
                                      plots=plots is not None)
        except OSError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        result = evaluation.report
        if plots is not None:
            from predictor.training.plots import write_plots

            for path in write_plots(evaluation, plots):
                progress(f"wrote {path}")
    _print_report(result)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2
                                        | orjson.OPT_SERIALIZE_NUMPY))
        progress(f"wrote {report}")


@app.command()
def train(
    logs: Annotated[list[str], typer.Argument(help="Telemetry logs to train on.")],
    family: Annotated[list[str] | None, typer.Option(help="Family to train (repeatable): "
                                                     "performance, resources, cache, load, "
                                                     "risk. Default: all.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default "
                                                     "sqlite:///mlflow.db here).")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "predictor",
    promote: Annotated[str, typer.Option(help="always | if-better | never")] = "if-better",
    online: Annotated[bool, typer.Option(help="Also learn the service's online state from "
                                         "the logs and register it as "
                                         "predictor-<family>-online.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress on stderr.")] = False,
    cluster: Annotated[str | None, typer.Option(help="Run the families' fits and evaluations "
                                                "on a cluster: local (a Dask LocalCluster), "
                                                "tcp://host:port (a Dask scheduler) or "
                                                "ray://host:port (Ray).")] = None,
    max_events: Annotated[int | None, typer.Option(
        min=1, help="Read the logs in partitions and fit and score the families on the "
        "newest N records only, so that no process holds more than those; the online "
        "state still learns every record. Default: the whole log.")] = None,
) -> None:
    """Train every family from logs, log the run to MLflow, register and promote models."""
    from rich.console import Console
    from rich.table import Table

    from predictor.training.train import outcome_rows, train_steps
    from predictor.training.train import train as run_training

    _progress(quiet)  # warnings to stderr
    try:
        with _StepBar(train_steps(family, online), quiet) as bar:
            result = run_training(logs, families=family, tracking_uri=tracking_uri,
                                  experiment=experiment, promote=promote, online=online,
                                  progress=bar, cluster=cluster, max_events=max_events)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _print_report(result.evaluation.report)
    table = Table(title=f"MLflow run {result.run_id}")
    for col in ("family", "version", "champion", "why"):
        table.add_column(col)
    for row in outcome_rows(result):
        table.add_row(*row)
    for fam, version in result.online.items():
        table.add_row(f"{fam}-online", version, "-", "online checkpoint: the state a new "
                      "service resumes from")
    Console(width=160).print(table)


class _StepBar:
    """A progress bar over a job's steps on stderr; each message is one step, and logged."""

    def __init__(self, total: int, quiet: bool) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._quiet = quiet
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=Console(stderr=True), disable=quiet, transient=True)
        self._task = self._progress.add_task("starting", total=total)

    def __enter__(self) -> _StepBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.update(self._task, completed=self._progress.tasks[0].total)
        self._progress.stop()

    def __call__(self, message: str) -> None:
        if not self._quiet:  # a timestamped line per step stays in the scrollback
            self._progress.console.log(message)
        self._progress.update(self._task, advance=1, description=message[:60])


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    """Warnings to stderr, and a timestamped progress line per step unless ``quiet``."""
    import logging

    from rich.console import Console

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    err = Console(stderr=True)

    def progress(message: str) -> None:
        if not quiet:
            err.log(message)

    return progress


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from predictor.training.evaluate import summary_rows

    table = Table(title=f"evaluation: {report.get('events')} events "
                  f"({report.get('train_events')} train, {report.get('test_events')} test, "
                  f"{report.get('rejected')} rejected)")
    table.add_column("family")
    table.add_column("metric")
    table.add_column("model and baselines")
    for row in summary_rows(report):
        table.add_row(*row)
    Console(width=160).print(table)


def main() -> None:  # pragma: no cover - console entry
    app()



@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1, or "
                                                  "PREDICTOR_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000, or PREDICTOR_PORT).")
                    ] = None,
    db: Annotated[str | None, typer.Option(help="Event store: a SQLite file (default "
                                             "predictor.db) or a postgresql:// URL.")
                  ] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow registry to load champions from (default sqlite:///mlflow.db if present)."
    )] = None,
    role: Annotated[str | None, typer.Option(
        help="all (default: ingest, learn, answer), learner (learn the shared store, "
             "publish the state; one is elected) or replica (ingest, answer from the "
             "published state). On SQLite: processes of one machine; on PostgreSQL: any.")
                  ] = None,
) -> None:
    """Serve the HTTP API and, at /mcp, the MCP server (settings: PREDICTOR_*, PREDICTOR_CONFIG)."""
    import socket

    import uvicorn
    from pydantic import ValidationError

    from predictor.serving.app import create_app
    from predictor.serving.logs import configure_logging
    from predictor.serving.settings import Settings

    overrides = {k: v for k, v in (("host", host), ("port", port), ("db", db),
                                   ("tracking_uri", tracking_uri), ("role", role))
                 if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    # Bind before anything else: a taken port fails here, before a store or a state
    # folder is created, and uvicorn serves on this very socket (no race for the port).
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as err:
        sock.close()
        typer.echo(f"error: cannot listen on {settings.host}:{settings.port}: {err.strerror}",
                   err=True)
        raise typer.Exit(2) from None
    config = uvicorn.Config(create_app(settings), log_level=settings.log_level.lower(),
                            access_log=settings.access_log, loop="uvloop", http="httptools",
                            log_config=None, timeout_graceful_shutdown=30)
    uvicorn.Server(config).run(sockets=[sock])


@app.command()
def mcp(
    db: Annotated[Path | None, typer.Option(help="SQLite event store (default predictor.db).")
                  ] = None,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow registry to load champions from (default sqlite:///mlflow.db if present)."
    )] = None,
) -> None:
    """Serve the MCP tools over stdio (logs go to stderr).

    Tools are listed at once; the state loads behind them. On stdin closing or
    SIGTERM it learns what is queued and writes a checkpoint, then exits
    (the online registry is written by ``predictor serve``, not here: a
    client kills a stdio server that takes more than a couple of seconds).
    """
    import os
    import signal
    import threading

    from predictor.serving.logs import configure_logging
    from predictor.serving.mcp_server import build_mcp_server
    from predictor.serving.service import Service
    from predictor.serving.settings import Settings

    overrides = {k: v for k, v in (("db", db), ("tracking_uri", tracking_uri)) if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    service = Service(settings)
    # Serve first, then resume state: a client lists tools while a checkpoint or the
    # registry loads (decisions answer from priors until then, and say so).
    starting = threading.Thread(target=service.start, name="predictor-start", daemon=True)
    starting.start()

    stopped = threading.Lock()

    def shut_down() -> None:
        with stopped:  # once, whichever of SIGTERM and stdin's end comes first
            if service.store is not None or starting.is_alive():
                starting.join()
                service.stop(register=False)

    def terminate(signum: int, frame: object) -> None:
        # The stdio loop waits on a blocking read of stdin that no exception
        # interrupts: checkpoint from a thread, then leave.
        def leave() -> None:
            shut_down()
            os._exit(0)

        threading.Thread(target=leave, name="predictor-sigterm").start()

    signal.signal(signal.SIGTERM, terminate)
    try:
        build_mcp_server(service).run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        shut_down()


def _gateway_setup(config: Path) -> tuple[Any, Any]:
    """The gateway config read from ``config`` (exit 2 naming what is wrong), its service
    settings, and logging configured."""
    from pydantic import ValidationError

    from predictor.serving.gateway_config import load_config
    from predictor.serving.logs import configure_logging

    try:
        gateway_config = load_config(config)
    except (OSError, ValueError, ValidationError) as err:
        typer.echo(f"error: {config}: {err}", err=True)
        raise typer.Exit(2) from None
    settings = _gateway_settings(gateway_config)
    configure_logging(settings.log_level)
    return gateway_config, settings


def _gateway_settings(config: Any) -> Any:
    """A gateway's service settings: its store, how durably it records, and its state
    beside the store (``<db>-state``).

    A gateway and a ``predictor serve`` in one folder keep separate checkpoints, since
    each one's cursor counts records of its own store. ``PREDICTOR_STATE_DIR`` overrides.
    """
    import os

    from predictor.serving.settings import Settings

    db = config.db
    store = {"db": db, "durability": config.durability,
             "fsync_interval_s": config.fsync_interval_s,
             "learn_linger_s": config.learn_linger_s}
    if "PREDICTOR_STATE_DIR" in os.environ:
        return Settings(**store)
    return Settings(**store, state_dir=db.with_name(f"{db.stem}-state"))


@app.command()
def gateway(
    config: Annotated[Path, typer.Option("--config", help="Gateway TOML: db, [[upstream]], "
                                         "[[route]] (DESIGN's execution layer).")],
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve MCP over stdio instead of "
                                        "HTTP.")] = False,
    host: Annotated[str, typer.Option(help="Address to bind (HTTP).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (HTTP); the MCP endpoint is /mcp.")] = 8100,
) -> None:
    """Serve one MCP server in front of upstream MCP servers: routes, retries, fallbacks and
    telemetry from the learned decisions."""
    import asyncio
    import socket

    from predictor.serving.gateway import Gateway, http_app, serve_stdio
    from predictor.serving.service import Service

    gateway_config, settings = _gateway_setup(config)
    core = Gateway(gateway_config, Service(settings))
    if stdio:
        asyncio.run(serve_stdio(core))
        return
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        typer.echo(f"error: cannot listen on {host}:{port}: {err.strerror}", err=True)
        raise typer.Exit(2) from None
    server_config = uvicorn.Config(http_app(core, host), log_level=settings.log_level.lower(),
                                   access_log=False, log_config=None,
                                   timeout_graceful_shutdown=10)
    uvicorn.Server(server_config).run(sockets=[sock])


@app.command()
def run(
    workflow: Annotated[Path, typer.Argument(help="Workflow YAML: phases of steps (tool, "
                                             "arguments, depends_on, context) and expectations.",
                                             exists=True, dir_okay=False)],
    config: Annotated[Path, typer.Option("--config", help="Gateway TOML whose upstreams serve "
                                         "the steps' tools.")],
    report: Annotated[Path | None, typer.Option("--report", help="Write the run's report "
                                                "(JSON) here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Run a workflow through the gateway core: allocate, plan, run, compare, re-plan, validate.

    Exits 0 when every step succeeded and the expectations were met, 1 when a step failed,
    2 on a bad workflow or config, 3 when the steps succeeded but an expectation was missed."""
    import asyncio

    from pydantic import ValidationError
    from rich.console import Console

    from predictor.serving.gateway import Gateway
    from predictor.serving.run_report import ProgressLine, render
    from predictor.serving.runner import WorkflowRunner
    from predictor.serving.service import Service
    from predictor.serving.workflow import load_workflow

    gateway_config, settings = _gateway_setup(config)
    try:
        spec = load_workflow(workflow)
    except (OSError, ValueError, ValidationError) as err:
        typer.echo(f"error: {workflow}: {err}", err=True)
        raise typer.Exit(2) from None
    # The upstreams' own chatter goes to a file beside the store, not between the progress lines.
    errlog_path = gateway_config.db.with_name(gateway_config.db.name + ".upstreams.log")
    errlog_path.parent.mkdir(parents=True, exist_ok=True)
    errlog = errlog_path.open("a")
    core = Gateway(gateway_config, Service(settings), errlog)
    progress = None if quiet else ProgressLine(Console(stderr=True))

    async def go() -> dict:
        await asyncio.to_thread(core.service.start)
        try:
            await core.start()
            try:
                return await WorkflowRunner(core, spec, progress).run()
            finally:
                await core.stop()
        finally:
            await asyncio.to_thread(core.service.stop, False)

    try:
        outcome = asyncio.run(go())
    except ValueError as err:  # a step names a tool no upstream lists
        typer.echo(f"error: {err} (upstreams' stderr: {errlog_path})", err=True)
        raise typer.Exit(2) from None
    finally:
        errlog.close()
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(orjson.dumps(outcome, option=orjson.OPT_INDENT_2) + b"\n")
    render(outcome, Console(width=None if sys.stdout.isatty() else 120))
    if outcome["steps_succeeded"] < outcome["steps_total"]:
        raise typer.Exit(1)
    if not outcome["success"]:
        raise typer.Exit(3)


if __name__ == "__main__":  # pragma: no cover - python -m predictor.serving.cli
    sys.exit(app())
