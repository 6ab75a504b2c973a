"""detectflow against the model alone, a hand-written loop and the seeds' Celery stack, side by side in one run.

Each round measures, one after the other on the same cores, with nothing else of the benchmark running:
(a) the raw fp32 model alone: ``session.run`` on the preprocessed photo, unbatched, in each thread layout;
(b) a hand-written single-process loop: decode + preprocess + run + postprocess, no platform;
(c) detectflow end to end, started as `detectflow up` starts it, with its own defaults;
(d) the seeds' stack (bench/celery_stack: FastAPI + Celery + Redis, same model, same REST shape).
(c) and (d) get the same low-CPU asyncio client: each user submits a job, polls it every 100 ms until
it ends, then submits the next. Ratios are taken round by round, so machine noise cancels.

Run with `make bench` (or `python -m bench.run --write docs/performance.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench.client import Conn, multipart_post
from bench.report import replace_section
from bench.stacks import CeleryStack, DetectflowApi, DetectflowUp, redis_server_binary
from detectflow.config import Settings, Task
from detectflow.detectors import load_detector
from detectflow.jobs.images import decode_image

#: Jobs each user polls for, every this many seconds (what a simple client does).
DEFAULT_POLL_SECONDS = 0.1
#: Longest one end-to-end measurement may take, seconds (it reports what finished by then).
DEFAULT_E2E_DEADLINE = 180.0
#: Jobs run before the low-load samples, unmeasured (the stack was paused until then).
DEFAULT_OVERHEAD_WARMUP = 5
#: How long the idle stack's CPU is read for, seconds.
DEFAULT_IDLE_SECONDS = 10.0
#: The layout measured beside the defaults: every model on its fp32 file (by default a CPU worker loads the
#: int8 file of the models whose accuracy report passed, the face model among them: docs/models.md).
DEFAULT_TUNED = "DETECTFLOW_CPU_PRECISION=fp32"
#: And without authentication (loopback only): what per-request key checks cost, beside the Celery stack's none.
DEFAULT_NO_AUTH = "DETECTFLOW_AUTH=disabled"
_FINAL = ("succeeded", "failed", "cancelled")


def photo_640x480() -> bytes:
    """The astronaut photo (one face) resized to 640x480, as a JPEG."""
    import skimage.data

    rgb = skimage.data.astronaut()
    bgr = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (640, 480), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return buf.tobytes()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, steal / tick


def layouts(cores: int) -> list[tuple[int, int]]:
    """Thread layouts tried for the model alone: (sessions, each with this many intra-op threads)."""
    return [(1, cores), (cores, 1)] if cores > 1 else [(1, 1)]


# --- (a) the raw fp32 model ----------------------------------------------------------------
def fp32_model(settings: Settings) -> tuple[Path, dict]:
    """The face model's fp32 ONNX file and its card, whatever variant detectflow's worker picks."""
    card_file = Path(settings.model_dir).expanduser() / f"{settings.face_model}.json"
    card = json.loads(card_file.read_text())
    files = sorted(card["files"].items(), key=lambda kv: kv[0] != "cpu")
    name = next(f["path"] for _, f in files if f.get("precision") == "fp32")
    return card_file.parent / name, card


def input_tensor(image: np.ndarray, card: dict) -> np.ndarray:
    """The model's NCHW input for a BGR image that needs no resizing (RetinaFace: mean subtracted)."""
    pre = card["preprocessing"]
    if pre["resize"] != "none" or max(image.shape[:2]) > pre["max_side"] or card["input"]["layout"] != "NCHW":
        raise ValueError("the raw baseline expects the face card (no resize) and a photo within max_side")
    x = (image.astype(np.float32) - np.float32(pre["mean"])) / np.float32(pre["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _session(path: Path, intra: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()  # as detectflow opens its sessions: every graph optimisation
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = intra
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run_streams(steps: list, seconds: float) -> tuple[float, float]:
    """Calls of each step in its own thread for ``seconds``: calls per second in all, and CPU ms per call."""
    for step in steps:
        for _ in range(5):
            step()
    counts = [0] * len(steps)
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            steps[i]()
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(steps))]
    start, cpu = time.perf_counter(), time.process_time()  # every thread of this process, onnxruntime's too
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = max(sum(counts), 1)
    return calls / (time.perf_counter() - start), (time.process_time() - cpu) / calls * 1000


