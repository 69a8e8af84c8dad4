"""The pipeline's dask metrics against whole-array scikit-image on a results folder's stores.

    python benchmarks/compare_metrics.py [results/tgv64_vorticity] [--threads 2]

`hyperinr.evaluate.metrics.evaluate` (slab units, block-wise SSIM, dask) on the folder's
dataset.zarr and predictions/*.zarr, then, frame by frame, scikit-image's
`peak_signal_noise_ratio` and `structural_similarity` on the whole physical frames in float64
(the computation the stage made before it used dask). Prints the largest differences, the
number of bit-identical rows and both wall times.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hyperinr.data.store import open_dataset, open_prediction
from hyperinr.evaluate.metrics import _win_size, evaluate


def whole_array(ds, store, i: int) -> tuple[float, float]:
    gt = ds.physical_frame(i).astype(np.float64)
    pred = np.asarray(store.frames[i], dtype=np.float32).astype(np.float64)
    rng = float(gt.max() - gt.min())
    channel = None if ds.channel_axis is None else -1
    spatial = gt.shape if channel is None else gt.shape[:-1]
    mse = float(np.mean((gt - pred) ** 2))
    psnr = math.inf if mse == 0 else peak_signal_noise_ratio(gt, pred, data_range=rng)
    ssim = structural_similarity(
        gt, pred, data_range=rng, win_size=_win_size(spatial), channel_axis=channel
    )
    return float(psnr), float(ssim)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, nargs="?", default=Path("results/tgv64_vorticity"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    ds_path = args.results / "dataset.zarr"
    preds = {s.stem: s for s in sorted((args.results / "predictions").glob("*.zarr"))}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = evaluate(ds_path, preds, Path(tmp) / "m.csv", progress=False,
                        threads=args.threads)  # fmt: skip
        t_dask = time.perf_counter() - t0
    ds = open_dataset(ds_path)
    stores = {m: open_prediction(path, ds) for m, path in preds.items()}
    t0 = time.perf_counter()
    ref = {(i, m): whole_array(ds, stores[m], i) for i in range(ds.n_frames) for m in stores}
    t_ref = time.perf_counter() - t0
    d_psnr = d_ssim = 0.0
    same = 0
    for row in rows:
        psnr, ssim = ref[row["frame"], row["method"]]
        if math.isfinite(psnr) or psnr != row["psnr"]:
            d_psnr = max(d_psnr, abs(psnr - row["psnr"]))
        d_ssim = max(d_ssim, abs(ssim - row["ssim"]))
        same += psnr == row["psnr"] and ssim == row["ssim"]
    print(f"{args.results}: {len(rows)} rows ({', '.join(preds)}), frames {ds.frame_shape}")
    print(f"max |PSNR dask - skimage| {d_psnr:.3e} dB, max |SSIM dask - skimage| {d_ssim:.3e}, "
          f"bit-identical rows {same}/{len(rows)}")  # fmt: skip
    print(f"wall: dask ({args.threads} threads) {t_dask:.1f} s, whole-array skimage "
          f"{t_ref:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
