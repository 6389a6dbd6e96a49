"""The ``servegen`` command line.

::

    servegen models DATA_DIR [--json]
    servegen summary SOURCE [--model M] [--preset P] [--json]
    servegen generate --spec SPEC --format F -o OUT [--overwrite] [--chunk-s N]
                      [--naive poisson|pooled_lengths|poisson_pooled|constant] [--seed N] [--block-size T] [-q]
    servegen validate --spec SPEC [--workload FILE] [--preset P] [--seed N] [--json]
    servegen spec-template [--model M] [--data-dir D] [--start-s S] [--duration-s D]
                           [--seed N] [--overwrite] -o FILE
    servegen spec-template --trace FILE [--preset P] [--fit-length-correlation]
                           [--fit-prefix [--block-size T]]
                           [--start-s S] [--duration-s D] [--seed N] [--overwrite] -o FILE
    servegen whatif (--spec SPEC | --trace FILE) --model M --gpu G [--slo-ttft-p99 S]
                    [--slo-tpot-p99 S] [--calibration FILE ...] [--baselines LIST] [--json]

``generate`` composes with :func:`servegen_core.generate.compose.plan_workload` and writes
with :func:`servegen_core.export.writer.write_chunks`: JSONL/CSV formats are streamed chunk by chunk
(``--chunk-s``, default one hour of span time) with a progress bar on stderr,
and are byte for byte what ``export_trace(compose(spec).trace, ...)`` writes;
``parquet`` is written whole as one file, or as a folder of part files when
``--chunk-s`` is given. The spec actually used (after ``--seed``/``--naive``)
is written beside the output as ``OUT.spec.json``. Nothing partial is left
behind on an error or an interrupt.

:func:`main` parses ``argv`` and returns an exit code: 0 on success, 1 when
``validate`` finds a failing check, 2 for a usage, spec, data or file-system
error, 3 for anything unexpected (a bug), 130 on Ctrl-C. Errors the package
raises on purpose (:class:`~servegen_core.errors.ServeGenError`: spec, data,
export, option and limit errors) and operating-system errors (a missing file,
a folder without write access, a full disk) print one line,
``servegen: error: <message>``, on stderr and no traceback. An unexpected error
prints ``servegen: internal error: <type>: <message>``; ``--debug`` (before or
after the subcommand) adds its traceback.

``DATA_DIR`` (and a ``summary`` SOURCE folder) may be ``demo`` (the embedded
synthetic demo data) or ``shared`` (the shared reference data), a folder
holding ``<category>/<model>/`` folders, a folder holding such a ``servegen/``
folder, or one model's folder.

Modules: :mod:`~servegen_core.cli.main` (:func:`main`, errors and exit codes),
:mod:`~servegen_core.cli.parser` (the argument parser and the table of commands), one module per
command (:mod:`~servegen_core.cli.models`, :mod:`~servegen_core.cli.summary`,
:mod:`~servegen_core.cli.generate`, :mod:`~servegen_core.cli.validate`,
:mod:`~servegen_core.cli.spec_template`, :mod:`~servegen_core.cli.whatif`, each with
``run(args, out) -> int``, imported only when its command runs), and what they share:
:mod:`~servegen_core.cli.common` (name, exit codes, :class:`CliError`),
:mod:`~servegen_core.cli.inputs` (data folders, trace and spec files),
:mod:`~servegen_core.cli.output` (tables, JSON, progress bar). The package attribute ``main``
is the function (the console script ``servegen_core.cli:main``), not the module.
"""

from servegen_core.cli.inputs import DATA_SHORTCUTS, resolve_data_dir
from servegen_core.cli.main import main
from servegen_core.cli.parser import build_parser

__all__ = ["DATA_SHORTCUTS", "build_parser", "main", "resolve_data_dir"]
