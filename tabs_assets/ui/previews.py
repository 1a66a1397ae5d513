"""Figure previews for the Dagster UI: thumbnails stored with an entry, embedded within a
byte budget (the event log keeps them)."""

from collections.abc import Collection
from typing import Any

THUMBNAIL_WIDTH = 420  # px: readable in the metadata panel


THUMBNAILS = 2  # images embedded per materialization; the rest are listed with their paths


PREVIEW_BUDGET_BYTES = 60_000  # cap on embedded images per materialization (event-log size)


PREVIEW_DIR = "previews"


def _full_size(entry_path: Any, name: str) -> Any:
    """The full-size file behind a preview name (``previews/x.png`` -> ``x.png``)."""
    from pathlib import Path

    path = Path(entry_path) / name
    if path.parent.name == PREVIEW_DIR and (path.parent.parent / path.name).is_file():
        return path.parent.parent / path.name
    return path


def thumbnail_png(path: Any, width: int = THUMBNAIL_WIDTH) -> bytes:
    """A small palette PNG of a figure, made from the full-size file (crisp, not 40 dpi)."""
    import io

    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize(
                (width, max(1, round(image.height * width / image.width))), Image.LANCZOS
            )
        image = image.quantize(colors=96, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


def thumbnail_name(name: str) -> str:
    """Where a figure's thumbnail is stored in its entry (``x.png`` -> ``previews/x.png``)."""
    return f"{PREVIEW_DIR}/{name}"


def write_thumbnails(directory: Any, names: list[str]) -> list[str]:
    """Thumbnails of the figures ``names`` of an entry being written, stored beside them so a
    cache hit embeds them without drawing; returns the figures that have one."""
    from pathlib import Path

    made = []
    for name in names:
        try:
            data = thumbnail_png(Path(directory) / name)
        except Exception:  # not an image PIL reads: listed by path only
            continue
        target = Path(directory) / thumbnail_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        made.append(name)
    return made


def previews_markdown(
    entry_path: Any, names: list[str], stored: Collection[str] | None = None
) -> str:
    """At most THUMBNAILS embedded thumbnails within the byte budget, then every file's path.

    ``stored``: the figures whose thumbnails the entry holds (``previews/<name>``); None for an
    entry made before thumbnails were stored: they are drawn from the full-size files.
    """
    import base64
    from pathlib import Path

    parts, used = [], 0
    listed = []
    for name in names:
        full = _full_size(entry_path, name)
        embedded = False
        if len(parts) < THUMBNAILS:
            try:
                if stored is None:
                    data = thumbnail_png(full)
                else:
                    thumbnail = Path(entry_path) / thumbnail_name(name)
                    data = thumbnail.read_bytes() if name in stored else b""
            except Exception:  # not an image PIL reads: list it only
                data = b""
            if data and used + len(data) * 4 // 3 <= PREVIEW_BUDGET_BYTES:
                encoded = base64.b64encode(data).decode("ascii")
                parts.append(f"**{full.name}**\n\n![{full.name}](data:image/png;base64,{encoded})")
                used += len(encoded)
                embedded = True
        if not embedded:
            listed.append(f"- `{full}`")
    if listed:
        parts.append(
            "Full-size files (also in the MLflow run's artifacts):\n\n" + "\n".join(listed)
        )
    return "\n\n".join(parts)
