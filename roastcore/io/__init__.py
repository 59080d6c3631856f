"""Importers and exporters: every file format becomes a `Profile` or an `ImportFailure`.

    from roastcore.io import read_profile, import_folder, load_source, ImportFailure

Formats: Artisan .alog (`read_alog`/`write_alog`), Onyx-style JSON (`read_onyx`/`write_json`),
CSV (`read_csv`/`write_csv`). See docs/importers.md for the rules and rejection reasons.
"""

from roastcore.io.alog import read_alog, write_alog
from roastcore.io.base import MAX_FILE_BYTES, ImportFailure
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
from roastcore.io.sources import dataset_fingerprint, dataset_stats, load_source

__all__ = [
    "MAX_FILE_BYTES",
    "DatasetEntry",
    "ImportFailure",
    "ImportReport",
    "Rejection",
    "UploadError",
    "clean_leftovers",
    "dataset_fingerprint",
    "dataset_stats",
    "import_folder",
    "import_path",
    "import_uploads",
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
