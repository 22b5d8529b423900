"""Find the images of a data folder, split them, and decode them once.

Layouts understood (:func:`read_layout`):

(a) ``DIR/train/<class>/``, ``DIR/val/<class>/``, ``DIR/test/<class>/`` (Kaggle's
    chest_xray).  A ``val/`` too small to select on (under ``SMALL_VAL``
    images, Kaggle's has 16) is merged into train with a warning, and
    validation is carved from train instead; a larger one is used as given.
(b) ``DIR/train/<class>/`` and ``DIR/test/<class>/``: validation is carved.
(c) ``DIR/<class>/`` only: a test split is carved once, seeded, grouped by
    patient, and recorded in ``<cache dir>/splits/`` so that
    :func:`load_test` of the same folder gives exactly the carved files.

Validation is carved from train with scikit-learn's ``StratifiedGroupKFold``:
stratified by class, a patient (group id parsed from the file name) never on
both sides.  Decoded images are cached (:mod:`lungsearch.cache`).  The test
split is read only by :func:`load_test` (and, with ``dedupe``, its bytes are
hashed, never decoded, so that copies of test images leave train).
``--data demo`` is a synthetic set made by :mod:`lungsearch.demo`.

One module per concern, imported in this order (each uses only those above it):

- :mod:`~lungsearch.data.base`: :class:`DataError`, :class:`Arrays`, :class:`SearchData`, extensions, color modes
- :mod:`~lungsearch.data.limits`: image sizes that cannot work: the bounds the config checks, the memory checked before decoding
- :mod:`~lungsearch.data.groups`: patient ids from file names, the grouped validation split
- :mod:`~lungsearch.data.layout`: the files of a folder by split and class; layout (c)'s carved test split
- :mod:`~lungsearch.data.decoding`: Pillow decoding in threads, cached on disk
- :mod:`~lungsearch.data.dedupe`: byte-identical files, by hash
- :mod:`~lungsearch.data.load`: :func:`load_search_data` and :func:`load_test`

Messages name the run's settings, not the CLI's flags: ``{image_size}`` in a
:class:`DataError` or :class:`DataWarning` reads ``image_size`` from ``str()``
and ``--image-size`` from the CLI (:func:`word`).

Every public name is re-exported here: callers use ``lungsearch.data.<name>``.
A test that monkeypatches a module-level name patches the module that holds it.
"""

from lungsearch.data.base import COLOR_MODES, IMAGE_EXTENSIONS, SETTINGS, Arrays, DataError, DataWarning, SearchData, channels, word
from lungsearch.data.limits import COPIES_WHILE_TRAINING, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, available_memory, check_memory
from lungsearch.data.groups import DEFAULT_GROUP_PATTERN, GROUP_SCHEMES, check_coverage, group_coverage, group_report, patient_groups, split_cached, split_validation
from lungsearch.data.layout import TEST_FRACTION, Layout, content_fingerprint, ignored_message, not_a_folder, read_layout, scan
from lungsearch.data.decoding import DECODER_VERSION, Decoded, decode, decode_all, decode_cached, summarize_modes, thread_count
from lungsearch.data.dedupe import duplicate_sets, hash_files
from lungsearch.data.load import DEMO, SMALL_VAL, load_search_data, load_test

__all__ = [
    "COLOR_MODES", "COPIES_WHILE_TRAINING", "DECODER_VERSION", "DEFAULT_GROUP_PATTERN", "DEMO", "GROUP_SCHEMES", "IMAGE_EXTENSIONS",
    "MAX_IMAGE_SIZE", "MIN_IMAGE_SIZE", "SETTINGS", "SMALL_VAL", "TEST_FRACTION",
    "Arrays", "DataError", "DataWarning", "Decoded", "Layout", "SearchData",
    "available_memory", "channels", "check_memory", "content_fingerprint", "decode", "decode_all", "decode_cached", "duplicate_sets",
    "check_coverage", "group_coverage", "group_report", "hash_files", "ignored_message", "load_search_data", "load_test", "not_a_folder",
    "patient_groups", "read_layout", "scan", "split_cached", "split_validation", "summarize_modes", "thread_count",
]
