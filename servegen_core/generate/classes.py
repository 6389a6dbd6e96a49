"""SLO classes of a composed workload: the class stage of :class:`~servegen_core.generate.plan.ComposePlan`.

A spec with an ``slo_classes`` section (:class:`servegen_core.spec.SloClasses`) gives every
request of its workload the class of its client (:data:`CLASS_COLUMNS`): ``slo_class`` (the
class named for the client in ``clients``, else ``default``) and ``slo_priority`` (that
class's priority; lower is served first). The stage runs last, on every chunk, and draws
nothing: without the section the workload is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import polars as pl

from servegen_core.spec import SloClasses

__all__ = ["CLASS_COLUMNS", "class_chunks", "with_classes"]

#: The columns the class stage adds.
CLASS_COLUMNS = ("slo_class", "slo_priority")


def with_classes(frame: pl.DataFrame, classes: SloClasses) -> pl.DataFrame:
    """``frame`` with ``slo_class`` and ``slo_priority`` from its ``client_id`` column."""
    by_client = dict(classes.clients)
    prio = {name: cls.priority for name, cls in classes.classes}
    client = pl.col("client_id").cast(pl.String)
    name = client.replace_strict(by_client, default=classes.default, return_dtype=pl.String) if by_client else pl.lit(classes.default, dtype=pl.String)
    return frame.with_columns(name.alias("slo_class")).with_columns(
        pl.col("slo_class").replace_strict(prio, return_dtype=pl.Int64).alias("slo_priority")
    )


def class_chunks(chunks: Iterable[pl.DataFrame], classes: SloClasses) -> Iterator[pl.DataFrame]:
    """:func:`with_classes` of every frame of ``chunks``."""
    for frame in chunks:
        yield with_classes(frame, classes)
