"""The store of MetaSchedule tuning records, and applying them when a TVM library is built.

Layout: ``$MVD_CACHE/tvm-tuning/<target key>/<run name>/`` holds one MetaSchedule ``JSONDatabase``
(``database_workload.json``, ``database_tuning_record.json``, ``logs/``) plus our ``mvd-tuning.json`` manifest
(target, profile, TVM version, one entry per tuning run). The target key is the profile name and a hash of its
TVM target dict and the TVM version, because a MetaSchedule database does **not** filter by target: a query
returns a record tuned for x86 just as readily for aarch64 (measured with TVM 0.27), so records of different
targets must never share a folder. Within a target, every run folder is searched (``UnionDatabase``: the best
record of any run wins), so tuning TopFormer-T and then TopFormer-S helps both where their kernels coincide.

Records are keyed by the structural hash of each TIR workload after :func:`prepare_module` (legalize + fuse):
weights are arguments of those functions, not part of them, so records survive retraining, but the input size is
part of every shape, so each size needs its own tuning.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobilevit_deploy.atomic import atomic_path
from mobilevit_deploy.errors import DeployError

from .cpu_profiles import CpuProfile
from .runner_build import cache_dir

RECORDS_DIRNAME = "tvm-tuning"
MANIFEST = "mvd-tuning.json"
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
MODULE_EQUALITY = "structural"


class UntunedWarning(UserWarning):
    """A TVM library was built without tuning records: it runs tens of times slower than tuned code."""


def target_key(profile: CpuProfile, android: bool = False) -> str:
    """Folder name for one target: readable profile name, then a hash of what decides the generated code."""
    payload = {"target": profile.target_dict(android), "tvm": importlib.metadata.version("apache-tvm")}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    return f"{profile.name}{'-android' if android else ''}-{digest}"


def records_root(profile: CpuProfile, android: bool = False) -> Path:
    """Where records for this target live by default; every run folder under it is searched."""
    return cache_dir() / RECORDS_DIRNAME / target_key(profile, android)


def has_database(folder: Path) -> bool:
    return (folder / WORKLOAD_FILE).is_file() and (folder / RECORD_FILE).is_file()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def write_manifest(folder: Path, profile: CpuProfile, android: bool, run: dict[str, Any]) -> None:
    """Append one run to the folder's manifest (atomically: a reader never sees half a file)."""
    manifest = read_manifest(folder) or {"profile": profile.name, "android": android,
                                         "target": profile.target_dict(android),
                                         "tvm": importlib.metadata.version("apache-tvm"), "runs": []}
    manifest["runs"].append(run)
    with atomic_path(Path(folder) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=str))


def check_folder_target(folder: Path, profile: CpuProfile, android: bool) -> None:
    """Refuse a database tuned for another target (MetaSchedule itself would apply it silently)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return  # a database written by plain MetaSchedule: nothing to check against
    wanted = profile.target_dict(android)
    if manifest.get("target") != wanted:
        raise DeployError(f"the tuning records in {folder} were tuned for {manifest.get('target')}, not for "
                          f"profile '{profile.name}' ({wanted})",
                          hint="tune for this profile, or pass the records folder of the matching profile")


def database_folders(profile: CpuProfile, android: bool = False, db: str | Path | None = None) -> list[Path]:
    """The database folders a build searches: ``db`` alone when given (it must exist), else every run folder
    of the target's default root (possibly none)."""
    if db is not None:
        folder = Path(db)
        if not has_database(folder):
            raise DeployError(f"{folder} holds no MetaSchedule database ({WORKLOAD_FILE} + {RECORD_FILE})",
                              hint="pass the folder given to `mvd tune --db`, or leave it out to use the default")
        check_folder_target(folder, profile, android)
        return [folder]
    root = records_root(profile, android)
    return sorted(p for p in root.iterdir() if has_database(p)) if root.is_dir() else []


