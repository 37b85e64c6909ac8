"""DSE throughput: points/s of the process pool and of Ray on this machine, and Ray's overhead
per point.

    python benchmarks/bench_dse.py [--points 16] [--workers 2] [--evaluations 30]

Sweeps one grid of `--points` array sizes of examples/hw/systolic_estimated.yaml on the bundled
MLP into fresh stores, once with ``--executor pool`` and once with ``--executor ray`` (a local
Ray cluster of `--workers` CPUs; skipped with a note when ray is absent).  Ray's overhead per
point is (ray wall - pool wall) / points, with cluster start-up timed separately.  Both runs
must give identical metrics (checked).  A timing, not a test: a shared machine moves it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from codesign.dse.space import load_space
from codesign.dse.store import Store
from codesign.dse.sweep import SweepOptions, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def _space(directory: Path, points: int, evaluations: int) -> Path:
    doc = {
        "name": "bench",
        "hardware": str(ROOT / "examples/hw/systolic_estimated.yaml"),
        "axes": [
            {"name": "array", "paths": ["levels.1.fanout.x", "levels.1.fanout.y"],
             "values": list(range(2, 2 + points))},
        ],
        "workloads": [{"name": "mlp", "model": str(ROOT / "examples/models/mlp.onnx")}],
        "objectives": ["latency", "energy", "area"],
        "mapper": {"evaluations": evaluations},
    }  # fmt: skip
    path = directory / "space.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _timed(space_path: Path, db: Path, options: SweepOptions) -> tuple[float, dict]:
    space = load_space(space_path)
    start = time.perf_counter()
    with Store(db) as store:
        rows = run_sweep(space, store, options)
    return time.perf_counter() - start, {r.key: r.metrics for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        space = _space(tmp_dir, args.points, args.evaluations)
        pool_s, pool = _timed(space, tmp_dir / "pool.sqlite", SweepOptions("pool", args.workers))
        print(f"pool  ({args.workers} workers): {args.points} points in {pool_s:.2f} s = "
              f"{args.points / pool_s:.2f} points/s")  # fmt: skip
        try:
            import ray
        except ImportError:
            print("ray: not installed (pip install 'codesign[distributed]'); skipped")
            return 0
        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        startup_s = time.perf_counter() - start
        try:
            ray_s, rayed = _timed(space, tmp_dir / "ray.sqlite", SweepOptions("ray", args.workers))
        finally:
            ray.shutdown()
        print(
            f"ray   ({args.workers} CPUs):    {args.points} points in {ray_s:.2f} s = "
            f"{args.points / ray_s:.2f} points/s (cluster start {startup_s:.1f} s, not counted)"
        )
        print(
            f"ray overhead per point vs pool: {(ray_s - pool_s) / args.points * 1e3:+.0f} ms "
            "(the pool's wall includes spawning its workers and their imports; Ray's workers "
            "start with the cluster)"
        )
        print("identical metrics:", pool == rayed)
        return 0 if pool == rayed else 1


if __name__ == "__main__":
    raise SystemExit(main())
