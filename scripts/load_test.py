"""Load test of a running dashboard: ``python scripts/load_test.py --url http://host:8501``.

Drives N simultaneous Streamlit sessions over Streamlit's own websocket protocol
(``/_stcore/stream``, protobuf ``BackMsg``/``ForwardMsg`` from ``streamlit.proto``), no browser.
Each session behaves like a student in a class:

1. fetches the page (as a browser does; behind the proxy this sets the sticky-session cookie),
   opens the websocket and asks for the first run of the shared link; all sessions start within
   ``--ramp`` seconds (default 10);
2. then, every 3–10 s (uniform think time, seeded), either moves to another page (Overview,
   Forest plot, Moderators & PTR, Sensitivity, Simulator), changes the estimator and/or the
   moderators in the sidebar, or (on the Sensitivity page, whose tabs run only when opened)
   opens another tab. A change is a rerun request carrying the new widget states, the way the
   browser sends it: widget ids and options are read from the deltas the server sent.

Measured: first load (page request until the first run's "script finished" message),
interaction latency (rerun request until "script finished"), median, p95 and max, overall and
per page; errors (exception elements, the dashboard's "Something went wrong" notice, a
compile error, a disconnect, a timeout); cross-session leaks; the server's resident memory
(sum over its processes, read from /proc every second).

Leak check: every session starts from a choice of estimator and moderators no other session
starts from, and after every run compares the view the server reports back (the query string
the dashboard writes after each run: estimator, moderators, page) with what it asked for. A
different view means the session was shown state it did not set: a leak between sessions.

``--stress`` drops the think time: N sessions open at once and each sends ``--stress-reruns``
interactions back to back; N grows until the interaction p95 exceeds ``--target`` (2 s); the
largest N within the target is reported.

The script prints figures and exits 1 on any error or leak (so CI can run it); it asserts no
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the dashboard's chart component name

from pages._ui.chart import CHART_COMPONENT  # noqa: E402

# url path -> page title, the pages a class moves between
PAGES = {
    "overview": "Overview",
    "forest": "Forest plot",
    "moderators": "Moderators & PTR",
    "sensitivity": "Sensitivity",
    "simulator": "Simulator",
}
ESTIMATOR_LABEL = "Estimator"
MODERATORS_LABEL = "Moderators"
TABS_LABEL = "(tabs)"  # the tabs of a page whose tabs run only when open (Sensitivity)
UNEXPECTED_TEXT = "Something went wrong"
RUN_TIMEOUT = 180.0  # seconds a single run may take before it counts as an error
STRESS_MIN_SAMPLES = 40
STRESS_SIZES = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96)


# -- one session -------------------------------------------------------------------------------
@dataclass
class Widget:
    id: str
    kind: str  # "selectbox", "multiselect", ...
    options: list[str]


@dataclass
class SessionLog:
    index: int
    first_load: float | None = None
    first_page: str = ""
    interactions: list[tuple[str, float]] = field(default_factory=list)  # (page, seconds)
    errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)


class Session:
    """One browser tab's conversation with the server, reduced to what the test needs."""

    def __init__(self, base_url: str, log: SessionLog):
        self.base_url = base_url.rstrip("/")
        self.log = log
        self.ws = None
        self.widgets: dict[str, Widget] = {}  # by label
        self.tabs: Widget | None = None  # the page's tabs that run only when open (Sensitivity)
        self.charts = 0  # Plotly charts the last run sent
        self.states: dict[str, tuple[str, object]] = {}  # label -> (kind, value) we sent
        self.page = "overview"
        self.query = ""

    async def open(self, link_query: str, page: str) -> None:
        start = time.perf_counter()
        cookie = await asyncio.to_thread(self._fetch_index)
        parts = urllib.parse.urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = f"{scheme}://{parts.netloc}{parts.path}/_stcore/stream"
        headers = {"Cookie": cookie} if cookie else {}
        self.ws = await websockets.connect(
            ws_url,
            subprotocols=["streamlit"],
            additional_headers=headers,
            max_size=None,
            open_timeout=60,
            ping_interval=None,  # Streamlit's server pings; answering is automatic
        )
        self.page = page
        await self._run(query=link_query, page=page)
        self.log.first_load = time.perf_counter() - start
        self.log.first_page = page

    def _fetch_index(self) -> str:
        """GET the app's page as a browser does; return the cookies it set (sticky session)."""
        with urllib.request.urlopen(f"{self.base_url}/", timeout=60) as response:
            response.read()
            cookies = response.headers.get_all("Set-Cookie") or []
        return "; ".join(c.split(";", 1)[0] for c in cookies)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def interact(self, page: str, estimator: str | None, moderators: list[str] | None):
        if estimator is not None:
            self.states[ESTIMATOR_LABEL] = ("string_value", estimator)
        if moderators is not None:
            self.states[MODERATORS_LABEL] = ("string_array_value", list(moderators))
        if page != self.page:
            # Tabs belong to their page: read them again from the new one (a page left and
            # opened again starts on its first tab, as in the browser).
            self.tabs = None
            self.states.pop(TABS_LABEL, None)
            self.widgets.pop(TABS_LABEL, None)
        self.page = page
        start = time.perf_counter()
        await self._run(query=self.query, page=page)
        self.log.interactions.append((page, time.perf_counter() - start))

    async def _run(self, *, query: str, page: str) -> None:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = "" if page == "overview" else page
        for label, (value_type, value) in self.states.items():
            widget = self.widgets.get(label)
            if widget is None:
                continue
            state = msg.rerun_script.widget_states.widgets.add()
            state.id = widget.id
            if value_type == "string_array_value":
                state.string_array_value.data.extend(value)
            else:
                setattr(state, value_type, value)
        await self.ws.send(msg.SerializeToString())
        self.charts = 0
        await asyncio.wait_for(self._read_until_finished(), RUN_TIMEOUT)
        self._check_view()

    async def _read_until_finished(self) -> None:
        while True:
            raw = await self.ws.recv()
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                self._read_delta(fwd.delta)
            elif kind == "page_info_changed":
                self.query = fwd.page_info_changed.query_string
            elif kind == "script_finished":
                status = fwd.script_finished
                if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    self.log.errors.append(f"{self.page}: compile error")
                    return
                if status == ForwardMsg.FINISHED_SUCCESSFULLY:
                    return
                # FINISHED_EARLY_FOR_RERUN: a page switch or a newer request; keep reading

    def open_tab(self, label: str) -> None:
        """Choose a tab of the current page for the next run (a click on it)."""
        self.states[TABS_LABEL] = ("string_value", label)
        self.widgets[TABS_LABEL] = self.tabs

    async def switch_tab(self, label: str) -> None:
        self.open_tab(label)
        start = time.perf_counter()
        await self._run(query=self.query, page=self.page)
        self.log.interactions.append((self.page, time.perf_counter() - start))

    def _read_delta(self, delta) -> None:
        if delta.WhichOneof("type") == "add_block":
            self._read_block(delta.add_block)
            return
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "plotly_chart" or (
            kind == "bidi_component" and element.bidi_component.component_name == CHART_COMPONENT
        ):
            self.charts += 1
        elif kind == "exception":
            self.log.errors.append(f"{self.page}: exception {element.exception.message[:200]}")
        elif kind in ("markdown", "alert"):
            body = getattr(element, kind).body
            if UNEXPECTED_TEXT in body:
                self.log.errors.append(f"{self.page}: {body[:200]}")
        elif kind in ("selectbox", "multiselect", "radio"):
            proto = getattr(element, kind)
            self.widgets[proto.label] = Widget(proto.id, kind, list(proto.options))

    def _read_block(self, block) -> None:
        kind = block.WhichOneof("type")
        if kind == "tab_container" and block.tab_container.id:
            self.tabs = Widget(block.tab_container.id, "tabs", [])
        elif kind == "tab" and self.tabs is not None and block.tab.label not in self.tabs.options:
            self.tabs.options.append(block.tab.label)

    def _check_view(self) -> None:
        """The server's report of this session's view must be the view this session asked for."""
        seen = urllib.parse.parse_qs(self.query)
        wanted = {"page": [self.page]}
        if ESTIMATOR_LABEL in self.states:
            wanted["est"] = [self.states[ESTIMATOR_LABEL][1].split(" ", 1)[0]]
        if MODERATORS_LABEL in self.states:
            # the link writes "no moderators" as mod=none
            wanted["mod"] = sorted(map(option_value, self.states[MODERATORS_LABEL][1])) or ["none"]
        for key, value in wanted.items():
            got = sorted(seen.get(key, [])) if key == "mod" else seen.get(key, [])
            if got != value:
                self.log.leaks.append(
                    f"session {self.log.index} on {self.page}: asked {key}={value}, shown {got}"
                )