def records_fingerprint(profile: CpuProfile, android: bool = False, db: str | Path | None = None) -> str | None:
    """A cheap hash of the database files a build would search (paths, sizes, mtimes), None when there are none.

    The artifact cache keys on it, so tuning more invalidates a cached untuned library without TVM being loaded.
    """
    folders = database_folders(profile, android, db)
    if not folders:
        return None
    digest = hashlib.sha256()
    for folder in folders:
        for name in (WORKLOAD_FILE, RECORD_FILE):
            stat = (folder / name).stat()
            digest.update(f"{(folder / name).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def prepare_module(mod: Any, target: Any) -> Any:
    """Legalize and fuse a Relax module the way tuning sees it: MetaSchedule tasks exist only after this.

    Both :func:`tvm_tuning.tune` and :func:`apply_records` call it, so workload hashes agree. Weight-free
    decompositions first (batch norm for inference), then the ``zero`` pipeline: LegalizeOps, FoldConstant,
    FuseOps, FuseTIR (called outside any database scope, so it applies nothing itself).
    """
    import tvm
    from tvm import relax

    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
              relax.get_pipeline("zero")]
    with target:
        return tvm.transform.Sequential(passes)(mod)


def open_databases(folders: list[Path]) -> Any:
    """One MetaSchedule database over several folders (read only): the best record of any folder wins."""
    from tvm.s_tir import meta_schedule as ms

    dbs = [ms.database.JSONDatabase(work_dir=str(f), allow_missing=False, module_equality=MODULE_EQUALITY)
           for f in folders]
    return dbs[0] if len(dbs) == 1 else ms.database.UnionDatabase(*dbs)


@dataclass
class RecordsMatch:
    """What a build found in the records store; goes into the build report as ``tuning``."""

    tuned: bool
    databases: list[str]
    tasks: int | None = None  # None: nothing was searched (no database for this target)
    tasks_with_records: int = 0
    untuned_tasks: list[str] = field(default_factory=list)
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.tuned:
            return (f"tuned: records for {self.tasks_with_records}/{self.tasks} kernels applied from "
                    f"{', '.join(self.databases)}")
        return f"untuned: {self.warning}"


def _input_size(mod: Any) -> str:
    """``SxS`` from the module's first input, for the tune hint (best effort)."""
    try:
        shape = [int(d) for d in mod["main"].params[0].ty.shape]
        return f" --input-size {shape[-1]}" if len(shape) == 4 else ""
    except Exception:  # dynamic or unusual signature: the hint just lacks the size
        return ""


def _untuned_message(mod: Any, profile: CpuProfile, folders: list[Path], explicit: bool) -> str:
    arch = "host" if profile.is_host else "aarch64"
    where = ", ".join(str(f) for f in folders) if folders else str(records_root(profile))
    what = "no tuning records match this model" if folders else "no tuning records exist"
    rpc = "" if profile.is_host else " --rpc-tracker HOST:PORT --rpc-key KEY"
    db = f" --db {folders[0]}" if explicit and folders else ""
    return (f"the TVM library is untuned ({what} for profile '{profile.name}' in {where}); untuned code is "
            f"20-50x slower than tuned code. Tune it first: mvd tune MODEL --target tvm --arch {arch} "
            f"--cpu {profile.name}{_input_size(mod)}{rpc}{db}")


def apply_records(mod: Any, profile: CpuProfile, target: Any, android: bool = False,
                  db: str | Path | None = None) -> tuple[Any | None, RecordsMatch]:
    """Find records for ``mod``'s kernels; return ``(prepared module with records applied, match)``.

    The module is None when no kernel had a record: the caller keeps its own (unfused) path, and the match
    carries the warning text. Without any database for the target this costs nothing (no preparation).
    """
    folders = database_folders(profile, android, db)
    if not folders:
        return None, RecordsMatch(False, [], warning=_untuned_message(mod, profile, folders, db is not None))
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    prepared = prepare_module(mod, target)
    database = open_databases(folders)
    tasks = ms.relax_integration.extract_tasks(prepared, target, module_equality=MODULE_EQUALITY)
    missing = [t.task_name for t in tasks if database.query_tuning_record(t.dispatched[0], target, "main") is None]
    match = RecordsMatch(tuned=len(missing) < len(tasks), databases=[str(f) for f in folders], tasks=len(tasks),
                         tasks_with_records=len(tasks) - len(missing), untuned_tasks=missing)
    if not match.tuned:
        match.warning = _untuned_message(mod, profile, folders, db is not None)
        return None, match
    with target, database:
        return relax.transform.MetaScheduleApplyDatabase()(prepared), match


def warn_untuned(match: RecordsMatch) -> None:
    """The one warning for an untuned library (``UntunedWarning``; tests and callers can filter it)."""
    if not match.tuned and match.warning:
        warnings.warn(match.warning, UntunedWarning, stacklevel=3)
