"""The results store: one SQLite file, one row per finished point, committed as it finishes.

A point's key is a hash of (axis values, pipeline, workload, the hardware card's bytes, the
mapper settings and seed, the code version), so a resumed sweep skips exactly the points it
has and a changed card or code recomputes.  Only the sweeping process writes; every insert is
its own transaction, so a kill at any moment leaves whole rows only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from codesign.dse.evaluate import Outcome
from codesign.dse.space import Point, Space
from codesign.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    workload TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    axis_values TEXT NOT NULL,
    metrics TEXT NOT NULL,
    error TEXT,
    seconds REAL NOT NULL,
    code_version TEXT NOT NULL,
    seq INTEGER NOT NULL
);
"""


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a hash of the package's Python sources."""
    import codesign

    root = Path(codesign.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("codesign")
    except PackageNotFoundError:
        release = "0"
    return f"{release}+{digest.hexdigest()[:12]}"


def point_key(space: Space, point: Point) -> str:
    """Hash of everything that decides the point's result."""
    workload = space.workload(point.workload)
    doc = {
        "values": [[k, v] for k, v in point.values],
        "paths": [[a.name, [list(p) for p in a.paths]] for a in space.axes],
        "fixed": [[list(p), v] for p, v in space.fixed],
        "pipeline": point.pipeline,
        "workload": asdict(workload),
        "hardware": hashlib.sha256(Path(space.hardware_path).read_bytes()).hexdigest(),
        "mapper": space.mapper.model_dump(),
        "seed": space.strategy.seed,
        "accuracy": any(o.value == "accuracy" for o in space.objectives),
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    workload: str
    pipeline: str
    values: tuple[tuple[str, object], ...]
    metrics: dict[str, float | None]
    error: str | None
    seconds: float

    def label(self) -> str:
        return Point(self.values, self.pipeline, self.workload).label()  # type: ignore[arg-type]


class Store:
    """An open results database (a context manager)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a results database ({exc})") from None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT key FROM points")}

    def add(self, space_name: str, point: Point, outcome: Outcome) -> bool:
        """Commit one finished point; False (and nothing written) if its key is there."""
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM points").fetchone()[0]
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                outcome.key, space_name, point.workload, point.pipeline,
                json.dumps([[k, v] for k, v in point.values]),
                json.dumps(dict(outcome.metrics)), outcome.error, outcome.seconds,
                code_version(), seq,
            ),
        )  # fmt: skip
        return cursor.rowcount == 1

    def rows(self, keys: set[str] | None = None) -> Iterator[Row]:
        """Stored rows in the order they finished (only `keys` when given)."""
        query = "SELECT key, workload, pipeline, axis_values, metrics, error, seconds FROM points"
        for key, workload, pipeline, values, metrics, error, seconds in self._db.execute(
            query + " ORDER BY seq"
        ):
            if keys is not None and key not in keys:
                continue
            yield Row(
                key, workload, pipeline,
                tuple((k, v) for k, v in json.loads(values)),
                json.loads(metrics), error, seconds,
            )  # fmt: skip
