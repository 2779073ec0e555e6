"""The alert sensor's state, kept in its cursor so a daemon restart neither repeats nor loses an alert, and the
digest rule: at most MAX_POSTS_PER_MINUTE posts in any 60 s; when more is waiting than posts are left, the last
post of the tick carries all the rest."""

import json
from dataclasses import asdict, dataclass, field

from imageflow_dagster.alerts import text

MAX_POSTS_PER_MINUTE = 10
WINDOW_S = 60.0
# Bounds the cursor (Dagster stores it with every tick): beyond this, failed jobs are counted, not kept by name.
MAX_QUEUED = 300
# How many jobs a digest names one per line; a chat message stays readable and under receivers' size limits.
MAX_NAMED = 60


@dataclass
class AlertState:
    # run-status event type (and runless.CURSOR_KEY, jobs failed without a run) -> last event storage id read
    after: dict[str, int] = field(default_factory=dict)
    pending: list[dict] = field(default_factory=list)  # ended runs whose job row is not `failed` yet
    queued: list[dict] = field(default_factory=list)  # failed jobs not posted yet, oldest first
    unnamed: int = 0  # failed jobs past MAX_QUEUED: counted in the next digest
    notices: list[str] = field(default_factory=list)  # quota and sensor-health messages not posted yet
    posts: list[float] = field(default_factory=list)  # when the posts of the last WINDOW_S were made
    quota_since: float | None = None  # quota exhausted alerted, not recovered yet
    sensor_failing_since: float | None = None  # the jobs sensor's failure alerted, not recovered yet

    @classmethod
    def parse(cls, raw: str | None) -> "AlertState":
        if not raw:
            return cls()
        try:
            saved = json.loads(raw)
            return cls(**{name: saved[name] for name in cls.__dataclass_fields__ if name in saved})
        except (ValueError, TypeError):
            return (
                cls()
            )  # an unreadable cursor starts over from the newest run event, never breaks the sensor

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def started(self) -> bool:
        return bool(self.after)

    def queue(self, item: dict) -> None:
        if len(self.queued) < MAX_QUEUED:
            self.queued.append(item)
        else:
            self.unnamed += 1

    def notify(self, notice: str) -> None:
        self.notices.append(notice)

    def waiting(self) -> bool:
        return bool(self.queued or self.unnamed or self.notices)


@dataclass
class Post:
    text: str
    notices: list[str]
    items: list[dict]
    unnamed: int = 0


def budget(state: AlertState, now: float) -> int:
    state.posts = [t for t in state.posts if now - t < WINDOW_S]
    return max(0, MAX_POSTS_PER_MINUTE - len(state.posts))


def plan(state: AlertState, now: float) -> list[Post]:
    """This tick's posts, in order: notices first (they are about every job), then one post per failed job, the
    last one a digest of all that remains when there is more than posts left."""
    left = budget(state, now)
    units = [("notice", n) for n in state.notices] + [("item", i) for i in state.queued]
    if not left or not (units or state.unnamed):
        return []
    if len(units) <= left and not state.unnamed:
        return [_single(kind, unit) for kind, unit in units]
    singles = [_single(kind, unit) for kind, unit in units[: left - 1]]
    return [*singles, _digest(units[left - 1 :], state.unnamed)]


def sent(state: AlertState, post: Post, now: float) -> None:
    """Forget what a post carried; what was not posted stays queued for the next tick."""
    state.notices = [n for n in state.notices if n not in post.notices]
    posted = {id(item) for item in post.items}
    state.queued = [item for item in state.queued if id(item) not in posted]
    state.unnamed -= post.unnamed
    state.posts.append(now)


def tried(state: AlertState, now: float) -> None:
    """A failed post counts against the rate too: a receiver that is down is not hammered every tick."""
    state.posts.append(now)


def _single(kind: str, unit) -> Post:
    if kind == "notice":
        return Post(unit, [unit], [])
    return Post(text.single(unit), [], [unit])


def _digest(units: list, unnamed: int) -> Post:
    notices = [u for kind, u in units if kind == "notice"]
    items = [u for kind, u in units if kind == "item"]
    body = text.digest(items, unnamed, MAX_NAMED) if items or unnamed else ""
    return Post("\n\n".join([*notices, body]).strip(), notices, items, unnamed)
