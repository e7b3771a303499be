"""Our workflows as GitHub Actions runs them, for tests: expressions evaluated the way GitHub
evaluates them (the subset our files use), and concurrency groups applied by GitHub's rules.

Concurrency (docs.github.com, "Control the concurrency of workflows and jobs"): a group holds at
most one running and one pending run or job; a newly queued one waits while another of its group
is in progress, and *cancels any pending one* of the group, taking its place;
`cancel-in-progress: true` also cancels the running one. Groups are compared without case. A
reusable workflow called with `uses:` evaluates its expressions with the caller's `github`
context (`github.workflow` is the caller's name); a called workflow whose group is held by its
own caller is cancelled as a deadlock.

The release lock (deploy/release-lock.sh, a Kubernetes Lease, not a GitHub feature) is modelled
too: a job whose steps take it waits, in arrival order, while another job holds it ("locked"),
and runs its `DURATIONS` once it has it; GitHub's groups know nothing of it.

The simulation is discrete: events arrive at given times, every job takes the time `DURATIONS`
gives, jobs of a run follow `needs` in order, and each step of the world is resolved in order of
arrival (GitHub does not promise an order for arrivals within seconds of each other; tests space
their events apart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DURATIONS = {
    "test": 20,
    "image-tests": 15,
    "speed": 15,
    "release": 10,
    "image": 5,
    "stage": 2,
    "decide": 2,
    "deploy": 10,
    "withdraw": 2,
    "drift": 2,
    "rollback": 3,
}
# What a finished job reports to `needs`: drift found, and the staged release to be promoted.
OUTPUTS = {"drift": {"drifted": "true"}, "decide": {"decision": "promote"}}


# --- expressions ---------------------------------------------------------------------------
TOKEN = re.compile(
    r"\s*(?:(\d+(?:\.\d+)?)|'((?:[^']|'')*)'|(&&|\|\||==|!=|[()!,])|([A-Za-z_][\w.-]*))"
)


def _tokens(text: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot read expression at {text[position:]!r}")
        number, string, operator, name = match.groups()
        if number is not None:
            found.append(("value", float(number)))
        elif string is not None:
            found.append(("value", string.replace("''", "'")))
        elif operator is not None:
            found.append(("op", operator))
        else:
            found.append(("name", name))
        position = match.end()
    return found


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, 0.0, "")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()  # GitHub compares strings without case
    return bool(a == b)


class _Parser:
    """or := and ('||' and)* ; and := cmp ('&&' cmp)* ; cmp := unary (('=='|'!=') unary)? ;
    unary := '!' unary | atom ; atom := value | name | name '(' args ')' | '(' or ')'."""

    def __init__(self, text: str, context: dict[str, Any]) -> None:
        self.tokens, self.at, self.context = _tokens(text), 0, context

    def parse(self) -> Any:
        value = self._or()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at]}")
        return value

    def _peek(self, op: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at] == ("op", op)

    def _or(self) -> Any:
        value = self._and()
        while self._peek("||"):
            self.at += 1
            right = self._and()
            value = value if _truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek("&&"):
            self.at += 1
            right = self._compare()
            value = right if _truthy(value) else value
        return value

    def _compare(self) -> Any:
        value = self._unary()
        for op in ("==", "!="):
            if self._peek(op):
                self.at += 1
                equal = _equal(value, self._unary())
                return equal if op == "==" else not equal
        return value

    def _unary(self) -> Any:
        if self._peek("!"):
            self.at += 1
            return not _truthy(self._unary())
        return self._atom()

    def _atom(self) -> Any:
        kind, value = self.tokens[self.at]
        self.at += 1
        if kind == "value":
            return value
        if (kind, value) == ("op", "("):
            inner = self._or()
            assert self._peek(")")
            self.at += 1
            return inner
        assert kind == "name", (kind, value)
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if self._peek("("):
            self.at += 1
            args = [self._or()]
            while self._peek(","):
                self.at += 1
                args.append(self._or())
            assert self._peek(")")
            self.at += 1
            return _call(value, args)
        found: Any = self.context
        for part in value.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return found


def _call(name: str, args: list[Any]) -> Any:
    if name == "format":
        return re.sub(r"\{(\d+)\}", lambda m: _text(args[1 + int(m[1])]), args[0])
    raise ValueError(f"function {name} is not supported here")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def evaluate(value: Any, context: dict[str, Any]) -> Any:
    """A workflow value with `${{ }}` in it: a whole expression keeps its type, one inside
    other text is interpolated."""
    if not isinstance(value, str) or "${{" not in value:
        return value
    whole = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", value, re.S)
    if whole and "${{" not in whole[1]:
        return _Parser(whole[1], context).parse()
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(_Parser(m[1], context).parse()), value)


def condition(value: Any, context: dict[str, Any]) -> bool:
    """A job's `if`: an expression with or without `${{ }}`; absent means success()."""
    if value is None:
        return True
    if isinstance(value, str) and "${{" not in value:
        value = "${{ " + value + " }}"
    return _truthy(evaluate(value, context))


