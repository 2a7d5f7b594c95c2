"""The workspace and its SQLite store: runs, trained classes, individuals and generations.

A workspace is a directory holding one SQLite file and a driver lock per run (``workspace_paths``: every
on-disk location is derived here, as in OpenLTH). The store is what makes a search durable:

* each trained isomorphism class is committed the moment its evaluation returns (``record_evaluation``), so
  a driver killed mid-generation loses no training: on resume the loop finds the class here;
* each generation (its new individuals, population, front, hypervolume and the RNG states) is committed in
  one transaction (``commit_generation``), so a resumed run restarts exactly after the last whole generation.

Every commit survives the death of the process (SIGKILL, the OOM killer) the moment it returns: the WAL
holds it. Against power loss or an operating-system crash, a generation (and every other write) is synced
to disk before its commit returns (``synchronous = FULL``); a trained class is not (``NORMAL``: one fsync per
result would cost the driver more than its work), it is synced with the next generation's commit. So power
loss can cost at most the classes trained since the last generation commit, which a resumed run trains
again; the store stays consistent either way (the WAL is replayed up to its last whole commit).

Each mask is written once: an individual whose mask is its class's representative, byte for byte (the
member a class was trained for, usually), stores a zero-length mask that reads back as the representative
(schema version 3). A class whose representative is replaced first gives such individuals their bytes.

The file is in WAL mode, so ``lotterysearch runs`` / ``front`` read while the driver (the only writer)
commits. It carries a fixed ``PRAGMA application_id`` and a ``meta`` table; a file that is not ours, or is
damaged, is refused with a one-line ``StoreError`` and never written to. This module imports neither torch
nor numpy: masks are stored packed (``Mask.pack``) with the model's layer shapes on the run, so a reader
unpacks them with ``Mask.unpack(record.packed, run.shapes)``.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import math
import os
import platform
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lotterysearch.errors import StoreError
from lotterysearch.settings import RunKind, config_kind

if TYPE_CHECKING:
    from lotterysearch.core.masks import Mask

STORE_FILENAME = "lotterysearch.sqlite"
APPLICATION_ID = 0x4C545352  # "LTSR": lottery search; in the SQLite header at byte 68
# 2: IMP rounds and confirmations (a version-1 store gains their tables on open); 3: an individual's
# zero-length mask is its class's representative (older lotterysearch would read it as a mask: refused);
# 4: classes' trained weights, for the magnitude mutation (an older store gains the table on open);
# 5: the compute ledger's columns (``_LEDGER_COLUMNS``; an older store gains them on open, NULL: not recorded)
SCHEMA_VERSION = 5
READABLE_SINCE = 2  # a version-2 to 4 store reads as version 5 (the ledger's columns read as NULL)
RUN_STATUSES = ("running", "finished", "failed", "interrupted")
VERSIONED_PACKAGES = ("torch", "ray", "deap", "networkx", "numpy", "lotterysearch")
BUSY_TIMEOUT_S = 30.0  # how long a statement waits for the write lock before failing

CHECKPOINT_EVERY_S = 0.05  # the checkpointer copies the WAL into the database at most this often
WAL_LIMIT_BYTES = 64 << 20  # a WAL started afresh is cut back to this size

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_CHUNK = 500  # ids per ``IN (...)`` list, well under SQLite's bound on host parameters

_SCHEMA = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in RUN_STATUSES)})),
    config_toml TEXT NOT NULL,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    versions TEXT NOT NULL,
    seed INTEGER NOT NULL,
    ref_point TEXT NOT NULL,
    shapes TEXT NOT NULL
);
CREATE TABLE classes (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    algo_version TEXT NOT NULL,
    individual_id INTEGER NOT NULL,
    representative BLOB NOT NULL,
    accuracy REAL NOT NULL,
    loss REAL,
    effective_density REAL NOT NULL,
    steps INTEGER NOT NULL,
    fidelity REAL NOT NULL,
    node TEXT NOT NULL,
    wall_time REAL NOT NULL,
    attempts INTEGER NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE individuals (
    run_id TEXT NOT NULL REFERENCES runs(id),
    id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    mask BLOB NOT NULL,  -- zero-length: the same bytes as its class's representative (version 3)
    parents TEXT NOT NULL,
    operator TEXT NOT NULL,
    origin TEXT NOT NULL,
    class_key TEXT NOT NULL,
    accuracy REAL NOT NULL,
    density REAL NOT NULL,
    effective_density REAL NOT NULL,
    evaluated INTEGER NOT NULL CHECK (evaluated IN (0, 1)),
    fidelity REAL NOT NULL,
    PRIMARY KEY (run_id, id),
    FOREIGN KEY (run_id, class_key) REFERENCES classes(run_id, key)
);
CREATE INDEX individuals_by_class ON individuals(run_id, class_key);
CREATE TABLE generations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    gen INTEGER NOT NULL,
    population TEXT NOT NULL,
    front TEXT NOT NULL,
    hypervolume REAL NOT NULL,
    evaluated INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    best_accuracy REAL NOT NULL,
    rng_state TEXT NOT NULL,
    elapsed REAL NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, gen)
);
"""

# Added in schema version 2; a version-1 store gets them when it is next opened (``_migrate``).
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS imp_rounds (
    run_id TEXT NOT NULL REFERENCES runs(id),
    trajectory INTEGER NOT NULL,
    round INTEGER NOT NULL,
    individual_id INTEGER NOT NULL,
    result TEXT NOT NULL,
    pruned BLOB,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, trajectory, round),
    FOREIGN KEY (run_id, individual_id) REFERENCES individuals(run_id, id)
);
CREATE TABLE IF NOT EXISTS confirmations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    individual_id INTEGER NOT NULL,
    init TEXT NOT NULL CHECK (init IN ('own', 'reinit')),
    seed INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    result TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, individual_id, init, seed, protocol),
    FOREIGN KEY (run_id, individual_id) REFERENCES individuals(run_id, id)
);
"""
_SCHEMA += _SCHEMA_V2
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS trained_weights (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    weights BLOB NOT NULL,  -- trained.pack_weights of the class's training at its stored fidelity
    PRIMARY KEY (run_id, key)
);
"""
_SCHEMA += _SCHEMA_V4
# Elite re-evaluation (``ga.reevaluate_elites``): a class trained again under another order of minibatches.
# Created by the first write that needs it, not with the schema (a store without it has no re-evaluations),
# so stores of every version read as before, none needs migrating, and runs without it keep the schema small.
_SCHEMA_REEVALUATIONS = """
CREATE TABLE IF NOT EXISTS reevaluations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    batch_order INTEGER NOT NULL,
    gen INTEGER NOT NULL,  -- the generation whose breeding it preceded: it counts once that is committed
    accuracy REAL NOT NULL,
    loss REAL,
    steps INTEGER NOT NULL,
    node TEXT NOT NULL,
    wall_time REAL NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (run_id, key, batch_order),
    FOREIGN KEY (run_id, key) REFERENCES classes(run_id, key)
);
"""
# Added in schema version 5, the compute ledger (``runs.ledger``): an individual's own training steps (its
# class's trainings in its generation, all rungs and init seeds; 0 for an isomorph), a generation's steps,
# critical path, FLOPs on kept weights and training seconds, the measured seconds of each IMP round, and a
# confirmation's training cost (0 steps for one an IMP round already was). NULL where not recorded.
_LEDGER_COLUMNS = (
    ("individuals", "steps", "INTEGER"),
    ("generations", "steps", "INTEGER"),
    ("generations", "critical_path_steps", "INTEGER"),
    ("generations", "flops", "REAL"),  # may pass SQLite's 2^63 bound on integers
    ("generations", "train_seconds", "REAL"),
    ("imp_rounds", "wall_time", "REAL"),
    ("confirmations", "steps", "INTEGER"),
    ("confirmations", "flops", "REAL"),
    ("confirmations", "wall_time", "REAL"),
)
_SCHEMA += "".join(f"ALTER TABLE {t} ADD COLUMN {c} {kind};\n" for t, c, kind in _LEDGER_COLUMNS)