def raw_images_per_s(jpeg: bytes, sessions: int, intra: int, seconds: float) -> tuple[float, float]:
    """``session.run`` on the preprocessed photo in a tight loop: ``sessions`` threads, each its own session.

    Returns images/s and CPU ms per image.
    """
    path, card = fp32_model(Settings(device="cpu"))
    feeds_of = []
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    x = input_tensor(image, card)
    for _ in range(sessions):
        s = _session(path, intra)
        feeds_of.append((s, {s.get_inputs()[0].name: x}))
    rate = _run_streams([lambda s=s, f=f: s.run(None, f) for s, f in feeds_of], seconds)
    del feeds_of
    gc.collect()
    return rate


# --- (b) the hand-written loop -------------------------------------------------------------
def loop_images_per_s(jpeg: bytes, sessions: int, intra: int, seconds: float) -> tuple[tuple[float, float], str, int]:
    """decode + detect (pre, run, post) in a loop, with detectflow's own detector: no queue, no HTTP, no Redis.

    Returns (images/s, CPU ms per image), the model variant used, and the number of faces found.
    """
    dets = [load_detector(Task.face, Settings(intra_op_threads=intra, device="cpu")) for _ in range(sessions)]
    faces = len(dets[0].detect(decode_image(jpeg)))
    rate = _run_streams([lambda d=d: d.detect(decode_image(jpeg)) for d in dets], seconds)
    extra = dets[0].info.extra
    variant = f"{extra.get('file', '?')} ({extra.get('precision', '?')})"
    del dets
    gc.collect()
    return rate, variant, faces


def step_cpu_ms(jpeg: bytes, seconds: float) -> dict[str, float]:
    """CPU ms per image of each step, one thread, one intra-op thread: decode, ``session.run``, the rest of ``detect``."""
    path, card = fp32_model(Settings(device="cpu"))
    session = _session(path, 1)
    # the fp32 file whatever the card's CPU default: "pre + post" is detect minus this fp32 session.run
    det = load_detector(Task.face, Settings(intra_op_threads=1, device="cpu", cpu_precision="fp32"))
    image = decode_image(jpeg)
    feeds = {session.get_inputs()[0].name: input_tensor(image, card)}
    out = {
        "decode": _run_streams([lambda: decode_image(jpeg)], seconds)[1],
        "run": _run_streams([lambda: session.run(None, feeds)], seconds)[1],
        "detect": _run_streams([lambda: det.detect(image)], seconds)[1],
    }
    out["pre + post"] = out["detect"] - out["run"]
    int8 = card["files"].get("cpu_int8")
    if int8:  # the int8 file's session.run, on the same input (its QDQ graph takes the float tensor)
        quantized = _session(path.parent / int8["path"], 1)
        out["run int8"] = _run_streams([lambda: quantized.run(None, feeds)], seconds)[1]
    return out


# --- the client of (c) and (d) -------------------------------------------------------------
@dataclass
class E2E:
    """What one end-to-end measurement saw."""

    jobs_per_s: float
    done: int
    failed: int
    rejected: int
    post_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    faces: set[int] = field(default_factory=set)
    timed_out: bool = False


async def e2e(port: int, jpeg: bytes, jobs: int, users: int, poll: float = DEFAULT_POLL_SECONDS,
              deadline: float = DEFAULT_E2E_DEADLINE, headers: dict[str, str] | None = None) -> E2E:
    """``users`` clients, each submitting a job then polling it every ``poll`` s until it ends, ``jobs`` in all.

    Jobs/s is counted from the first POST to the last job seen finished (bounded by ``deadline``).
    """
    request = multipart_post("/v1/jobs", f"127.0.0.1:{port}", {"task": "face"}, "p.jpg", jpeg, headers)
    conns = [await Conn("127.0.0.1", port, headers).open() for _ in range(users)]
    out = E2E(0.0, 0, 0, 0)
    left = jobs
    start = time.perf_counter()
    end_by = start + deadline
    last = start

    async def user(conn: Conn) -> None:
        nonlocal left, last
        while left > 0 and time.perf_counter() < end_by:
            left -= 1
            t0 = time.perf_counter()
            status, body = await conn.send(request)
            out.post_ms.append((time.perf_counter() - t0) * 1000)
            if status != 202:
                out.rejected += 1
                continue
            job_id = json.loads(body)["id"]
            while time.perf_counter() < end_by:
                await asyncio.sleep(poll)
                _, job = await conn.get_json(f"/v1/jobs/{job_id}")
                if job["status"] in _FINAL:
                    last = time.perf_counter()
                    out.latency_ms.append((last - t0) * 1000)
                    if job["status"] == "succeeded":
                        out.done += 1
                        out.faces.add(len(job["result"]["detections"]))
                    else:
                        out.failed += 1
                    break

    await asyncio.gather(*(user(c) for c in conns))
    for c in conns:
        await c.close()
    out.timed_out = time.perf_counter() >= end_by
    out.jobs_per_s = out.done / max(last - start, 1e-9)
    return out