def option_value(label: str) -> str:
    """The value behind a moderator option: the sidebar shows a column with a display name as
    "Display name (code)" (e.g. "Research design (design)") and any other by its code; the link
    holds the code."""
    if label.endswith(")") and " (" in label:
        return label.rsplit(" (", 1)[1][:-1]
    return label


# -- choices ---------------------------------------------------------------------------------
def distinct_choices(estimators: list[str], moderators: list[str]) -> list[tuple[str, tuple]]:
    """Every (estimator, up to two moderators) pair: enough distinct starts for a class."""
    subsets = [()] + [(m,) for m in moderators] + list(itertools.combinations(moderators, 2))
    return [(e, s) for s in subsets for e in estimators]


def random_choice(rng: random.Random, widgets: dict[str, Widget]) -> tuple[str, list[str]]:
    estimators = widgets[ESTIMATOR_LABEL].options
    moderators = widgets[MODERATORS_LABEL].options
    return rng.choice(estimators), sorted(rng.sample(moderators, rng.randint(0, 2)))


# -- server memory ---------------------------------------------------------------------------
def server_pids() -> list[int]:
    """Streamlit and nginx processes started from this checkout (their working directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "streamlit" in cmdline and " run " in cmdline and Path(cwd) == REPO_ROOT:
            pids.append(int(entry.name))
    return sorted(pids)


def pids_of_ports(ports: list[int]) -> list[int]:
    """Streamlit processes started with ``--server.port`` one of ``ports`` (deploy/serve.sh)."""
    wanted = {f"--server.port {port} " for port in ports}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "streamlit" in cmdline and any(w in cmdline for w in wanted):
            pids.append(int(entry.name))
    return sorted(pids)


def rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kib / 1024


class MemorySampler:
    def __init__(self, pids: list[int], every: float = 1.0):
        self.pids = pids
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self.t0 = time.monotonic()
        self.task = None

    def sample(self) -> float:
        value = rss_mib(self.pids)
        self.samples.append((round(time.monotonic() - self.t0, 1), round(value, 1)))
        return value

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# -- a class ---------------------------------------------------------------------------------
async def student(
    index: int,
    args,
    start_delay: float,
    first: tuple[str, tuple] | None,
    deadline_or_count: tuple[float | None, int | None],
    think: tuple[float, float] | None,
) -> SessionLog:
    log = SessionLog(index)
    rng = random.Random(args.seed * 100_003 + index)
    session = Session(args.url, log)
    await asyncio.sleep(start_delay)
    try:
        await session.open(args.link, args.first_page)
        deadline, count = deadline_or_count
        done = 0
        choice = first
        while True:
            if think:
                await asyncio.sleep(rng.uniform(*think))
            if deadline is not None and time.monotonic() >= deadline:
                break
            if count is not None and done >= count:
                break
            if (
                choice is None
                and session.tabs
                and len(session.tabs.options) > 1
                and (rng.random() < 0.3)
            ):
                # On a page with tabs (Sensitivity), a student also clicks through them.
                current = session.states.get(TABS_LABEL, ("", session.tabs.options[0]))[1]
                others = [t for t in session.tabs.options if t != current]
                await session.switch_tab(rng.choice(others))
            elif choice is None and rng.random() < 0.4:
                page = rng.choice([p for p in args.pages if p != session.page] or args.pages)
                await session.interact(page, None, None)
            else:
                estimator, moderators = choice or random_choice(rng, session.widgets)
                choice = None
                await session.interact(session.page, estimator, list(moderators))
            done += 1
    except TimeoutError:
        log.errors.append(f"session {index} on {session.page}: no answer within {RUN_TIMEOUT} s")
    except websockets.ConnectionClosed as error:
        log.errors.append(f"session {index} on {session.page}: disconnected ({error})")
    except (OSError, KeyError) as error:
        log.errors.append(f"session {index} on {session.page}: {type(error).__name__}: {error}")
    finally:
        await session.close()
    return log


async def discover_choices(args) -> list[tuple[str, tuple]]:
    """Open one session to read the estimator and moderator options the sidebar offers."""
    log = SessionLog(-1)
    session = Session(args.url, log)
    try:
        await session.open(args.link, args.first_page)
    finally:
        await session.close()
    if log.errors:
        raise SystemExit(f"the first session failed: {log.errors}")
    return distinct_choices(
        session.widgets[ESTIMATOR_LABEL].options, session.widgets[MODERATORS_LABEL].options
    )


async def run_class(args, n: int, *, duration, reruns, think, ramp) -> list[SessionLog]:
    choices = await discover_choices(args) if args.distinct else []
    rng = random.Random(args.seed)
    rng.shuffle(choices)
    t_end = time.monotonic() + ramp + duration if duration is not None else None
    tasks = [
        student(
            i,
            args,
            rng.uniform(0, ramp),
            choices[i % len(choices)] if choices else None,
            (t_end, reruns),
            think,
        )
        for i in range(n)
    ]
    return await asyncio.gather(*tasks)


# -- figures ---------------------------------------------------------------------------------
def stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def summarise(logs: list[SessionLog]) -> dict:
    interactions = [s for log in logs for _, s in log.interactions]
    by_page = {
        page: stats([s for log in logs for p, s in log.interactions if p == page]) for page in PAGES
    }
    return {
        "sessions": len(logs),
        "first_load": stats([log.first_load for log in logs if log.first_load is not None]),
        "interaction": stats(interactions),
        "interaction_by_page": by_page,
        "errors": [e for log in logs for e in log.errors],
        "leaks": [leak for log in logs for leak in log.leaks],
    }


def fmt(s: dict) -> str:
    if not s["n"]:
        return "n = 0"
    return f"median {s['median']:.2f} s, p95 {s['p95']:.2f} s, max {s['max']:.2f} s (n = {s['n']})"


def print_summary(summary: dict, memory: dict | None) -> None:
    print(f"sessions: {summary['sessions']}")
    print(f"first load:  {fmt(summary['first_load'])}")
    print(f"interaction: {fmt(summary['interaction'])}")
    for page, s in summary["interaction_by_page"].items():
        print(f"  {PAGES[page]:<17} {fmt(s)}")
    print(f"errors: {len(summary['errors'])}")
    for error in summary["errors"][:20]:
        print(f"  {error}")
    print(f"leaks: {len(summary['leaks'])}")
    for leak in summary["leaks"][:20]:
        print(f"  {leak}")
    if memory:
        print(
            f"server RSS ({memory['processes']} processes): idle {memory['idle_mib']:.0f} MiB, "
            f"peak {memory['peak_mib']:.0f} MiB, at close {memory['at_close_mib']:.0f} MiB"
            + (
                f", {memory['linger_s']:.0f} s after close {memory['after_linger_mib']:.0f} MiB"
                if memory.get("after_linger_mib") is not None
                else ""
            )
        )


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


# -- entry points ------------------------------------------------------------------------------
async def class_mode(args) -> dict:
    if args.pids:
        pids = [int(p) for p in args.pids.split(",")]
    elif args.worker_ports:
        pids = pids_of_ports([int(p) for p in args.worker_ports.split(",")])
    else:
        pids = server_pids()
    sampler = MemorySampler(pids)
    idle = sampler.sample()
    sampler.start()
    logs = await run_class(
        args,
        args.sessions,
        duration=args.duration,
        reruns=None,
        think=(args.think_min, args.think_max),
        ramp=args.ramp,
    )
    at_close = sampler.sample()
    after = None
    if args.linger:
        await asyncio.sleep(args.linger)
        after = sampler.sample()
    await sampler.stop()
    memory = {
        "processes": len(pids),
        "idle_mib": idle,
        "peak_mib": max(v for _, v in sampler.samples),
        "at_close_mib": at_close,
        "linger_s": args.linger,
        "after_linger_mib": after,
        "samples": sampler.samples,
    }
    summary = summarise(logs)
    print(f"machine: {machine()}")
    print_summary(summary, memory)
    return {"mode": "class", "machine": machine(), **summary, "memory": memory}


async def stress_mode(args) -> dict:
    steps = []
    best = 0
    for n in STRESS_SIZES:
        if n > args.max_sessions:
            break
        # at least STRESS_MIN_SAMPLES interactions per step, so that its p95 means something
        reruns = max(args.stress_reruns, -(-STRESS_MIN_SAMPLES // n))
        logs = await run_class(args, n, duration=None, reruns=reruns, think=None, ramp=0.0)
        summary = summarise(logs)
        p95 = summary["interaction"]["p95"]
        ok = p95 is not None and p95 <= args.target and not summary["errors"]
        print(
            f"N = {n:3d}: interaction {fmt(summary['interaction'])}; first load "
            f"{fmt(summary['first_load'])}; errors {len(summary['errors'])}, "
            f"leaks {len(summary['leaks'])}",
            flush=True,
        )
        steps.append({"sessions": n, **{k: summary[k] for k in ("interaction", "first_load")}})
        steps[-1].update(errors=len(summary["errors"]), leaks=len(summary["leaks"]))
        if not ok:
            break
        best = n
    print(f"machine: {machine()}")
    print(f"stress: largest N with interaction p95 <= {args.target:.1f} s: {best}")
    return {"mode": "stress", "machine": machine(), "max_sessions_within": best, "steps": steps}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501", help="the app's base URL")
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of interaction")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ramp", type=float, default=10.0, help="sessions open within (s)")
    parser.add_argument("--think-min", type=float, default=3.0)
    parser.add_argument("--think-max", type=float, default=10.0)
    parser.add_argument("--link", default="", help="query string of the shared link")
    parser.add_argument("--first-page", default="overview", choices=list(PAGES))
    parser.add_argument(
        "--pages",
        default=",".join(PAGES),
        type=lambda text: text.split(","),
        help="pages the sessions move between (comma separated url paths)",
    )
    parser.add_argument("--linger", type=float, default=0.0, help="sample RSS this long after")
    parser.add_argument("--pids", default="", help="server pids, comma separated")
    parser.add_argument(
        "--worker-ports",
        default="",
        help="find the server processes by their --server.port (default: every streamlit "
        "process started from this checkout)",
    )
    parser.add_argument("--no-distinct", dest="distinct", action="store_false")
    parser.add_argument("--stress", action="store_true", help="no think time, growing N")
    parser.add_argument("--stress-reruns", type=int, default=6)
    parser.add_argument("--max-sessions", type=int, default=96)
    parser.add_argument("--target", type=float, default=2.0, help="stress p95 target (s)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    unknown = set(args.pages) - set(PAGES)
    if unknown:
        raise SystemExit(f"unknown pages {sorted(unknown)}; choose from {list(PAGES)}")
    result = asyncio.run(stress_mode(args) if args.stress else class_mode(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=asdict))
    if args.stress:
        return 0
    return 1 if result["errors"] or result["leaks"] else 0


if __name__ == "__main__":
    sys.exit(main())
