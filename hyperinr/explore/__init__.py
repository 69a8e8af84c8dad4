"""Explore the generated INR live: a browser app (`server`) over pure frame logic (`frames`).

`open_explorer` gathers what a session compares: the model given, the pipeline's other trained
networks found beside it (teacher, baselines), LERP and the ground truth from the dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hyperinr import api
from hyperinr.explore.frames import Explorer, FrameRequest, FrameResult, parse_camera
from hyperinr.infra.atomic import atomic_path
from hyperinr.models import registry


def pipeline_model_names() -> tuple[str, ...]:
    """The kinds a pipeline run keeps at results/<ds>/<name>/model.pt (the ablation-only kinds
    live under ablation/)."""
    return tuple(n for n, k in registry.kinds().items() if k.trained_by != "ablation")


def open_explorer(
    model: str | Path,
    *,
    dataset: str | Path | None = None,
    scene: str | Path | None = None,
    siblings: bool = True,
    device: str = "auto",
) -> Explorer:
    """An Explorer for `model` and, when `siblings`, every other trained network of the same
    pipeline run (results/<ds>/<name>/model.pt, `pipeline_model_names`)."""
    main = api.load(model, dataset=dataset, device=device)
    if main.dataset is None:
        raise ValueError(f"{model}: no dataset.zarr found beside it: pass --dataset")
    models = {registry.get(main.kind).name: main}
    if siblings:
        root = main.dataset.parent
        for name in pipeline_model_names():
            path = root / name / "model.pt"
            if name in models or not path.is_file():
                continue
            if path.resolve() == Path(model).resolve():
                continue
            models[name] = api.load(path, dataset=main.dataset, device=device)
    return Explorer(main.dataset, models, scene=scene, device=device)


def parse_params(explorer: Explorer, texts: list[str] | None) -> tuple[float, ...] | None:
    """`--param t=3.7` (or values in the dataset's order, as `hyperinr export` takes them) ->
    physical values, wrapped / range-checked like the API's."""
    if not texts:
        return None
    from hyperinr.volume_io import parse_param_assignments

    values = parse_param_assignments(texts, explorer.space.names)
    return tuple(float(v) for v in explorer.space.values(values, {}, "--param"))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Exact pixels (lossless), atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(fh, format="png")
    return path


def snapshot(explorer: Explorer, req: FrameRequest, out: str | Path) -> FrameResult:
    """One frame without a browser: the same `render_frame` the app calls."""
    result = explorer.render_frame(req)
    write_png(out, result.image)
    return result


__all__ = [
    "Explorer",
    "FrameRequest",
    "open_explorer",
    "parse_camera",
    "parse_params",
    "snapshot",
    "write_png",
]