async def post_latency(
    port: int, jpeg: bytes, clients: int, rate: float, seconds: float, headers: dict[str, str] | None = None
) -> dict:
    """``clients`` keep-alive connections, together sending ``rate`` POST/s (open loop), workers running."""
    request = multipart_post("/v1/jobs", f"127.0.0.1:{port}", {"task": "face"}, "p.jpg", jpeg, headers)
    conns = [await Conn("127.0.0.1", port, headers).open() for _ in range(clients)]
    latencies: list[float] = []
    rejected = 0
    interval = clients / rate
    stop = time.perf_counter() + seconds

    async def user(i: int, conn: Conn) -> None:
        nonlocal rejected
        await asyncio.sleep(interval * i / clients)
        nxt = time.perf_counter()
        while nxt < stop:
            t0 = time.perf_counter()
            status, _ = await conn.send(request)
            latencies.append((time.perf_counter() - t0) * 1000)
            rejected += status != 202
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

    await asyncio.gather(*(user(i, c) for i, c in enumerate(conns)))
    for c in conns:
        await c.close()
    return {"n": len(latencies), "rejected": rejected, "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "latencies": latencies}  # fmt: skip


async def overhead(port: int, jpeg: bytes, samples: int, headers: dict[str, str] | None = None) -> dict | None:
    """detectflow only: one job at a time, long-polled; latency minus the inference time the worker reports."""
    request = multipart_post("/v1/jobs", f"127.0.0.1:{port}", {"task": "face"}, "p.jpg", jpeg, headers)
    conn = await Conn("127.0.0.1", port, headers).open()
    client_ms, server_ms = [], []
    try:
        for i in range(samples + DEFAULT_OVERHEAD_WARMUP):
            t0 = time.perf_counter()
            _, body = await conn.send(request)
            job_id = json.loads(body)["id"]
            _, job = await conn.get_json(f"/v1/jobs/{job_id}?wait=10")
            while job.get("status") not in _FINAL and time.perf_counter() - t0 < DEFAULT_E2E_DEADLINE:
                _, job = await conn.get_json(f"/v1/jobs/{job_id}?wait=10")
            elapsed = (time.perf_counter() - t0) * 1000
            t = (job.get("result") or {}).get("timings_ms")
            if job.get("status") != "succeeded" or not t or "inference" not in t:
                return None  # the API changed shape: skip this figure rather than guess
            if i < DEFAULT_OVERHEAD_WARMUP:  # the stack was just resumed (SIGCONT): its connections wake first
                continue
            client_ms.append(elapsed - t["inference"])
            if "total" in t:
                server_ms.append(t["total"] - t["inference"])
            await asyncio.sleep(0.05)  # low load: the worker is idle when the next job arrives
    finally:
        await conn.close()
    return {"client_p50": pct(client_ms, 50), "client_p99": pct(client_ms, 99),
            "server_p50": pct(server_ms, 50), "server_p99": pct(server_ms, 99)}  # fmt: skip


# --- one stack, measured -------------------------------------------------------------------
def warm(stack, jpeg: bytes, users: int) -> E2E:
    """One job per user, until the stack answers them (the first after a start loads the models)."""
    run = asyncio.run(e2e(stack.port, jpeg, users, users, deadline=DEFAULT_E2E_DEADLINE, headers=stack.headers))
    if run.done == 0:
        raise RuntimeError(f"{stack.name}: no warm-up job succeeded")
    return run


def measure_stack(stack, jpeg: bytes, args) -> dict:
    """Warm ``stack`` (resumed, every other stack paused), then measure it with the polling client."""
    warmed = warm(stack, jpeg, args.users)
    time.sleep(0.5)
    cpu0, mach0, client0 = stack.cpu(), machine_busy_seconds(), time.process_time()
    run = asyncio.run(e2e(stack.port, jpeg, args.jobs, args.users, headers=stack.headers))
    cpu1, mach1, client1 = stack.cpu(), machine_busy_seconds(), time.process_time()
    cpu = {k: (cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / max(run.done, 1) * 1000 for k in cpu1}
    cpu["client"] = (client1 - client0) / max(run.done, 1) * 1000
    elapsed = run.done / run.jobs_per_s if run.jobs_per_s else 1.0
    ours = sum(v for v in cpu.values()) * max(run.done, 1) / 1000
    return {
        "jobs_per_s": run.jobs_per_s, "done": run.done, "failed": run.failed, "rejected": run.rejected,
        "timed_out": run.timed_out, "faces": sorted(run.faces | warmed.faces), "cpu_ms": cpu,
        "post_p50": pct(run.post_ms, 50), "post_p99": pct(run.post_ms, 99),
        "latency_p50": pct(run.latency_ms, 50), "latency_p99": pct(run.latency_ms, 99),
        # CPU the rest of the machine (other engineers) used meanwhile, in cores
        "others_cores": max(0.0, (mach1[0] - mach0[0]) - ours) / elapsed,
        "steal_cores": (mach1[1] - mach0[1]) / elapsed,
    }  # fmt: skip


def baselines(res: dict, jpeg: bytes, cores: int, seconds: float) -> None:
    """(a) and (b) in every thread layout, in this process, with every stack paused."""
    for s, t in layouts(cores):
        rate, cpu = raw_images_per_s(jpeg, s, t, seconds)
        res["raw"].setdefault(f"{s}x{t}", []).append(rate)
        res["raw_cpu"].setdefault(f"{s}x{t}", []).append(cpu)
    for s, t in layouts(cores):
        (rate, cpu), variant, faces = loop_images_per_s(jpeg, s, t, seconds)
        res["loop"].setdefault(f"{s}x{t}", []).append(rate)
        res["loop_cpu"].setdefault(f"{s}x{t}", []).append(cpu)
        res["loop_variant"], res["loop_faces"] = variant, faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds; each runs (a), (b), (c), (d) in turn")
    ap.add_argument("--jobs", type=int, default=200, help="jobs per end-to-end measurement")
    ap.add_argument("--users", type=int, default=16, help="polling clients of (c)/(d), each with one job in flight")
    ap.add_argument("--raw-seconds", type=float, default=4.0, help="seconds per layout of (a) and (b)")
    ap.add_argument("--clients", type=int, default=100, help="connections of the open-loop POST test")
    ap.add_argument("--rate", type=float, default=200.0, help="aggregate POST/s of the open-loop POST test")
    ap.add_argument("--post-seconds", type=float, default=10.0, help="length of the open-loop POST test")
    ap.add_argument("--celery-pool", choices=["prefork", "solo"], default="prefork")
    ap.add_argument("--celery-concurrency", type=int, default=os.cpu_count() or 1, help="prefork processes")
    ap.add_argument("--no-celery-int8", action="store_true",
                    help="skip the Celery stack on detectflow's int8 face file (the seeds' stack runs fp32)")
    ap.add_argument("--celery-intra-op-threads", type=int, default=1,
                    help="onnxruntime threads per Celery process (0: onnxruntime's default, one per core)")
    ap.add_argument("--tuned", action="append", metavar="'VAR=VALUE ...'",
                    help=f"also measure detectflow with these DETECTFLOW_* settings (repeatable) [default: {DEFAULT_TUNED!r} and {DEFAULT_NO_AUTH!r}]")
    ap.add_argument("--no-tuned", action="store_true", help="measure detectflow with its defaults only")
    ap.add_argument("--storage", action="append", choices=["redis", "s3"],
                    help="also measure detectflow with this blob store (repeatable; the default stack uses the "
                    "filesystem) [default: redis and s3 (versitygw on loopback)]")
    ap.add_argument("--no-storage", action="store_true", help="measure no other blob store")
    ap.add_argument("--write", type=Path, help="write the report (markdown) here")
    ap.add_argument("--video-rounds", type=int, default=3, help="rounds of the video section (bench/video.py); 0: none")
    ap.add_argument("--no-recognition", action="store_true", help="skip the face recognition section")
    ap.add_argument("--recognition-max-ann", type=int, default=100_000,
                    help="largest synthetic gallery given an HNSW index (1M takes tens of minutes)")
    args = ap.parse_args()
    args.tuned = [] if args.no_tuned else (args.tuned or [DEFAULT_TUNED, DEFAULT_NO_AUTH])
    args.storage = [] if args.no_storage else (args.storage or ["redis", "s3"])

    jpeg = photo_640x480()
    cores = len(os.sched_getaffinity(0))
    redis_bin = redis_server_binary()
    res: dict = {"raw": {}, "loop": {}, "raw_cpu": {}, "loop_cpu": {}, "stacks": {}, "load": [], "post_open": {},
                 "start_s": {}}  # fmt: skip
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        stacks: list = [DetectflowUp(Path(tmp) / "detectflow")]
        for i, spec in enumerate(args.tuned):
            env = dict(kv.split("=", 1) for kv in spec.split())
            label = "detectflow " + " ".join(k.removeprefix("DETECTFLOW_") + "=" + v for k, v in env.items())
            stacks.append(DetectflowUp(Path(tmp) / f"tuned{i}", env, label=label))
        s3_servers = []
        for kind in args.storage:
            env, secret = {"DETECTFLOW_STORAGE": kind}, {}
            if kind == "s3":
                from tests.support.s3 import S3Server

                s3 = S3Server(Path(tmp) / "s3").start()
                s3_servers.append(s3)
                env |= {"DETECTFLOW_STORAGE_S3_BUCKET": s3.bucket, "DETECTFLOW_STORAGE_S3_ENDPOINT": s3.endpoint,
                        "DETECTFLOW_STORAGE_S3_REGION": s3.region, "DETECTFLOW_STORAGE_S3_ADDRESSING_STYLE": "path"}
                secret = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
            stacks.append(DetectflowUp(Path(tmp) / f"storage-{kind}", env, label=f"detectflow STORAGE={kind}",
                                       secret_env=secret))  # fmt: skip
        stacks.append(CeleryStack(Path(tmp) / "celery", redis_bin, args.celery_pool, args.celery_concurrency,
                                  args.celery_intra_op_threads))  # fmt: skip
        if not args.no_celery_int8:  # the same stack on detectflow's int8 face file: the platforms on one model run
            stacks.append(CeleryStack(Path(tmp) / "celery-int8", redis_bin, args.celery_pool, args.celery_concurrency,
                                      args.celery_intra_op_threads, precision="int8"))  # fmt: skip
        running: list = []
        try:
            # every stack is started (alone), warmed and paused; then each round resumes one at a time
            for stack in stacks:
                t0 = time.monotonic()
                running.append(stack.start())
                warm(stack, jpeg, args.users)
                stack.pause()
                res["start_s"][stack.name] = time.monotonic() - t0
            for r in range(args.rounds):
                res["load"].append(os.getloadavg()[0])
                # odd rounds run in the reverse order, so a slow drift of the machine's load favours no one
                if r % 2 == 0:
                    baselines(res, jpeg, cores, args.raw_seconds)
                for stack in stacks if r % 2 == 0 else stacks[::-1]:
                    stack.resume()
                    m = measure_stack(stack, jpeg, args)
                    stack.pause()
                    m["describe"] = stack.describe()
                    res["stacks"].setdefault(stack.name, []).append(m)
                if r % 2 == 1:
                    baselines(res, jpeg, cores, args.raw_seconds)
                line = ", ".join(f"{k} {v[-1]:.1f}" for k, v in res["raw"].items())
                line += ", loop " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res["loop"].items())
                line += ", " + ", ".join(f"{k} {v[-1]['jobs_per_s']:.1f}" for k, v in res["stacks"].items())
                print(f"round {r + 1}: raw {line} (img/s, jobs/s)", flush=True)
            df = stacks[0]
            res["df_redis_binary"] = df.redis_binary()
            df.resume()
            res["overhead"] = asyncio.run(overhead(df.port, jpeg, 50, df.headers))
            res["idle"] = idle_cpu(df)
            df.pause()
        finally:
            for stack in running:
                stack.stop()
            for s3 in s3_servers:
                s3.stop()
        res["steps"] = step_cpu_ms(jpeg, args.raw_seconds)
        # POST latency of each API alone (no worker competing for the cores): A B B A, the other one paused
        apis = [DetectflowApi(Path(tmp) / "df-api", redis_bin),
                CeleryStack(Path(tmp) / "celery-api", redis_bin, api_only=True)]  # fmt: skip
        running = []
        try:
            for api in apis:
                running.append(api.start())
                api.pause()
            seen: dict[str, list] = {}
            for api in (apis[0], apis[1], apis[1], apis[0]):
                api.resume()
                seen.setdefault(api.name, []).append(
                    asyncio.run(post_latency(api.port, jpeg, args.clients, args.rate, args.post_seconds / 2, api.headers))
                )
                api.pause()
            for name, runs in seen.items():
                lat = [x for run in runs for x in run["latencies"]]
                res["post_open"][name] = {"n": len(lat), "rejected": sum(run["rejected"] for run in runs),
                                          "p50": pct(lat, 50), "p99": pct(lat, 99)}  # fmt: skip
        finally:
            for api in running:
                api.stop()
    res["seconds"] = time.time() - started
    res["redis_binary"] = redis_bin
    report = render(res, args, cores)
    print(report)
    if args.write:
        replace_section(args.write, "baselines", report)
    if args.video_rounds:
        from bench.video import measure_video, render_video

        section = render_video(measure_video(args.video_rounds))
        print(section)
        if args.write:
            replace_section(args.write, "video", section)
    if not args.no_recognition:  # its own process: one BLAS thread, and nothing left of the stacks above
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "bench.recognition", "--max-ann", str(args.recognition_max_ann)]
        subprocess.run([*cmd, *(["--write", str(args.write)] if args.write else [])], check=True)


