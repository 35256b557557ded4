"""What an apply reports: each instance's outcome, the whole result, and what an interruption left.

:class:`Outcome` is one instance's (applied, no changes, destroyed, failed with its reason, not started);
:class:`ApplyResult` holds them and what became of each orphaned certificate stack. Ctrl-C raises
:class:`ApplyInterrupted`, whose message (:func:`interruption_report`) lists the instances done, in progress
(and where) and not started, and says how to converge: run `dl apply` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dl.errors import DlError
from dl.plan.model import Action


class ApplyInterrupted(DlError):
    """Ctrl-C during apply: the message lists what was done, in progress and not started."""


@dataclass(frozen=True)
class Outcome:
    name: str
    action: Action
    ok: bool
    message: str = ""
    url: str | None = None
    changed: bool = False  # whether anything was written for this instance


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)  # what became of each orphaned certificate stack

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def interruption_report(progress: dict[str, str], futures) -> str:
    """What Ctrl-C left: instances done, in progress (and where), not started; how to converge.
    ``progress``: instance -> "not started" | what it was doing | "done"; ``futures``: their outcomes."""
    done, running, waiting = [], [], []
    outcomes = {f.result().name: f.result() for f in futures if f.done() and not f.cancelled()}
    for name, state in progress.items():
        outcome = outcomes.get(name)
        if state == "done" or (outcome is not None and outcome.ok):
            done.append(name)
        elif state == "not started":
            waiting.append(name)
        else:
            running.append(f"{name} ({state})")
    lines = ["Interrupted: the apply stopped early."]
    lines.append(f"  done: {', '.join(done) or 'none'}")
    lines.append(f"  in progress: {', '.join(running) or 'none'}")
    lines.append(f"  not started: {', '.join(waiting) or 'none'}")
    if any("CloudFormation" in r for r in running):
        lines.append("A CloudFormation operation that had started continues on AWS; `dl apply` waits for it.")
    lines.append("Nothing is lost: run `dl apply` again to finish (it converges from any of these states).")
    return "\n".join(lines)
