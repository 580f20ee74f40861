"""Run folders: `RunFolder` (the layout and every file in it), `RunRecord` (config.json, typed and checked) and
`FolderLock` (the lock a writer holds). The only code that names a file inside a run folder."""

from textgen.runfolder.folder import (
    CHECKPOINTS,
    OLD_SUFFIX,
    OWN_FILES,
    RUN_FILES,
    STAGING_SUFFIX,
    WRITER_FILES,
    RunFolder,
    check_init_from,
    foreign_entries,
    holds_run,
)
from textgen.runfolder.lock import FolderLock, lock_holder
from textgen.runfolder.record import CONFIG_FORMAT_VERSION, RunRecord, new_record

__all__ = [
    "CHECKPOINTS",
    "CONFIG_FORMAT_VERSION",
    "OLD_SUFFIX",
    "OWN_FILES",
    "RUN_FILES",
    "STAGING_SUFFIX",
    "WRITER_FILES",
    "FolderLock",
    "RunFolder",
    "RunRecord",
    "check_init_from",
    "foreign_entries",
    "holds_run",
    "lock_holder",
    "new_record",
]