# --- the report ----------------------------------------------------------------------------
def _redis_text(binary: str) -> str:
    import subprocess

    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
    shown = binary.replace(str(Path.home()), "~").replace(str(Path(__file__).resolve().parents[1]), ".")
    v = next((w.split("=", 1)[1] for w in version if w.startswith("v=")), "?")
    return f"redis-server {v}, `{shown}`"


def _span(values: list[float], fmt: str = ".1f") -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


def idle_cpu(stack, seconds: float = DEFAULT_IDLE_SECONDS) -> dict[str, float]:
    """Share of one core each process of ``stack`` uses with no job at all (after a settling second)."""
    time.sleep(1.0)
    before = stack.cpu()
    time.sleep(seconds)
    after = stack.cpu()
    return {k: (after[k] - before.get(k, 0.0)) / seconds * 100 for k in after}


def render(res: dict, args, cores: int) -> str:
    rounds = range(args.rounds)
    best_raw = [max(v[r] for v in res["raw"].values()) for r in rounds]
    best_loop = [max(v[r] for v in res["loop"].values()) for r in rounds]
    rate = {name: [m["jobs_per_s"] for m in ms] for name, ms in res["stacks"].items()}

    # CPU ms per job of each stack's own processes (the client excluded), and of the leanest baseline layout
    own_cpu = {name: [sum(v for k, v in m["cpu_ms"].items() if k != "client") for m in ms]
               for name, ms in res["stacks"].items()}  # fmt: skip
    raw_cpu = [min(v[r] for v in res["raw_cpu"].values()) for r in rounds]
    loop_cpu = [min(v[r] for v in res["loop_cpu"].values()) for r in rounds]

    def ratio(name: str, base: list[float]) -> str:
        return _span([a / b for a, b in zip(rate[name], base)], ".3f")

    def cpu_ratio(name: str, base: list[float]) -> str:
        return _span([b / a for a, b in zip(own_cpu[name], base)], ".3f")

    rows = []
    for name in res["stacks"]:
        if name.startswith("detectflow STORAGE="):  # the blob stores against the default (filesystem) one
            rows.append(f"| {name} / detectflow (filesystem blobs) | **{ratio(name, rate['detectflow'])}** | "
                        f"{cpu_ratio(name, own_cpu['detectflow'])} | |")
            continue
        if name.startswith("celery"):
            continue
        rows.append(f"| {name} / raw fp32 model, best layout | **{ratio(name, best_raw)}** | {cpu_ratio(name, raw_cpu)} | >= 1.0 |")
        rows.append(f"| {name} / hand-written loop, best layout | {ratio(name, best_loop)} | {cpu_ratio(name, loop_cpu)} | |")
        rows.append(f"| {name} / Celery stack | **{ratio(name, rate['celery'])}** | {cpu_ratio(name, own_cpu['celery'])} | >= 1.5 |")
        if name == "detectflow" and "celery int8" in rate:  # both on the int8 face file: the platforms alone
            rows.append(f"| {name} / Celery stack on the int8 face file | {ratio(name, rate['celery int8'])} | "
                        f"{cpu_ratio(name, own_cpu['celery int8'])} | |")
    stack_rows = []
    for name, ms in res["stacks"].items():
        cpu = {k: statistics.median(m["cpu_ms"].get(k, 0.0) for m in ms) for k in ms[0]["cpu_ms"]}
        cpu_text = ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        po = res["post_open"].get(name)
        stack_rows.append(
            f"| {name} | {_span(rate[name])} | {statistics.median(m['post_p50'] for m in ms):.1f} / "
            f"{statistics.median(m['post_p99'] for m in ms):.1f} | "
            + (f"{po['p50']:.1f} / {po['p99']:.1f} ({po['n']} POSTs, {po['rejected']} not 202)" if po else "")
            + f" | {statistics.median(m['latency_p50'] for m in ms):.0f} / "
            f"{statistics.median(m['latency_p99'] for m in ms):.0f} | {sum(cpu.values()):.1f} ({cpu_text}) |"
        )
    describe = "\n".join(f"- **{name}**: {ms[0]['describe']}." for name, ms in res["stacks"].items())
    raw_rows = "\n".join(f"| model alone, {k.replace('x', ' session(s) x ')} intra-op thread(s) | {_span(v)} | "
                         f"{_span(res['raw_cpu'][k])} |" for k, v in res["raw"].items())
    loop_rows = "\n".join(f"| hand-written loop, {k.replace('x', ' session(s) x ')} intra-op thread(s) | {_span(v)} | "
                          f"{_span(res['loop_cpu'][k])} |" for k, v in res["loop"].items())
    per_round = "; ".join(
        f"round {r + 1}: raw {best_raw[r]:.1f}, loop {best_loop[r]:.1f}, "
        + ", ".join(f"{n} {rate[n][r]:.1f}" for n in res["stacks"])
        for r in rounds
    )
    others = [m["others_cores"] for ms in res["stacks"].values() for m in ms]
    steal = [m["steal_cores"] for ms in res["stacks"].values() for m in ms]
    faces = {n: sorted({f for m in ms for f in m["faces"]}) for n, ms in res["stacks"].items()}
    df_redis = res.get("df_redis_binary")
    same_redis = df_redis == res["redis_binary"]
    o = res.get("overhead")
    overhead_text = (
        f"detectflow at low load (one job at a time, long-polled with `?wait=10`): latency minus the inference "
        f"time the worker reports, p50 / p99 **{o['client_p50']:.1f}** / {o['client_p99']:.1f} ms client-observed, "
        f"{o['server_p50']:.1f} / {o['server_p99']:.1f} ms server-side (target p50 <= 5 ms server-side)."
        if o else "detectflow's low-load overhead was not measured (the job shape had no `timings_ms`)."
    )
    idle = res.get("idle")
    idle_text = (
        f"Idle (no job for {DEFAULT_IDLE_SECONDS:g} s), `make up`'s processes use **{sum(idle.values()):.1f} %** of one core "
        "in all (" + ", ".join(f"{k} {v:.1f} %" for k, v in sorted(idle.items(), key=lambda kv: -kv[1])) + "; `python` is "
        "`detectflow up` itself, the supervisor): no pool spins while it waits."
        if idle else ""
    )
    celery_cpu = statistics.median(own_cpu["celery"]) if "celery" in own_cpu else float("nan")
    raw_best_cpu = statistics.median(raw_cpu)
    celery_bound = celery_cpu / raw_best_cpu
    st = res["steps"]
    int8_bound_text = (
        f", and {celery_cpu / st['run int8']:.2f}x it on the int8 file (whose `session.run` costs {st['run int8']:.1f} ms "
        "in one thread, measured after the rounds)" if "run int8" in res["steps"] else ""
    )
    int8_step_text = f"; the int8 file's `session.run`: {st['run int8']:.1f} ms" if "run int8" in st else ""
    failures = sum(m["failed"] + m["rejected"] for ms in res["stacks"].values() for m in ms)
    timeouts = [n for n, ms in res["stacks"].items() if any(m["timed_out"] for m in ms)]
    return f"""# Performance

Measured by `make bench` (`python -m bench.run --write docs/performance.md`) on {platform.machine()},
{cores} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}, in {res['seconds'] / 60:.0f} minutes.

**Read the ratios, not the absolute figures.** The machine is shared: other engineers were building
and testing on the same {cores} cores during this run (load average {_span(res['load'])} at the start
of each round; other processes used {_span(others, '.2f')} cores and the hypervisor stole
{_span(steal, '.2f')} cores while the stacks were measured). Every figure below is a median of
{args.rounds} rounds (min-max in brackets); each round measures all of them one after the other (odd
rounds in the reverse order), and each ratio is taken within a round, so noise that lasts longer
than a round cancels out.

## detectflow against the baselines

| ratio (median of per-round ratios; min-max) | by jobs/s | by CPU per job | target |
| --- | --- | --- | --- |
{chr(10).join(rows)}

Each ratio in two forms. *By jobs/s*, the form the targets are stated in: throughput with the cores
saturated. *By CPU per job*: the baseline's CPU ms per image (its leanest layout) over the stack's own
CPU ms per job (every process of the stack, the load generator excluded). On a dedicated machine the
two agree, since jobs/s is then about cores / CPU per job. On a loaded one, jobs/s also depends on the
share of the cores each stack wins from the other processes (a stack with more runnable threads gets
more from the scheduler), so the CPU form is the steadier of the two; time onnxruntime's threads spend
spinning counts as CPU in both.

**Why the fp32 target (>= 1.0 x the raw fp32 model) is out of reach by construction.** The raw model alone
spends every core on `session.run` and nothing else; a job through any platform needs that same
`session.run` plus its decode, pre- and postprocessing, the upload, the queue and the polls. On saturated
cores jobs/s is at most cores / CPU per job, so the fp32 ratio is bounded by the CPU form above (below 1
whenever a job costs anything beyond the model). Only a cheaper model run can cross 1.0: a CPU worker
loads a model's int8 file where its card says it passed the accuracy rule of docs/models.md (RetinaFace's
does, NanoDet's does not), so the default `detectflow` rows run the face model in int8; the
`CPU_PRECISION=fp32` rows are the same stack on the fp32 file. The same bound caps the ratio to the Celery
stack, which runs the model's fp32 file as the seeds build it: a platform with no work of its own beyond
`session.run` would reach {celery_bound:.2f}x it on fp32 (the Celery stack's CPU per job without the load
generator, {celery_cpu:.1f} ms, over the fp32 model's alone, {raw_best_cpu:.1f} ms){int8_bound_text}. The
`celery int8` stack is the seeds' stack on detectflow's int8 face file: against it, both run the same model,
so that ratio is the platforms' own work alone.

| end to end | jobs/s | POST p50 / p99 under load, ms | POST p50 / p99 of the API alone, {args.clients} clients at {args.rate:.0f} req/s, ms | job latency p50 / p99, ms | CPU ms per job (by process) |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(stack_rows)}

| without a platform | images/s | CPU ms per image |
| --- | --- | --- |
{raw_rows}
{loop_rows}

Per round (best raw layout, best loop layout, each stack): {per_round}.

CPU per image of each step, measured alone in one thread after the rounds: JPEG decode {st['decode']:.1f} ms,
`session.run` {st['run']:.1f} ms, preprocessing + postprocessing {st['pre + post']:.1f} ms
(`detect` {st['detect']:.1f} ms minus `session.run`): {st['decode'] + st['detect']:.1f} ms in all (all on the fp32 file{int8_step_text}). What a stack spends per job beyond
that is its own work: HTTP, multipart, the queue, Redis, bookkeeping (and threads spinning or fighting for the cores).

{overhead_text}

{idle_text}

## What was measured

The photo is the astronaut (one face) resized to 640x480, JPEG; the face model is RetinaFace-MobileNet0.25.
Faces found per job: {', '.join(f'{n} {v}' for n, v in faces.items())}, hand-written loop [{res['loop_faces']}]
(the same model work everywhere). {failures} jobs failed or were refused{'; measurements cut by the deadline: ' + ', '.join(timeouts) if timeouts else ''}.

{describe}
- **raw fp32 model**: `session.run` on the preprocessed photo in a tight loop, {args.raw_seconds:.0f} s per layout,
  each thread with its own onnxruntime session (all graph optimisations, as detectflow opens them): no JPEG
  decode, no pre/post-processing, unbatched. The best layout of each round is the baseline.
- **hand-written loop**: what a user writes without a platform: in one process, each thread decodes the JPEG
  (`decode_image`) and calls the detector from `load_detector` (preprocess, `session.run`, postprocess) in a loop.
  Its model file is the one detectflow's worker loads: {res['loop_variant']}.
- **end to end** (detectflow and the Celery stack): {args.jobs} jobs per measurement, from {args.users} users on the
  benchmark's own asyncio client (bench/client.py: prebuilt requests on keep-alive connections, so it takes
  little of the shared cores); each user POSTs `/v1/jobs` (multipart `file`, `task=face`), polls
  `GET /v1/jobs/{{id}}` every {DEFAULT_POLL_SECONDS * 1000:.0f} ms until the job ends, then submits the next. Jobs/s runs from the first
  POST to the last job seen finished (bounded by {DEFAULT_E2E_DEADLINE:.0f} s). Every stack is first started alone,
  warmed and paused (SIGSTOP to each of its processes, so it uses no CPU); each round then resumes one stack,
  warms it again with {args.users} jobs, measures it and pauses it again, so that nothing else of the benchmark
  runs meanwhile (the baselines run with every stack paused). The API, the workers, redis-server and the client
  share the same {cores} cores. CPU per job is read from /proc for every process of the stack.
  With a fixed number of users each holding one job, jobs/s is users over the mean job latency, and a job is
  seen finished only at a poll: its latency is a whole number of {DEFAULT_POLL_SECONDS * 1000:.0f} ms polls plus the POST and a GET.
  A round in which a few more jobs end just after a poll than just before it reads a lower jobs/s for the
  same work, so jobs/s moves by steps from round to round; the CPU form does not.
- POST latency under load is what the users above saw. The open-loop POST test is made once, after the rounds,
  on each API alone with its redis-server and no worker (so no inference competes for the cores; detectflow's
  backlog limit raised so that nothing answers 429): {args.clients} keep-alive connections send {args.rate:.0f} POST/s in all
  for {args.post_seconds:.0f} s per API, in two halves ordered detectflow, Celery, Celery, detectflow, the other API paused
  (target for detectflow: p99 <= 20 ms).
- Both stacks run on the same redis-server binary ({_redis_text(res['redis_binary'])}{'' if same_redis else f'; detectflow up started {df_redis}'}),
  with the persistence `detectflow up` gives it (append-only file, fsync every second); every server
  listens on 127.0.0.1 only.
"""


if __name__ == "__main__":
    main()