# ---- paths ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkspacePaths:
    """Where a workspace keeps things: the directory, its one SQLite file, the runs' driver locks."""

    root: Path
    store: Path
    locks: Path

    def driver_lock(self, run_id: str) -> Path:
        return self.locks / f"{run_id}.lock"


def workspace_paths(workspace: str | Path) -> WorkspacePaths:
    """All on-disk locations of a workspace, derived in this one place."""
    root = Path(workspace).expanduser()
    return WorkspacePaths(root=root, store=root / STORE_FILENAME, locks=root / "locks")


# ---- records --------------------------------------------------------------------------------------
def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _ids(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class RunRecord:
    """One run (a search or an IMP run: ``kind``): its config (as given, TOML and JSON), identity hash,
    versions and progress."""

    id: str
    name: str
    created: str
    updated: str
    status: str
    config_toml: str
    config_json: str
    config_hash: str
    versions: dict[str, str | None]
    seed: int
    ref_point: tuple[float, ...]
    shapes: dict[str, tuple[int, ...]]  # layer name -> weight shape, in packing order (``Mask.unpack``)
    generations: int  # generations committed

    @cached_property
    def kind(self) -> RunKind:
        """A search or an IMP run, as its stored config says (``settings.config_kind``)."""
        return config_kind(self.config_json)


@dataclass(frozen=True)
class ClassRecord:
    """One trained isomorphism class: its objectives are those of every mask in the class.

    ``individual_id`` is the individual whose evaluation trained it at its current fidelity (the class's
    first member; with successive halving, the one that last raised the fidelity). A resumed
    run replays the interrupted generation with the same ids, so that individual is again the one marked
    ``evaluated`` while the class comes from here instead of from training.
    ``fidelity`` is the fraction of the full training budget the accuracy was measured at. A NaN ``loss``
    (diverged training) is kept as NaN.
    """

    run_id: str
    key: str
    algo_version: str
    individual_id: int
    representative: bytes  # packed mask of the first member trained
    accuracy: float
    loss: float
    effective_density: float
    steps: int
    node: str  # the Ray node that ran the evaluation
    wall_time: float  # seconds
    attempts: int = 1  # 1 + retries after worker loss
    fidelity: float = 1.0
    created: str | None = None  # set by the store when recorded
    # ``trained.pack_weights`` of the representative's training, when the search keeps them (the magnitude
    # mutation); stored apart (``Store.trained_weights``) and not read back by ``classes``
    weights: bytes | None = None

    def __post_init__(self) -> None:
        _set(self, "representative", bytes(self.representative))
        if self.weights is not None:
            _set(self, "weights", bytes(self.weights))
        for name in ("individual_id", "steps", "attempts"):
            _set(self, name, int(getattr(self, name)))
        for name in ("accuracy", "loss", "effective_density", "wall_time", "fidelity"):
            _set(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class Individual:
    """One individual of a run: a mask (packed), where it came from and its objectives.

    The one record of an evaluated mask, for the search loop, the store, the reports and the Python API.
    ``mask`` unpacks ``packed`` on first use (the store gives every individual its run's layer ``shapes``;
    ``Individual.of`` keeps the mask it was made from). ``evaluated`` is True when its class was trained for
    it, False when the class's objectives were reused from the archive (an isomorph hit). ``origin`` says
    which seed or operator made it, e.g. ``"synflow:seed=2:rho=100"``, ``"random:rho=10"``, ``"child"``.
    """

    run_id: str
    id: int
    generation: int  # born
    packed: bytes
    parents: tuple[int, ...]
    operator: str
    origin: str
    class_key: str
    accuracy: float
    density: float
    effective_density: float
    evaluated: bool
    fidelity: float = 1.0
    # training steps spent on its class in its generation (every rung and init seed); 0 for an isomorph
    # hit; None where the store did not record it (before schema version 5)
    steps: int | None = None
    shapes: Mapping[str, tuple[int, ...]] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _set(self, "packed", bytes(self.packed))
        _set(self, "parents", _ids(self.parents))
        _set(self, "id", int(self.id))
        _set(self, "generation", int(self.generation))
        _set(self, "evaluated", bool(self.evaluated))
        if self.steps is not None:
            _set(self, "steps", int(self.steps))
        for name in ("accuracy", "density", "effective_density", "fidelity"):
            _set(self, name, float(getattr(self, name)))

    @classmethod
    def of(cls, mask: Mask, **fields: Any) -> Individual:
        """An individual of ``mask`` (packed, its density and effective density measured here)."""
        ind = cls(
            packed=mask.pack(),
            density=mask.density(),
            effective_density=mask.effective_density(),
            shapes=mask.shapes,
            **fields,
        )
        ind.__dict__["mask"] = mask  # ``cached_property``'s slot: no unpacking of what we hold
        return ind

    @cached_property
    def mask(self) -> Mask:
        from lotterysearch.core.masks import Mask

        if self.shapes is None:
            raise StoreError(f"individual {self.id} has no layer shapes to unpack its mask with")
        return Mask.unpack(self.packed, self.shapes)

    @property
    def objectives(self) -> tuple[float, float]:
        """(validation accuracy ↑, density ↓)."""
        return (self.accuracy, self.density)

    @property
    def compression(self) -> float:
        """ρ = 1/density (Eq. 4), infinite for an empty mask."""
        return 1.0 / self.density if self.density > 0 else math.inf


@dataclass(frozen=True)
class GenerationRecord:
    """One finished generation: enough to resume the search exactly after it.

    ``rng_state`` is opaque JSON from the loop (numpy bit generator state and the like); numpy arrays and
    scalars are stored as lists and numbers, and tuples come back as lists.
    """

    run_id: str
    gen: int
    population: tuple[int, ...]  # individual ids, in the loop's order
    front: tuple[int, ...]
    hypervolume: float
    evaluated: int  # classes trained in this generation
    skipped: int  # isomorph hits: individuals whose class was already known
    best_accuracy: float
    rng_state: Any
    elapsed: float  # seconds since the run started
    created: str | None = None  # set by the store when committed
    # the compute ledger of this generation (``runs.ledger``): training steps (every rung and init seed),
    # the critical path in steps, training FLOPs on kept weights, seconds its trainings took where they ran;
    # None where not recorded (stored before schema version 5; a steady-state run's critical path)
    steps: int | None = None
    critical_path_steps: int | None = None
    flops: float | None = None
    train_seconds: float | None = None

    def __post_init__(self) -> None:
        _set(self, "population", _ids(self.population))
        _set(self, "front", _ids(self.front))
        for name, kind in (("steps", int), ("critical_path_steps", int), ("flops", float)):
            if getattr(self, name) is not None:
                _set(self, name, kind(getattr(self, name)))
        for name in ("gen", "evaluated", "skipped"):
            _set(self, name, int(getattr(self, name)))
        for name in ("hypervolume", "best_accuracy", "elapsed"):
            _set(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class Reevaluation:
    """One more training of a full-fidelity class under another order of minibatches (``batch_order`` ≥ 1,
    same initial weights), made before generation ``gen`` bred. Once ``gen`` is committed, the class's
    accuracy, as ``Store.classes`` and ``Store.individuals`` read it, is the mean of its first training and
    these."""

    run_id: str
    key: str
    batch_order: int
    gen: int
    accuracy: float
    loss: float
    steps: int
    node: str
    wall_time: float
    created: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_order", "gen", "steps"):
            _set(self, name, int(getattr(self, name)))
        _set(self, "loss", _loss_out(self.loss))  # NULL in SQLite: a diverged training's NaN
        for name in ("accuracy", "loss", "wall_time"):
            _set(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class IMPRoundRecord:
    """One round of one IMP trajectory (the init seed ``trajectory``): the mask trained in this round (an
    individual of the run; round 0 is the dense network) and the protocol's numbers for that training
    (``training.TrainResult.as_dict``). ``pruned`` is the packed mask this round's trained weights prune it
    to, by magnitude: the next round's mask (None after the last), so a resumed trajectory goes on from it
    without training this round again."""

    run_id: str
    trajectory: int
    round: int
    individual_id: int
    result: dict[str, Any]
    pruned: bytes | None = None
    created: str | None = None
    wall_time: float | None = None  # seconds the round took where it ran (None: stored before version 5)


@dataclass(frozen=True)
class ConfirmationRecord:
    """One retraining of an individual's mask under a full protocol: from its own init (``own``) or from a
    fresh one (``reinit``, the control), with init seed ``seed``. ``protocol`` names the training settings
    (their hash), so confirmations under different protocols sit side by side."""

    run_id: str
    individual_id: int
    init: str
    seed: int
    protocol: str
    result: dict[str, Any]
    created: str | None = None
    # what its training cost (``runs.ledger``): steps, FLOPs on kept weights, seconds where it ran; 0 for a
    # confirmation an IMP round already was (its numbers copied); None where not recorded
    steps: int | None = None
    flops: float | None = None
    wall_time: float | None = None


# ---- helpers --------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json_default(o: object) -> object:
    if hasattr(o, "tolist"):  # numpy arrays and scalars, without importing numpy
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _dumps(value: object, what: str) -> str:
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"{what} cannot be stored as JSON: {e}") from None


def _loss_in(x: float) -> float | None:
    return None if math.isnan(x) else x  # SQLite has no NaN (it would store NULL anyway)


def _loss_out(x: float | None) -> float:
    return math.nan if x is None else x


def _mean(values: Sequence[float]) -> float:
    """The mean of a class's accuracies, summed in the order given (first training, then batch orders)."""
    return sum(values) / len(values)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-.") or "run"


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    out["python"] = platform.python_version()
    out["sqlite"] = sqlite3.sqlite_version
    return out


def _shape_map(text: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads(text).items()}


# How each column stored encoded (JSON, a NaN loss as NULL) reads back, by the column's name: a column of
# that name means the same in every table.
_DECODE: dict[str, Callable[[Any], Any]] = {
    "versions": json.loads,
    "ref_point": lambda text: tuple(json.loads(text)),
    "shapes": _shape_map,
    "loss": _loss_out,
    "parents": json.loads,
    "population": json.loads,
    "front": json.loads,
    "rng_state": json.loads,
    "result": json.loads,
}

R = TypeVar("R")


def _fields_of(cursor: sqlite3.Cursor) -> Callable[[tuple], dict[str, Any]]:
    """What turns a row of ``cursor``'s query into a record's fields: each column fills the field of its
    name, decoded by ``_DECODE``; so a column added to a query, or a field to a record, cannot shift the
    others (a column a record lacks, or a field no column fills, fails loudly)."""
    names = [d[0] for d in cursor.description]
    coded = [(n, _DECODE[n]) for n in names if n in _DECODE]

    def fields(row: tuple) -> dict[str, Any]:
        out = dict(zip(names, row, strict=True))
        for name, decode in coded:
            out[name] = decode(out[name])
        return out

    return fields


def _records(cls: type[R], cursor: sqlite3.Cursor, **given: Any) -> list[R]:
    """Every row of an executed query as a record of ``cls`` (``_fields_of``); ``given`` fills fields that
    are no column."""
    fields = _fields_of(cursor)
    return [cls(**fields(row), **given) for row in cursor]


def _record(cls: type[R], cursor: sqlite3.Cursor, **given: Any) -> R | None:
    """The next row of an executed query as a record of ``cls``, or None when there is none."""
    row = cursor.fetchone()
    return None if row is None else cls(**_fields_of(cursor)(row), **given)


def _check_run_id(run_id: str, records: Sequence[ClassRecord | Individual | GenerationRecord]) -> None:
    wrong = sorted({r.run_id for r in records} - {run_id})
    if wrong:
        raise StoreError(f"records of run {wrong} were passed to store for run '{run_id}'")


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _check_header(db: Path) -> None:
    """Refuse a file that is not one of our stores, reading its header with plain file I/O.

    SQLite is not let near a foreign file: even a read-only connection leaves ``-wal``/``-shm`` files
    beside a WAL database, and a hot journal would be rolled back into it.
    """
    if not db.is_file():
        raise StoreError(f"'{db}' is not a regular file; move it away or use another workspace")
    with open(db, "rb") as f:
        header = f.read(_HEADER_SIZE)
    size = db.stat().st_size
    if not header.startswith(_SQLITE_MAGIC):
        what = "an empty file" if size == 0 else "not an SQLite database"
        raise StoreError(
            f"'{db}' is not a lotterysearch store ({what}); move it away or use another workspace"
        )
    if len(header) < _HEADER_SIZE:
        raise StoreError(
            f"lotterysearch store '{db}' is corrupt (truncated to {size} bytes); restore it from a backup"
        )
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"'{db}' is an SQLite database but not a lotterysearch store (application_id {app_id:#x}); "
            "use another workspace"
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size_valid = header[24:28] == header[92:96] and pages > 0
    wal = db.with_name(db.name + "-wal")
    wal_has_frames = wal.is_file() and wal.stat().st_size > 0  # then SQLite recovers from the WAL
    if size_valid and not wal_has_frames and (size < pages * page_size or size % page_size):
        raise StoreError(
            f"lotterysearch store '{db}' is corrupt (truncated: {size} bytes, its header says "
            f"{pages * page_size}); restore it from a backup"
        )


def _connect_readonly(db: Path) -> sqlite3.Connection:
    """A read-only connection: ``mode=ro``, which sees a live writer's commits through the WAL; on storage
    this process cannot write (a read-only mount, another user's directory) SQLite cannot make the WAL's
    shared-memory file that needs, so the file is opened ``immutable`` instead: nobody can be writing there.
    Commits still in the WAL are invisible to an immutable reader: then a one-line reason, not stale data."""
    uri = db.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as e:
        conn.close()
        if os.access(db.parent, os.W_OK):
            raise StoreError(
                f"cannot open store '{db}' read-only: {e} (can this user read it and its -wal and -shm files?)"
            ) from None
    wal = db.with_name(db.name + "-wal")
    pending = wal.stat().st_size if wal.is_file() else 0
    if pending:
        raise StoreError(
            f"store '{db}' is on storage this user cannot write, and {pending} bytes of its commits are still"
            " in its -wal file, which SQLite reads only where it can write; open it once where it is"
            " writable (lotterysearch runs --workspace DIR) or copy the workspace"
        )
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


def _create_store(paths: WorkspacePaths) -> None:
    """Write the schema into a temporary file and link it into place: a store is whole or absent."""
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create workspace '{paths.root}': {e.strerror}") from None
    tmp = paths.store.with_name(f"{STORE_FILENAME}.creating-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)  # a private file: atomicity comes from linking it into place below
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created", _now()),
                    ("created_by", _versions()["lotterysearch"] or "unknown"),
                ],
            )
        finally:
            conn.close()  # checkpoints: the file's header now holds the application id
    except (OSError, sqlite3.Error) as e:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot create a store in workspace '{paths.root}': {e}") from None
    try:
        os.link(tmp, paths.store)  # never replaces a store another process created meanwhile
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links
        if not paths.store.exists():
            os.replace(tmp, paths.store)
    tmp.unlink(missing_ok=True)


# ---- checkpoints ----------------------------------------------------------------------------------
class _Checkpointer(threading.Thread):
    """Copies the WAL into the database file from a second connection, so that no commit of the writer
    waits for it: SQLite's automatic checkpoint would run inside the commit that crosses 1000 pages, and
    copying a LeNet-300-100 mask costs about as much as committing it. A passive checkpoint takes no
    lock a writer needs; a crash during one is recovered like any other (the WAL still holds its frames).
    Woken after each commit, it runs at most every ``CHECKPOINT_EVERY_S`` seconds; ``seconds`` is its CPU
    time so far. While the writer commits without pause no checkpoint of its own catches up with it, and
    SQLite starts the WAL afresh only after one that did: so the writer finishes the copy itself once per
    generation (``Store._settle``), a short copy of what this thread has not reached."""

    def __init__(self, path: Path) -> None:
        super().__init__(name=f"lotterysearch-checkpoint-{path.parent.name}", daemon=True)
        self.path = path
        self.wake = threading.Event()
        self.ready = threading.Event()
        self.halt = threading.Event()
        self.lock = threading.Lock()  # held while it checkpoints: the writer's ``_settle`` waits for it
        self.failed = False  # its connection could not be opened: the writer checkpoints itself again
        self.seconds = 0.0

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error:
            self.failed = True
            self.ready.set()
            return
        self.ready.set()
        try:
            while True:
                self.wake.wait()
                self.wake.clear()
                if self.halt.is_set():
                    break
                cpu = time.thread_time()
                with self.lock:
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error:  # busy or I/O: the writer's next commit wakes it again
                        pass
                self.seconds += time.thread_time() - cpu
                if self.halt.wait(CHECKPOINT_EVERY_S):
                    break
        finally:
            conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.wake.set()
        self.join()


# ---- the store ------------------------------------------------------------------------------------
class Store:
    """An open workspace store. Use ``Store.open(workspace, create=...)`` as a context manager.

    One process writes (the search driver); any number read at the same time (WAL). Every write method
    is one transaction, committed before it returns.
    """

    def __init__(self, paths: WorkspacePaths, conn: sqlite3.Connection) -> None:
        self.paths = paths
        self._conn: sqlite3.Connection | None = conn
        self._synchronous = ""  # the connection's ``PRAGMA synchronous`` as ``_write`` last set it
        self._checkpointer: _Checkpointer | None = None
        # committed representatives by (run, class) that this store wrote or read: the same bytes objects
        # the caller holds, so an individual's mask is compared with its class's without reading it back
        self._representatives: dict[tuple[str, str], bytes] = {}
        self._has_ledger: bool | None = (
            None  # the ledger's columns exist (not in an older store read as it is)
        )

    # ---- opening and closing -----------------------------------------------------------------------
    @classmethod
    def open(cls, workspace: str | Path, create: bool = False, *, readonly: bool = False) -> Store:
        """Open the store of ``workspace``; with ``create`` make the directory and schema if absent.

        A file that is not ours or is damaged raises ``StoreError`` and is left untouched. ``readonly``
        opens it with SQLite's ``mode=ro`` and ``query_only``: every write fails, nothing is migrated (a
        store older than ``READABLE_SINCE`` is refused with the command that upgrades it), and a WAL reader
        sees each commit of a live writer without blocking it.
        """
        if readonly and create:
            raise StoreError("a store opened read-only cannot be created")
        paths = workspace_paths(workspace)
        if paths.root.exists() and not paths.root.is_dir():
            raise StoreError(f"workspace '{paths.root}' is a file, not a directory")
        if not os.path.lexists(paths.store):
            if not create:
                raise StoreError(
                    f"no lotterysearch workspace at '{paths.root}' (no {STORE_FILENAME}); "
                    "a search creates one"
                )
            _create_store(paths)
        try:
            _check_header(paths.store)
            if readonly:
                conn = _connect_readonly(paths.store)
            else:
                conn = sqlite3.connect(paths.store, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open store '{paths.store}': {e}") from None
        store = cls(paths, conn)
        try:
            version = cls._check_meta(paths.store, conn)
            if readonly:
                if version < READABLE_SINCE:
                    raise StoreError(
                        f"store '{paths.store}' has schema version {version}; upgrade it once with"
                        f" `lotterysearch runs --workspace {paths.root}` before reading it read-only"
                    )
                with store._sql():
                    conn.execute("PRAGMA query_only = ON")
                return store
            store._quick_check()
            if version < SCHEMA_VERSION:
                store._migrate()
            with store._sql():
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not only a crash
                store._synchronous = "FULL"
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                store._start_checkpointer()
        except BaseException:
            store.close()
            raise
        return store

    @staticmethod
    def _check_meta(db: Path, conn: sqlite3.Connection) -> int:
        try:
            has_meta = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            if not has_meta:
                raise StoreError(
                    f"'{db}' is not a lotterysearch store (no meta table); use another workspace"
                )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as e:
            raise StoreError(f"cannot read store '{db}': {e}") from None
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"lotterysearch store '{db}' is corrupt ({e}); restore it from a backup"
            ) from None
        if row is None or not str(row[0]).isdigit():
            raise StoreError(f"lotterysearch store '{db}' is corrupt (no schema_version in meta)")
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store '{db}' has schema version {version}, newer than this lotterysearch reads "
                f"({SCHEMA_VERSION}); upgrade lotterysearch"
            )
        return version

    def _quick_check(self) -> None:
        """SQLite's ``PRAGMA quick_check`` before a store is opened for writing: a damaged file (a torn page,
        a bad index) can pass the header and meta checks, and a run resumed on it would write beside the
        damage. Linear in the file's size (tens of milliseconds for a search's store); readers skip it."""
        with self._sql() as conn:
            try:
                rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError):  # locked, I/O: ``_sql``'s messages
                    raise
                rows = [str(e)]  # a page too damaged to walk
        if rows != ["ok"]:  # a row may hold several lines, under a "*** in database main ***" heading
            problems = [line for row in rows for line in row.splitlines() if not line.startswith("***")]
            problems = problems or rows
            more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
            raise StoreError(
                f"lotterysearch store '{self.paths.store}' is damaged (SQLite's quick_check: {problems[0]}{more});"
                " it was not written to; restore it from a backup"
            )

    def _migrate(self) -> None:
        """Bring an older store to this version in one transaction: a version-1 store gains the tables it
        lacks; a version-2 store only its number (its masks are all stored whole, which version 3 reads as
        they are; only masks written from now on reference their class's); a version-3 store gains the trained
        weights' table; a version-4 store the ledger's columns, NULL in its rows (``runs.ledger`` derives what
        the stored config and records allow)."""
        with self._write() as conn:
            for statement in (_SCHEMA_V2 + _SCHEMA_V4).split(";"):
                if statement.strip():
                    conn.execute(statement)
            for table, column, kind in _LEDGER_COLUMNS:
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _start_checkpointer(self) -> None:
        """Checkpoints move to their own thread (``_Checkpointer``); where it cannot connect, SQLite's own
        automatic checkpoints stay on."""
        checkpointer = _Checkpointer(self.paths.store)
        checkpointer.start()
        checkpointer.ready.wait()
        if checkpointer.failed:
            return
        self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        self._checkpointer = checkpointer

    @property
    def checkpoint_seconds(self) -> float:
        """CPU time the checkpointer thread has spent so far (0 without one)."""
        return self._checkpointer.seconds if self._checkpointer is not None else 0.0

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._conn is not None:
            self._conn.close()  # the last connection to close checkpoints what is left
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._conn is not None else "closed"
        return f"Store('{self.paths.root}', {state})"

    # ---- plumbing ----------------------------------------------------------------------------------
    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store '{self.paths.store}' is closed")
        return self._conn

    @contextmanager
    def _sql(self) -> Iterator[sqlite3.Connection]:
        """SQLite errors as one-line ``StoreError``s naming the file."""
        conn = self._db
        try:
            yield conn
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise StoreError(
                    f"store '{self.paths.store}' stayed locked by another writer for {BUSY_TIMEOUT_S:g} s; "
                    "is another search writing to this workspace?"
                ) from None
            raise StoreError(f"store '{self.paths.store}': {e}") from None
        except sqlite3.Error as e:
            if type(e) is sqlite3.DatabaseError:  # SQLITE_CORRUPT, SQLITE_NOTADB
                raise StoreError(
                    f"lotterysearch store '{self.paths.store}' is corrupt ({e}); restore it from a backup"
                ) from None
            raise StoreError(f"store '{self.paths.store}': {e}") from None

    @contextmanager
    def _write(self, synchronous: str = "FULL") -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises. ``FULL``: synced
        to disk before the commit returns; ``NORMAL``: written to the WAL only (safe from a killed process,
        synced by the next ``FULL`` commit or checkpoint)."""
        with self._sql() as conn:
            if synchronous != self._synchronous:
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                self._synchronous = synchronous
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if self._checkpointer is not None:
            self._checkpointer.wake.set()

    def _ledger_columns(self, conn: sqlite3.Connection, table: str, prefix: str = "") -> str:
        """The ledger's columns of ``table`` for a SELECT list: NULL in an older store opened read-only."""
        if self._has_ledger is None:
            have = {
                (t, r[1])
                for t in {t for t, _, _ in _LEDGER_COLUMNS}
                for r in conn.execute(f"PRAGMA table_info({t})")
            }
            self._has_ledger = all((t, c) in have for t, c, _ in _LEDGER_COLUMNS)
        names = [c for t, c, _ in _LEDGER_COLUMNS if t == table]
        return ", ".join(f"{prefix}{c}" if self._has_ledger else f"NULL AS {c}" for c in names)

    def _require_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            return
        known = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY rowid")]
        if not known:
            listing = "the workspace has no runs yet"
        elif len(known) > 10:
            listing = f"known: {', '.join(known[-10:])} and {len(known) - 10} older"
        else:
            listing = f"known: {', '.join(known)}"
        raise StoreError(f"unknown run '{run_id}' in workspace '{self.paths.root}'; {listing}")

    def _committed_ids(self, conn: sqlite3.Connection, run_id: str) -> str:
        lo, hi = conn.execute(
            "SELECT MIN(id), MAX(id) FROM individuals WHERE run_id = ?", (run_id,)
        ).fetchone()
        return "it has no individuals yet" if lo is None else f"its ids run from {lo} to {hi}"

    @staticmethod
    def _existing_keys(conn: sqlite3.Connection, run_id: str, keys: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(keys)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key FROM classes WHERE run_id = ? AND key IN ({marks})", (run_id, *chunk)
            )
            found.update(r[0] for r in rows)
        return found

    def _existing_ids(self, conn: sqlite3.Connection, run_id: str, ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks(sorted(set(ids))):
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id FROM individuals WHERE run_id = ? AND id IN ({marks})", (run_id, *chunk)
            )
            found.update(r[0] for r in rows)
        return found

    # ---- runs --------------------------------------------------------------------------------------
    def create_run(
        self,
        name: str,
        config_toml: str,
        config_json: str,
        config_hash: str,
        seed: int,
        ref_point: Sequence[float],
        shapes: Mapping[str, Sequence[int]],
    ) -> str:
        """Record a new run (status ``running``) with the package versions; returns its id ``name-NNN``."""
        if not shapes:
            raise StoreError("a run needs the mask's layer shapes (got none)")
        slug = _slug(name)
        shape_json = _dumps({str(k): [int(d) for d in v] for k, v in shapes.items()}, "shapes")
        ref_json = _dumps([float(x) for x in ref_point], "ref_point")
        now = _now()
        with self._write() as conn:
            taken = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM runs WHERE substr(id, 1, ?) = ?", (len(slug) + 1, slug + "-")
                )
            ]
            numbers = [int(t[len(slug) + 1 :]) for t in taken if t[len(slug) + 1 :].isdigit()]
            run_id = f"{slug}-{max(numbers, default=0) + 1:03d}"
            conn.execute(
                "INSERT INTO runs (id, name, created, updated, status, config_toml, config_json, config_hash,"
                " versions, seed, ref_point, shapes) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    name,
                    now,
                    now,
                    config_toml,
                    config_json,
                    config_hash,
                    _dumps(_versions(), "versions"),
                    int(seed),
                    ref_json,
                    shape_json,
                ),
            )
        return run_id

    _RUN_SELECT = (
        "SELECT id, name, created, updated, status, config_toml, config_json, config_hash, versions, seed,"
        " ref_point, shapes, (SELECT COUNT(*) FROM generations g WHERE g.run_id = runs.id) AS generations"
        " FROM runs"
    )

    def run(self, run_id: str) -> RunRecord:
        with self._sql() as conn:
            self._require_run(conn, run_id)
            record = _record(RunRecord, conn.execute(f"{self._RUN_SELECT} WHERE id = ?", (run_id,)))
            assert record is not None  # ``_require_run`` found it
            return record

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        with self._sql() as conn:
            return _records(RunRecord, conn.execute(f"{self._RUN_SELECT} ORDER BY rowid"))

    @contextmanager
    def driving(self, run_id: str) -> Iterator[None]:
        """Hold the run's driver lock for the block: one process at a time drives a run.

        An exclusive ``flock`` on ``locks/<run>.lock``, which the OS releases when the holder exits, however
        it exits: a crashed driver never leaves a stale lock, and a second driver (say, a resume started while
        the first still runs) fails at once with a one-line ``StoreError`` instead of writing beside it. The
        file is kept afterwards: removing it would let two processes lock two different files of one name.
        """
        with self._sql() as conn:
            self._require_run(conn, run_id)
        path = self.paths.driver_lock(run_id)
        try:
            path.parent.mkdir(exist_ok=True)
            f = open(path, "a+")  # noqa: SIM115 - held open for the whole block
        except OSError as e:
            raise StoreError(f"cannot create the driver lock '{path}': {e.strerror}") from None
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise StoreError(
                    f"run '{run_id}' is being driven by {holder}; stop that process or wait for it to end"
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {platform.node()}")
            f.flush()
            yield
        finally:
            f.close()  # releases the lock

    def set_status(self, run_id: str, status: str) -> None:
        if status not in RUN_STATUSES:
            raise StoreError(f"run status '{status}' is not one of {', '.join(RUN_STATUSES)}")
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("UPDATE runs SET status = ?, updated = ? WHERE id = ?", (status, _now(), run_id))

    # ---- classes -----------------------------------------------------------------------------------
    def record_evaluation(self, run_id: str, record: ClassRecord) -> None:
        """Commit one trained class now, so a driver that dies later does not train it again (synced to disk
        with the next generation commit: see the module's notes on durability).

        Recording a known class again is an error unless the new record has a higher ``fidelity`` (a class
        promoted to a longer training budget), which replaces the old one.
        """
        _check_run_id(run_id, [record])
        with self._write("NORMAL") as conn:
            self._require_run(conn, run_id)
            self._insert_class(conn, run_id, record)
        self._representatives[(run_id, record.key)] = record.representative

    @staticmethod
    def _insert_class(conn: sqlite3.Connection, run_id: str, record: ClassRecord) -> None:
        old = conn.execute(
            "SELECT fidelity, representative FROM classes WHERE run_id = ? AND key = ?", (run_id, record.key)
        ).fetchone()
        if old is not None and record.fidelity <= old[0]:
            raise StoreError(
                f"class '{record.key}' of run '{run_id}' is already recorded at fidelity {old[0]:g}; "
                "look classes up before training them"
            )
        if old is not None and old[1] != record.representative:  # its members' references keep their bytes
            conn.execute(
                "UPDATE individuals SET mask = ? WHERE run_id = ? AND class_key = ? AND length(mask) = 0",
                (old[1], run_id, record.key),
            )
        if old is not None:  # the old training's weights go with it
            conn.execute("DELETE FROM trained_weights WHERE run_id = ? AND key = ?", (run_id, record.key))
        if record.weights is not None:
            conn.execute(
                "INSERT INTO trained_weights (run_id, key, weights) VALUES (?, ?, ?)",
                (run_id, record.key, record.weights),
            )
        conn.execute(
            "INSERT OR REPLACE INTO classes (run_id, key, algo_version, individual_id, representative,"
            " accuracy, loss, effective_density, steps, fidelity, node, wall_time, attempts, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                record.key,
                record.algo_version,
                record.individual_id,
                record.representative,
                record.accuracy,
                _loss_in(record.loss),
                record.effective_density,
                record.steps,
                record.fidelity,
                record.node,
                record.wall_time,
                record.attempts,
                record.created or _now(),
            ),
        )

    def record_evaluations(self, run_id: str, records: Sequence[ClassRecord]) -> None:
        """``record_evaluation`` of each record in one transaction: the results a driver holds at once,
        committed before it does anything else with them. All or nothing, with the same checks."""
        _check_run_id(run_id, records)
        keys = [r.key for r in records]
        if len(set(keys)) != len(keys):
            raise StoreError(f"records for run '{run_id}' name a class twice; record each class once")
        with self._write("NORMAL") as conn:
            self._require_run(conn, run_id)
            for record in records:
                self._insert_class(conn, run_id, record)
        for record in records:
            self._representatives[(run_id, record.key)] = record.representative

    def trained_weights(self, run_id: str, key: str) -> bytes | None:
        """The trained weights recorded with class ``key`` (``ClassRecord.weights``), or None."""
        with self._sql() as conn:
            row = conn.execute(
                "SELECT weights FROM trained_weights WHERE run_id = ? AND key = ?", (run_id, key)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def classes(self, run_id: str) -> dict[str, ClassRecord]:
        """Every trained class of the run by key, in the order they were recorded; a class re-evaluated
        before a committed generation has the mean accuracy of its trainings (``Reevaluation``)."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                "SELECT run_id, key, algo_version, individual_id, representative, accuracy, loss,"
                " effective_density, steps, node, wall_time, attempts, fidelity, created FROM classes"
                " WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            )
            out = {r.key: r for r in _records(ClassRecord, rows)}
            extra = self._counted_reevaluations(conn, run_id)
        for key, accs in extra.items():
            if key in out:
                out[key] = replace(out[key], accuracy=_mean([out[key].accuracy, *accs]))
        for key, rec in out.items():
            self._representatives[(run_id, key)] = rec.representative
        return out

    # ---- elite re-evaluation -----------------------------------------------------------------------
    @staticmethod
    def _has_reevaluations(conn: sqlite3.Connection) -> bool:
        return bool(
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reevaluations'"
            ).fetchone()
        )

    def record_reevaluations(self, run_id: str, records: Sequence[Reevaluation]) -> None:
        """Commit re-evaluations of known full-fidelity classes in one transaction, as they arrive (a driver
        killed before their generation commits finds them on resume and trains nothing again)."""
        if not records:
            return
        with self._write("NORMAL") as conn:
            self._require_run(conn, run_id)
            conn.execute(_SCHEMA_REEVALUATIONS)
            for r in records:
                if r.run_id != run_id:
                    raise StoreError(f"re-evaluation of run '{r.run_id}' recorded into run '{run_id}'")
                known = conn.execute(
                    "SELECT fidelity FROM classes WHERE run_id = ? AND key = ?", (run_id, r.key)
                ).fetchone()
                if known is None or known[0] < 1.0:
                    raise StoreError(
                        f"run '{run_id}': class '{r.key}' has no full-fidelity training to re-evaluate"
                    )
                conn.execute(
                    "INSERT INTO reevaluations (run_id, key, batch_order, gen, accuracy, loss, steps, node,"
                    " wall_time, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        r.key,
                        r.batch_order,
                        r.gen,
                        r.accuracy,
                        _loss_in(r.loss),
                        r.steps,
                        r.node,
                        r.wall_time,
                        _now(),
                    ),
                )

    def reevaluations(self, run_id: str) -> list[Reevaluation]:
        """Every recorded re-evaluation of the run, committed generation or not, in the order recorded."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            if not self._has_reevaluations(conn):
                return []
            rows = conn.execute(
                "SELECT run_id, key, batch_order, gen, accuracy, loss, steps, node, wall_time, created"
                " FROM reevaluations WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            )
            return _records(Reevaluation, rows)

    def _counted_reevaluations(self, conn: sqlite3.Connection, run_id: str) -> dict[str, list[float]]:
        """Accuracies of the extra batch orders of each class, from re-evaluations whose generation is
        committed (those of an interrupted generation count only once it is)."""
        if not self._has_reevaluations(conn):
            return {}
        rows = conn.execute(
            "SELECT key, accuracy FROM reevaluations WHERE run_id = ? AND gen <="
            " (SELECT COALESCE(MAX(gen), -1) FROM generations WHERE run_id = ?) ORDER BY key, batch_order",
            (run_id, run_id),
        )
        out: dict[str, list[float]] = {}
        for key, acc in rows:
            out.setdefault(key, []).append(float(acc))
        return out

    def _averaged(self, conn: sqlite3.Connection, run_id: str, inds: list[Individual]) -> list[Individual]:
        """``inds`` with the mean accuracy of their class's trainings where it was re-evaluated (full-fidelity
        members only: a member measured at a lower fidelity keeps that measurement)."""
        extra = self._counted_reevaluations(conn, run_id)
        if not extra:
            return inds
        first = dict(
            conn.execute(
                f"SELECT key, accuracy FROM classes WHERE run_id = ? AND key IN ({', '.join('?' * len(extra))})",
                (run_id, *extra),
            ).fetchall()
        )
        return [
            replace(i, accuracy=_mean([first[i.class_key], *extra[i.class_key]]))
            if i.class_key in extra and i.fidelity >= 1.0
            else i
            for i in inds
        ]

    # ---- generations and individuals ---------------------------------------------------------------
    def commit_generation(
        self,
        run_id: str,
        gen: int,
        individuals: Sequence[Individual],
        generation: GenerationRecord,
    ) -> None:
        """Commit a generation's new individuals and its summary in one transaction: all or nothing.

        Generations are numbered 0, 1, 2, ... without gaps; individual ids must be new (``next_individual_id``);
        every individual's class must already be recorded (``record_evaluation``), and every id in the
        population and front must be committed, before or in this call.
        """
        _check_run_id(run_id, [*individuals, generation])
        if gen != generation.gen:
            raise StoreError(
                f"commit_generation got gen {gen} but a GenerationRecord for gen {generation.gen}"
            )
        gen_row = (
            run_id,
            generation.gen,
            _dumps(list(generation.population), "population"),
            _dumps(list(generation.front), "front"),
            generation.hypervolume,
            generation.evaluated,
            generation.skipped,
            generation.best_accuracy,
            _dumps(generation.rng_state, "rng_state"),
            generation.elapsed,
            generation.created or _now(),
            generation.steps,
            generation.critical_path_steps,
            generation.flops,
            generation.train_seconds,
        )
        new_ids = [i.id for i in individuals]
        with self._write() as conn:
            self._require_run(conn, run_id)
            (last,) = conn.execute("SELECT MAX(gen) FROM generations WHERE run_id = ?", (run_id,)).fetchone()
            expected = 0 if last is None else last + 1
            if gen != expected:
                raise StoreError(f"run '{run_id}' expects generation {expected} next, not {gen}")
            seen: set[int] = set()
            twice = {i for i in new_ids if i in seen or seen.add(i)}
            dup = sorted(twice | self._existing_ids(conn, run_id, new_ids))
            if dup:
                raise StoreError(
                    f"individual ids {dup} already exist in run '{run_id}'; take ids from next_individual_id"
                )
            keys = {i.class_key for i in individuals}
            unknown = sorted(keys - self._existing_keys(conn, run_id, keys))
            if unknown:
                raise StoreError(
                    f"run '{run_id}' has no recorded class {unknown[:3]}; record_evaluation before committing"
                )
            self._insert_individuals(conn, run_id, individuals)
            wanted = set(generation.population) | set(generation.front)
            missing = sorted(wanted - self._existing_ids(conn, run_id, wanted))
            if missing:
                raise StoreError(
                    f"generation {gen} of run '{run_id}' names individuals {missing} that are not committed"
                )
            conn.execute(
                "INSERT INTO generations (run_id, gen, population, front, hypervolume, evaluated, skipped,"
                " best_accuracy, rng_state, elapsed, created, steps, critical_path_steps, flops, train_seconds)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                gen_row,
            )
            conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (gen_row[10], run_id))
        self._settle()

    def _settle(self) -> None:
        """Checkpoint what the checkpointer has not copied yet (after its pass in progress), so the next
        commit starts the WAL afresh: without it the WAL of a writer that never pauses only grows."""
        if self._checkpointer is None:
            return
        with self._checkpointer.lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError:  # another process's checkpoint: the next generation settles
                pass

    _IND_INSERT = (
        "INSERT INTO individuals (run_id, id, generation, mask, parents, operator, origin, class_key,"
        " accuracy, density, effective_density, evaluated, fidelity, steps)"
    )

    def _insert_individuals(
        self, conn: sqlite3.Connection, run_id: str, individuals: Sequence[Individual]
    ) -> None:
        """Insert rows; a mask equal to its class's representative is stored as a zero-length reference.
        Compared in Python with the representative this store committed or read (``_representatives``),
        else by SQLite against the stored one."""
        empty = [i.id for i in individuals if not i.packed]
        if empty:
            raise StoreError(f"individuals {empty[:3]} of run '{run_id}' have an empty mask")
        known, unknown = [], []
        for i in individuals:
            rep = self._representatives.get((run_id, i.class_key))
            row = (
                run_id,
                i.id,
                i.generation,
                i.packed if rep is None or rep != i.packed else b"",
                _dumps(list(i.parents), "parents"),
                i.operator,
                i.origin,
                i.class_key,
                i.accuracy,
                i.density,
                i.effective_density,
                int(i.evaluated),
                i.fidelity,
                i.steps,
            )
            (unknown if rep is None else known).append(row)
        conn.executemany(f"{self._IND_INSERT} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", known)
        conn.executemany(
            f"{self._IND_INSERT} VALUES (?1, ?2, ?3, CASE WHEN ?4 = (SELECT representative FROM classes"
            " WHERE run_id = ?1 AND key = ?8) THEN X'' ELSE ?4 END, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            unknown,
        )

    def commit_imp_round(self, record: IMPRoundRecord, individual: Individual, trained: ClassRecord) -> None:
        """Commit one IMP round in one transaction: its mask as an individual (with its class, recorded if
        new) and the round's numbers. A killed IMP run resumes after its last committed round."""
        _check_run_id(record.run_id, [individual, trained])
        with self._write() as conn:
            self._require_run(conn, record.run_id)
            done = conn.execute(
                "SELECT 1 FROM imp_rounds WHERE run_id = ? AND trajectory = ? AND round = ?",
                (record.run_id, record.trajectory, record.round),
            ).fetchone()
            if done:
                raise StoreError(
                    f"round {record.round} of IMP trajectory {record.trajectory} of run '{record.run_id}'"
                    " is already committed"
                )
            if self._existing_ids(conn, record.run_id, [individual.id]):
                raise StoreError(f"individual id {individual.id} already exists in run '{record.run_id}'")
            conn.execute(
                "INSERT OR IGNORE INTO classes (run_id, key, algo_version, individual_id, representative,"
                " accuracy, loss, effective_density, steps, fidelity, node, wall_time, attempts, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trained.run_id,
                    trained.key,
                    trained.algo_version,
                    trained.individual_id,
                    trained.representative,
                    trained.accuracy,
                    _loss_in(trained.loss),
                    trained.effective_density,
                    trained.steps,
                    trained.fidelity,
                    trained.node,
                    trained.wall_time,
                    trained.attempts,
                    trained.created or _now(),
                ),
            )
            self._insert_individuals(conn, record.run_id, [individual])
            now = record.created or _now()
            conn.execute(
                "INSERT INTO imp_rounds (run_id, trajectory, round, individual_id, result, pruned, created,"
                " wall_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.run_id,
                    record.trajectory,
                    record.round,
                    individual.id,
                    _dumps(record.result, "result"),
                    None if record.pruned is None else bytes(record.pruned),
                    now,
                    record.wall_time,
                ),
            )
            conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (now, record.run_id))

    def imp_rounds(self, run_id: str) -> list[IMPRoundRecord]:
        """Every committed IMP round of the run, by trajectory then round."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                "SELECT run_id, trajectory, round, individual_id, result, pruned, created,"
                f" {self._ledger_columns(conn, 'imp_rounds')} FROM imp_rounds WHERE run_id = ?"
                " ORDER BY trajectory, round",
                (run_id,),
            )
            return _records(IMPRoundRecord, rows)

    def record_confirmation(self, record: ConfirmationRecord) -> None:
        """Commit one confirmation now (a killed confirmation resumes without training it again)."""
        if record.init not in ("own", "reinit"):
            raise StoreError(f"a confirmation's init is 'own' or 'reinit', got {record.init!r}")
        with self._write() as conn:
            self._require_run(conn, record.run_id)
            if not self._existing_ids(conn, record.run_id, [record.individual_id]):
                raise StoreError(
                    f"no individual {record.individual_id} in run '{record.run_id}'"
                    f" ({self._committed_ids(conn, record.run_id)})"
                )
            try:
                conn.execute(
                    "INSERT INTO confirmations (run_id, individual_id, init, seed, protocol, result, created,"
                    " steps, flops, wall_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.run_id,
                        record.individual_id,
                        record.init,
                        int(record.seed),
                        record.protocol,
                        _dumps(record.result, "result"),
                        record.created or _now(),
                        record.steps,
                        record.flops,
                        record.wall_time,
                    ),
                )
            except sqlite3.IntegrityError:
                raise StoreError(
                    f"individual {record.individual_id} of run '{record.run_id}' is already confirmed"
                    f" ({record.init}, seed {record.seed}) under this protocol"
                ) from None

    def confirmations(self, run_id: str, protocol: str | None = None) -> list[ConfirmationRecord]:
        """The run's confirmations (under ``protocol`` only, if given), by individual, init, seed."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            where, args = ("AND protocol = ?", (run_id, protocol)) if protocol else ("", (run_id,))
            rows = conn.execute(
                "SELECT run_id, individual_id, init, seed, protocol, result, created,"
                f" {self._ledger_columns(conn, 'confirmations')} FROM confirmations"
                f" WHERE run_id = ? {where} ORDER BY individual_id, init, seed",
                args,
            )
            return _records(ConfirmationRecord, rows)

    _GEN_SELECT = (
        "SELECT run_id, gen, population, front, hypervolume, evaluated, skipped, best_accuracy, rng_state, elapsed,"
        " created, {ledger} FROM generations WHERE run_id = ?"
    )

    def last_generation(self, run_id: str) -> GenerationRecord | None:
        """The last committed generation (where a resumed run continues from), or None before the first."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            return _record(
                GenerationRecord,
                conn.execute(f"{self._gen_select(conn)} ORDER BY gen DESC LIMIT 1", (run_id,)),
            )

    def generations(self, run_id: str) -> list[GenerationRecord]:
        with self._sql() as conn:
            self._require_run(conn, run_id)
            return _records(
                GenerationRecord, conn.execute(f"{self._gen_select(conn)} ORDER BY gen", (run_id,))
            )

    def _gen_select(self, conn: sqlite3.Connection) -> str:
        return self._GEN_SELECT.format(ledger=self._ledger_columns(conn, "generations"))

    _IND_SELECT = (  # a zero-length mask is the class's representative
        "SELECT i.run_id, i.id, i.generation,"
        " CASE WHEN length(i.mask) = 0 THEN c.representative ELSE i.mask END AS packed,"
        " i.parents, i.operator, i.origin, i.class_key, i.accuracy, i.density, i.effective_density, i.evaluated, i.fidelity,"
        " {ledger}"
        " FROM individuals i LEFT JOIN classes c ON c.run_id = i.run_id AND c.key = i.class_key"
        " WHERE i.run_id = ?"
    )

    def _ind_select(self, conn: sqlite3.Connection) -> str:
        return self._IND_SELECT.format(ledger=self._ledger_columns(conn, "individuals", "i."))

    @staticmethod
    def _shapes(conn: sqlite3.Connection, run_id: str) -> dict[str, tuple[int, ...]]:
        (text,) = conn.execute("SELECT shapes FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _shape_map(text)

    def run_counts(self, run_id: str) -> dict[str, Any]:
        """What a runs listing shows, by SQL aggregates (no mask is read): ``generation`` the last committed
        one (None before the first), ``individuals``, ``trained`` classes, ``best_accuracy`` (None if empty)."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            n, best = conn.execute(
                "SELECT COUNT(*), MAX(accuracy) FROM individuals WHERE run_id = ?", (run_id,)
            ).fetchone()
            (trained,) = conn.execute("SELECT COUNT(*) FROM classes WHERE run_id = ?", (run_id,)).fetchone()
            (gen,) = conn.execute("SELECT MAX(gen) FROM generations WHERE run_id = ?", (run_id,)).fetchone()
        return {"generation": gen, "individuals": n, "trained": trained, "best_accuracy": best}

    def ledger_sums(self, run_id: str) -> tuple[int, int, int, int]:
        """The generations' recorded training steps and critical paths summed by SQL (no mask is read), with
        how many generations there are and how many lack either number: (generations, steps, critical path,
        missing)."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            if "NULL" in self._ledger_columns(conn, "generations"):  # an older store read as it is
                (n,) = conn.execute("SELECT COUNT(*) FROM generations WHERE run_id = ?", (run_id,)).fetchone()
                return n, 0, 0, n
            n, steps, path, missing = conn.execute(
                "SELECT COUNT(*), TOTAL(steps), TOTAL(critical_path_steps),"
                " SUM(steps IS NULL OR critical_path_steps IS NULL) FROM generations WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        return n, int(steps), int(path), int(missing or 0)

    def isomorph_hits(self, run_id: str) -> int:
        """Individuals whose objectives were reused from a class already trained (not ``evaluated``)."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM individuals WHERE run_id = ? AND evaluated = 0", (run_id,)
            ).fetchone()
        return n

    def masks_stored_whole(self, run_id: str, since_generation: int = 0) -> int:
        """Individuals of generation ``since_generation`` on whose mask the store holds whole; the others
        equal their class's representative, and their rows refer to it (a zero-length mask)."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM individuals WHERE run_id = ? AND generation >= ? AND length(mask) > 0",
                (run_id, since_generation),
            ).fetchone()
        return n

    def individuals(self, run_id: str, ids: Sequence[int] | None = None) -> list[Individual]:
        """Committed individuals: all by id, or those of ``ids`` in that order (a missing id raises)."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            shapes = self._shapes(conn, run_id)
            if ids is None:
                rows = conn.execute(f"{self._ind_select(conn)} ORDER BY i.id", (run_id,))
                return self._averaged(conn, run_id, _records(Individual, rows, shapes=shapes))
            ids = [int(i) for i in ids]
            found: dict[int, Individual] = {}
            for chunk in _chunks(sorted(set(ids))):
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(f"{self._ind_select(conn)} AND i.id IN ({marks})", (run_id, *chunk))
                found.update((r.id, r) for r in _records(Individual, rows, shapes=shapes))
            missing = sorted(set(ids) - found.keys())
            if missing:
                raise StoreError(
                    f"no individuals {missing} in run '{run_id}' ({self._committed_ids(conn, run_id)})"
                )
            return self._averaged(conn, run_id, [found[i] for i in ids])

    def individual(self, run_id: str, id: int) -> Individual:
        with self._sql() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(f"{self._ind_select(conn)} AND i.id = ?", (run_id, int(id)))
            ind = _record(Individual, rows, shapes=self._shapes(conn, run_id))
            if ind is None:
                raise StoreError(
                    f"no individual {id} in run '{run_id}' ({self._committed_ids(conn, run_id)})"
                )
            return self._averaged(conn, run_id, [ind])[0]

    def next_individual_id(self, run_id: str) -> int:
        """One past the largest committed id: ids of an interrupted generation are handed out again."""
        with self._sql() as conn:
            self._require_run(conn, run_id)
            (hi,) = conn.execute("SELECT MAX(id) FROM individuals WHERE run_id = ?", (run_id,)).fetchone()
            return 0 if hi is None else hi + 1
