"""Export: the composed workload as a file (download or save to a path), its spec JSON and the CLI command."""

import streamlit as st

import core_calls
import export_files
import settings
from plaintext import md
from servegen_core.export.formats import FORMATS, dropped_columns, export_block_size, spec_sidecar_path, usage_hint
from servegen_core.export.writer import ChunkWriter, WriteProgress, write_chunks
from servegen_core.paths import EXPORT_DIR_ENV, export_dir
from widgets import page

view = page.header("Export")
spec, pool, plan = core_calls.spec_plan_or_stop(view)

fmt = st.selectbox(
    "Format", list(FORMATS), key="ex_format", persist_state="session",
    format_func=lambda f: f"{f} — {FORMATS[f].description}",
)
info = FORMATS[fmt]
if fmt == "parquet":
    st.caption("Saved to a path, Parquet is streamed as a folder of part files; the download is one file.")
block_size = export_block_size(fmt, plan.output_columns)  # the block size the export writes hash_ids at
st.caption(f"Reference: {info.citation}")
if info.usage:
    st.caption("Replay (fill <MODEL>, <URL>, <TOKENIZER>; <N> is the file's request count, printed once it is written):")
    st.code(usage_hint(fmt, f"workload{info.extension}", block_size), language="bash")
expected = plan.expected_requests
try:
    limit = settings.max_download_requests()
except ValueError as exc:
    core_calls.show_error(exc)
    st.stop()

st.subheader("Download")
if expected > limit:
    st.info(
        f"The workload has about {expected:,.0f} requests, more than the {limit:,} offered as a browser download "
        f"({settings.MAX_DOWNLOAD_ENV}): save it to a path below (written in chunks)."
    )
else:
    name = export_files.export_name(fmt)
    st.download_button(
        f"Download {name} ({core_calls.request_count(spec, expected)})", export_files.deferred_export(spec, fmt, pool), file_name=name,
        mime="application/octet-stream", key="ex_download", type="primary",
    )
    dropped = dropped_columns(fmt, plan.output_columns)
    st.caption(
        "The file is written when you click (once per spec and format)."
        + (f" Columns the {fmt} format cannot hold are left out: {', '.join(dropped)}." if dropped else "")
    )

st.subheader("Save to a path")
folder = export_dir()
if folder is None:
    st.info(f"Saving to a path is off on this server ({EXPORT_DIR_ENV} is empty): use the download above.")
else:
    st.caption(md(f"Files are saved under {folder} (set by {EXPORT_DIR_ENV}); a relative name is relative to that folder."))
    s1, s2 = st.columns([3, 1])
    default_name = f"workload{info.extension}"
    typed = s1.text_input("Output file", value=default_name, key=f"ex_path_{fmt}", persist_state="session")
    overwrite = s2.checkbox("Overwrite", key="ex_overwrite", help="Replace an existing file (never a folder).")
    chunk_min = s2.number_input("Chunk (minutes of workload)", min_value=1, value=10, step=1, key="ex_chunk", persist_state="session")
    if st.button("Save", key="ex_save"):
        chunk_s = float(chunk_min) * 60
        n_chunks = max(1, int(-(-plan.span_duration_s // chunk_s)))
        bar = st.progress(0.0, text="Composing and writing…")
        try:
            target = export_files.export_target(typed, overwrite=overwrite)

            def show(done: WriteProgress) -> None:
                text = f"chunk {done.chunks} of at most {n_chunks}: {done.rows:,} requests written"
                bar.progress(min(done.chunks / n_chunks, 1.0), text=text)

            writer = ChunkWriter(target, fmt, spec=spec, overwrite=overwrite, note=None)
            result = write_chunks(writer, plan.iter_chunks(chunk_s), progress=show)
        except Exception as exc:  # noqa: BLE001 - shown as a message
            bar.empty()
            core_calls.show_error(exc)
        else:
            bar.progress(1.0, text="done")
            st.success(md(f"Wrote {result.rows:,} requests ({result.bytes / 1024 / 1024:,.2f} MB) to {result.path}; spec beside it: {spec_sidecar_path(result.path)}."))
            if info.usage:
                st.code(
                    usage_hint(
                        fmt, result.path, result.block_size, rows=result.rows, max_request_tokens=result.max_request_tokens
                    ),
                    language="bash",
                )

st.subheader("Spec and command line")
spec_json = spec.to_json()
st.code(spec_json, language="json")
st.download_button("Download spec.json", spec_json, file_name="spec.json", mime="application/json", key="ex_spec")
st.code(export_files.generate_command(fmt, f"workload{info.extension}"), language="bash")
st.caption("The same spec and seed give the same workload: the command writes the same bytes as the download (Parquet aside, which it streams as a folder of parts when --chunk-s is given).")
