"""Importers and exporters: every file format becomes a `Profile` or an `ImportFailure`.

    from roastcore.io import read_profile, import_folder, load_source, ImportFailure

Formats: Artisan .alog (`read_alog`/`write_alog`), Onyx-style JSON (`read_onyx`/`write_json`),
CSV (`read_csv`/`write_csv`). See docs/importers.md for the rules and rejection reasons.

Every importer is bounded in memory and time for any input (issue 13): .alog and JSON go through
the linear-time parser in `roastcore.io.literal`, only regular files are read, zip directories
are checked before parsing, and reasons are sanitised in one place (`base.clean_reason`). Sizes
are written with `format_size` (binary units: the file limit reads "20 MiB" everywhere), file
names with `display_name` (control characters escaped).
"""

from roastcore.io.alog import read_alog, write_alog
from roastcore.io.base import MAX_FILE_BYTES, MAX_SAMPLES, ImportFailure, display_name, format_size
from roastcore.io.csv import read_csv, write_csv
from roastcore.io.folder import ImportReport, Rejection, import_folder, read_profile
from roastcore.io.onyx import read_onyx, write_json
from roastcore.io.registry import (
    DatasetEntry,
    UploadError,
    clean_leftovers,
    import_path,
    import_uploads,
    list_datasets,
    save_dataset,
)
from roastcore.io.sources import dataset_fingerprint, dataset_stats, is_multi_source, load_source

__all__ = [
    "MAX_FILE_BYTES",
    "DatasetEntry",
    "MAX_SAMPLES",
    "ImportFailure",
    "ImportReport",
    "Rejection",
    "UploadError",
    "clean_leftovers",
    "dataset_fingerprint",
    "dataset_stats",
    "display_name",
    "format_size",
    "import_folder",
    "import_path",
    "import_uploads",
    "is_multi_source",
    "list_datasets",
    "load_source",
    "read_alog",
    "read_csv",
    "read_onyx",
    "read_profile",
    "save_dataset",
    "write_alog",
    "write_csv",
    "write_json",
]