# --- runs and concurrency ------------------------------------------------------------------
@dataclass
class Unit:
    """A run (workflow level) or a job: what holds a concurrency group."""

    name: str
    run: Run
    state: str = "queued"  # queued, pending, locked, running, done, cancelled, skipped
    started: float | None = None
    finished: float | None = None
    waited: float = 0.0  # for the release lock


@dataclass
class Run:
    workflow: str
    event: str
    number: int
    arrived: float
    context: dict[str, Any]
    parent: Run | None = None
    unit: Unit = field(init=False)
    jobs: list[Unit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.unit = Unit(self.workflow, self)

    def ancestors(self) -> list[Run]:
        return [self.parent, *self.parent.ancestors()] if self.parent else []


@dataclass
class Group:
    running: Unit | None = None
    pending: Unit | None = None


class World:
    """Runs of the workflows in `directory`, their jobs and concurrency groups, over time."""

    def __init__(self, directory: Path) -> None:
        self.flows = {p.name: yaml.safe_load(p.read_text()) for p in directory.glob("*.yaml")}
        self.groups: dict[str, Group] = {}
        self.held: dict[int, str] = {}  # id(unit) -> group it holds or waits in
        self.lock_holder: Unit | None = None  # the release lock's, and who waits for it
        self.lock_queue: list[Unit] = []
        self.runs: list[Run] = []
        self.now = 0.0
        self.log: list[str] = []

    # events -------------------------------------------------------------------------------
    def trigger(
        self,
        workflow: str,
        event: str,
        ref: str = "refs/heads/main",
        inputs: dict[str, Any] | None = None,
        parent: Run | None = None,
    ) -> Run:
        number = len(self.runs) + 1
        caller = parent.context["github"] if parent else None
        flow = self.flows[workflow]
        github = {
            "event_name": caller["event_name"] if caller else event,
            "ref": caller["ref"] if caller else ref,
            "run_id": caller["run_id"] if caller else str(1000 + number),
            "workflow": caller["workflow"] if caller else flow["name"],
        }
        context = {"github": github, "inputs": inputs or {}, "needs": {}}
        run = Run(workflow, event, number, self.now, context, parent)
        self.runs.append(run)
        self._enter(run.unit, flow.get("concurrency"), context)
        return run

    def advance(self, until: float) -> None:
        """Let time pass: jobs finish, the next ones start, groups hand over."""
        while True:
            self._schedule()
            due = sorted(
                ((u.started or 0) + DURATIONS[u.name], r.number, u.name, u)
                for r in self.runs for u in r.jobs
                if u.state == "running" and u.name in DURATIONS
            )  # fmt: skip
            if not due or due[0][0] > until:
                break
            self.now = due[0][0]
            self._finish(due[0][3])
        self.now = until

    # internals ----------------------------------------------------------------------------
    def _enter(self, unit: Unit, concurrency: Any, context: dict[str, Any]) -> None:
        if concurrency is None:
            self._start(unit)
            return
        if isinstance(concurrency, str):
            concurrency = {"group": concurrency}
        name = str(evaluate(concurrency["group"], context)).strip().lower()
        cancel = _truthy(evaluate(concurrency.get("cancel-in-progress", False), context))
        if any(self.held.get(id(a.unit)) == name for a in unit.run.ancestors()):
            self.log.append(f"{self.now}: deadlock on {name}: {unit.name} of run {unit.run.number}")
            self._cancel(unit)
            return
        group = self.groups.setdefault(name, Group())
        self.held[id(unit)] = name
        if cancel and group.running is not None:
            self._cancel(group.running)
        if group.pending is not None:
            self._cancel(group.pending)
        if group.running is None:
            group.running = unit
            self._start(unit)
        else:
            group.pending = unit
            unit.state = "pending"

    def _start(self, unit: Unit) -> None:
        if unit is not unit.run.unit and self._takes_lock(unit):
            if self.lock_holder is not None:
                unit.state, unit.waited = "locked", self.now  # waited: since when, for now
                self.lock_queue.append(unit)
                return
            self.lock_holder = unit
        unit.state, unit.started = "running", self.now
        if unit is unit.run.unit:
            self._queue_jobs(unit.run)

    def _takes_lock(self, unit: Unit) -> bool:
        steps = self.flows[unit.run.workflow]["jobs"][unit.name].get("steps", [])
        return any("release-lock.sh acquire" in str(step.get("run", "")) for step in steps)

    def _hand_lock_over(self, unit: Unit) -> None:
        if unit in self.lock_queue:
            self.lock_queue.remove(unit)
        if self.lock_holder is not unit:
            return
        self.lock_holder = None
        if self.lock_queue:
            nxt = self.lock_queue.pop(0)
            self.lock_holder = nxt
            nxt.waited = self.now - nxt.waited
            nxt.state, nxt.started = "running", self.now

    def _queue_jobs(self, run: Run) -> None:
        for name in self.flows[run.workflow]["jobs"]:
            run.jobs.append(Unit(name, run))
        self._schedule()

    def _schedule(self) -> None:
        for run in self.runs:
            if run.unit.state != "running":
                continue
            jobs = self.flows[run.workflow]["jobs"]
            for unit in run.jobs:
                if unit.state != "queued":
                    continue
                spec = jobs[unit.name]
                needs = spec.get("needs", [])
                needs = [needs] if isinstance(needs, str) else needs
                states = {j.name: j.state for j in run.jobs}
                if any(states[n] in ("queued", "pending", "running") for n in needs):
                    continue
                if any(states[n] in ("cancelled", "skipped") for n in needs) or not condition(
                    spec.get("if"), run.context
                ):
                    unit.state = "skipped"
                    continue
                if "uses" in spec:  # a reusable workflow: a nested run under this job
                    unit.state, unit.started = "running", self.now
                    called = spec["uses"].rsplit("/", 1)[-1]
                    inputs = {k: evaluate(v, run.context) for k, v in spec.get("with", {}).items()}
                    self.trigger(called, "workflow_call", inputs=inputs, parent=run)
                    continue
                self._enter(unit, spec.get("concurrency"), run.context)
            self._close_if_done(run)

    def _finish(self, unit: Unit) -> None:
        unit.state, unit.finished = "done", self.now
        self._hand_lock_over(unit)
        unit.run.context["needs"][unit.name] = {"result": "success",
                                                 "outputs": OUTPUTS.get(unit.name, {})}  # fmt: skip
        self._release(unit)
        self._schedule()

    def _close_if_done(self, run: Run) -> None:
        if run.unit.state == "running" and all(
            j.state in ("done", "skipped", "cancelled") for j in run.jobs
        ):
            run.unit.state, run.unit.finished = "done", self.now
            self._release(run.unit)
            if run.parent is not None:  # the calling job ends with its called run
                caller = next(j for j in run.parent.jobs if j.state == "running" and "uses" in
                              self.flows[run.parent.workflow]["jobs"][j.name])  # fmt: skip
                caller.state, caller.finished = "done", self.now
                self._schedule()

    def _cancel(self, unit: Unit) -> None:
        was = unit.state
        unit.state, unit.finished = "cancelled", self.now
        self._hand_lock_over(unit)
        self.log.append(f"{self.now}: cancelled {unit.name} of run {unit.run.number} ({was})")
        self._release(unit)
        if unit is unit.run.unit:
            for job in unit.run.jobs:
                if job.state in ("queued", "pending", "locked", "running"):
                    self._cancel(job)
            if unit.run.parent is not None:
                for job in unit.run.parent.jobs:
                    if (
                        job.state == "running"
                        and "uses" in self.flows[unit.run.parent.workflow]["jobs"][job.name]
                    ):
                        self._cancel(job)
        else:
            for job in unit.run.jobs:  # what needs it is skipped; the run ends
                if job.state == "queued":
                    job.state = "skipped"
            self._close_if_done(unit.run)
        for run in self.runs:  # a cancelled calling job cancels the run it called
            if (
                run.parent is unit.run
                and unit is not unit.run.unit
                and run.unit.state in ("pending", "running")
            ):
                self._cancel(run.unit)

    def _release(self, unit: Unit) -> None:
        name = self.held.pop(id(unit), None)
        if name is None:
            return
        group = self.groups[name]
        if group.pending is unit:
            group.pending = None
        if group.running is unit:
            group.running, nxt = group.pending, group.pending
            group.pending = None
            if nxt is not None:
                self._start(nxt)
