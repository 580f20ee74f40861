"""Sweeps on a real Ray instance: a grid, ASHA early stopping, a driver stopped and resumed, a worker killed and
its trial retried, and a two-node cluster joined through --address. Skipped without the sweep extra."""

import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from commands import environment, start, textgen, wait_until

pytest.importorskip("ray.tune", reason="the sweep extra (pip install -e '.[sweep]') is not installed")

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"


def book(tmp_path: Path) -> Path:
    """A text of about 30,000 characters, made here: the sample book's lines in a fixed shuffled order."""
    lines = SAMPLE_BOOK.read_text(encoding="utf-8").splitlines(keepends=True)
    rng = np.random.default_rng(0)
    path = tmp_path / "book.txt"
    path.write_text("".join(lines[i] for i in rng.integers(len(lines), size=1000)), encoding="utf-8")
    return path


def write_spec(tmp_path: Path, train: str, search: str, stopping: str = "") -> Path:
    book(tmp_path)
    path = tmp_path / "spec.toml"
    path.write_text(f'[train]\ncorpus = ["book.txt"]\npassage_length = 50\nsample_every = 100000\n{train}\n'
                    f"[search]\n{search}\n{stopping}", encoding="utf-8")
    return path


def trials(sweep: Path) -> dict:
    return json.loads((sweep / "trials.json").read_text()) if (sweep / "trials.json").exists() else {}


def results(sweep: Path) -> list[dict]:
    return [json.loads(line) for line in (sweep / "results.jsonl").read_text().splitlines()]


def arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def assert_same_as_uninterrupted(tmp_path: Path, trial: Path, name: str) -> None:
    """The trial's last.npz equals, array for array, that of the same run made with textgen train in one go."""
    config = json.loads((trial / "config.json").read_text())
    train, model = config["train"], config["model"]
    alone = tmp_path / f"alone-{name}"
    done = textgen("train", "--corpus", config["corpus"]["sources"][0]["location"], "--out", alone, "--seed",
                   train["seed"], "--updates", train["updates"], "--hidden", model["hidden"], "--eta", train["eta"],
                   "--eval-every", train["eval_every"], "--checkpoint-every", train["checkpoint_every"],
                   "--passage-length", 50, "--sample-every", 100000, "-q")
    assert done.returncode == 0, done.stderr
    ours, theirs = arrays(trial / "last.npz"), arrays(alone / "last.npz")
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), key


def test_a_grid_of_four_trials_is_ranked_and_each_trial_is_a_run_folder(tmp_path):
    spec = write_spec(tmp_path, "updates = 300\neval_every = 100", "hidden = [8, 16]\neta = [0.05, 0.2]")
    sweep = tmp_path / "sweep"
    done = textgen("sweep", spec, "--out", sweep)
    assert done.returncode == 0, done.stderr
    rows = results(sweep)
    assert len(rows) == 4 and all(r["status"] == "finished" and r["updates"] == 300 for r in rows)
    assert sorted((r["settings"]["hidden"], r["settings"]["eta"]) for r in rows) == [(8, 0.05), (8, 0.2), (16, 0.05),
                                                                                    (16, 0.2)]
    for row in rows:  # the best held-out loss, read again from the trial's own metrics
        metrics = [json.loads(line) for line in (Path(row["folder"]) / "metrics.jsonl").read_text().splitlines()]
        assert row["best_val_bpc"] == min(m["val_bpc"] for m in metrics if "val_bpc" in m)
    assert [r["best_val_bpc"] for r in rows] == sorted(r["best_val_bpc"] for r in rows)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    csv_lines = (sweep / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rank,trial,hidden,eta,status,updates") and len(csv_lines) == 5
    page = (sweep / "sweep_report.html").read_text()
    assert all(r["trial"] in page for r in rows) and "data:image/png;base64," in page and "<pre>" in page
    status = textgen("sweep", "--status", sweep)
    assert status.returncode == 0 and [line.split()[1] for line in status.stdout.splitlines()[1:]] == [
        r["trial"] for r in rows]
    best = Path(rows[0]["folder"])
    generated = textgen("generate", best, "--length", 40, "--seed", 1)
    assert generated.returncode == 0 and len(generated.stdout) == 41
    assert (sweep / "tune").is_dir() and any((sweep / "tune").rglob("progress.csv"))  # Tune's own logs


def test_asha_stops_weak_trials_early_and_their_folders_say_so(tmp_path):
    spec = write_spec(tmp_path, "updates = 1500\neval_every = 100\nhidden = 16",
                      "eta = [0.2, 0.1, 0.0003, 0.0001]\ntrials_at_once = 1",
                      "[early_stopping]\ngrace_updates = 100\nreduction_factor = 2\n")
    sweep = tmp_path / "sweep"
    done = textgen("sweep", spec, "--out", sweep)
    assert done.returncode == 0, done.stderr
    rows = {r["settings"]["eta"]: r for r in results(sweep)}
    stopped = [r for r in rows.values() if r["status"] == "stopped early"]
    assert stopped, [(r["settings"], r["status"], r["updates"]) for r in rows.values()]
    assert rows[0.2]["status"] == "finished" and rows[0.2]["updates"] == 1500
    for row in stopped:
        assert row["updates"] < 1500
        verdict = json.loads((Path(row["folder"]) / "sweep_trial.json").read_text())
        assert verdict["status"] == "stopped early" and verdict["at_update"] == row["updates"]


def test_a_stopped_driver_resumes_without_rerunning_finished_trials_and_exactly(tmp_path):
    spec = write_spec(tmp_path, "updates = 30000\neval_every = 1000\ncheckpoint_every = 500\nhidden = 24",
                      "eta = [0.1, 0.05]\ntrials_at_once = 1")
    sweep = tmp_path / "sweep"
    driver = start("sweep", spec, "--out", sweep)
    wait_until(lambda: trials(sweep).get("trial-000", {}).get("status") == "running", timeout=120,
               what="the first trial under way")
    second = textgen("sweep", "--resume", sweep)  # a second driver on the same sweep is refused at once
    assert second.returncode == 1 and "the sweep is being run by process" in second.stderr, second.stderr

    def first_done_second_going() -> bool:
        state = trials(sweep)
        second = state.get("trial-001", {})
        return (state.get("trial-000", {}).get("status") == "ended" and second.get("status") == "running"
                and second.get("last_result", {}).get("update", 0) >= 2000)

    wait_until(first_done_second_going, timeout=120, what="one trial ended and the next one under way")
    finished_before = (sweep / "trials" / "trial-000" / "last.npz").read_bytes()
    mtime_before = (sweep / "trials" / "trial-000" / "last.npz").stat().st_mtime_ns
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert "continue with: textgen sweep --resume" in err
    assert trials(sweep)["trial-001"]["status"] == "pending"
    done = textgen("sweep", "--resume", sweep)
    assert done.returncode == 0, done.stderr
    assert (sweep / "trials" / "trial-000" / "last.npz").read_bytes() == finished_before
    assert (sweep / "trials" / "trial-000" / "last.npz").stat().st_mtime_ns == mtime_before  # not run again
    assert "tune-2" in os.listdir(sweep) and len(json.loads((sweep / "sweep.json").read_text())["runs"]) == 2
    assert [r["status"] for r in results(sweep)] == ["finished", "finished"]
    assert_same_as_uninterrupted(tmp_path, sweep / "trials" / "trial-001", "resumed")


def test_sigterm_stops_the_driver_as_ctrl_c_does_and_the_sweep_resumes(tmp_path):
    spec = write_spec(tmp_path, "updates = 40000\neval_every = 1000\ncheckpoint_every = 500\nhidden = 8", "eta = [0.1]")
    sweep = tmp_path / "sweep"
    driver = start("sweep", spec, "--out", sweep)
    wait_until(lambda: trials(sweep).get("trial-000", {}).get("last_result", {}).get("update", 0) >= 1000,
               timeout=120, what="the trial under way")
    driver.send_signal(signal.SIGTERM)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143, err
    assert err.splitlines()[-1] == f"textgen: the sweep stopped before every trial finished; continue with: textgen " \
                                   f"sweep --resume {sweep}", err
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    assert trials(sweep)["trial-000"]["status"] == "pending"
    assert json.loads((sweep / "sweep.json").read_text())["status"] == "stopped"
    done = textgen("sweep", "--resume", sweep)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in results(sweep)] == ["finished"]


def test_a_killed_worker_is_retried_from_its_last_checkpoint_and_ends_exactly(tmp_path):
    spec = write_spec(tmp_path, "updates = 40000\neval_every = 500\ncheckpoint_every = 500\nhidden = 24",
                      "eta = [0.1]")
    sweep = tmp_path / "sweep"
    driver = start("sweep", spec, "--out", sweep)

    def under_way() -> bool:
        last = trials(sweep).get("trial-000", {}).get("last_result", {})
        return last.get("update", 0) >= 2000 and "pid" in last

    wait_until(under_way, timeout=120, what="the trial under way")
    worker = trials(sweep)["trial-000"]["last_result"]["pid"]
    os.kill(worker, signal.SIGKILL)
    _, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err
    assert "Traceback" not in err and re.search(r"trial-000: its worker process died \(killed, out of memory, or "
                                                r"crashed\); started again from its last checkpoint \(retry 1 of 2\)",
                                                err), err
    final = trials(sweep)["trial-000"]
    assert final["status"] == "ended" and final["last_result"]["update"] == 40000
    assert final["last_result"]["pid"] != worker  # a new worker finished it
    assert_same_as_uninterrupted(tmp_path, sweep / "trials" / "trial-000", "retried")


def test_a_sweep_joins_a_two_node_cluster_through_address(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        spec = write_spec(tmp_path, "updates = 3000\neval_every = 500\nhidden = 16",
                          "eta = [0.05, 0.1, 0.2, 0.3]\ntrials_at_once = 2")
        sweep = tmp_path / "sweep"
        done = textgen("sweep", spec, "--out", sweep, "--address", cluster.address, timeout=300)
        assert done.returncode == 0, done.stderr
        state = trials(sweep)
        assert all(entry["status"] == "ended" for entry in state.values())
        nodes = {entry["last_result"]["node"] for entry in state.values()}
        assert len(nodes) == 2, nodes  # the trials ran on both nodes
        assert json.loads((sweep / "sweep.json").read_text())["runs"][0]["address"] == cluster.address
    finally:
        cluster.shutdown()
    time.sleep(0.5)


def test_address_auto_without_a_cluster_is_one_line_and_leaves_nothing(tmp_path):
    spec = write_spec(tmp_path, "updates = 100", "hidden = [8]")
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = textgen("sweep", spec, "--out", tmp_path / "sweep", "--address", "auto", env=env)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("textgen: error: --address auto: cannot join a Ray cluster there")
    assert not (tmp_path / "sweep").exists()


def test_a_trial_whose_run_refuses_its_input_fails_in_one_line_and_is_not_run_again(tmp_path):
    # eta 1e30 overflows the loss at update 2 (a sigma that overflows is refused before the first update now)
    spec = write_spec(tmp_path, "updates = 300\neval_every = 100\nhidden = 8", "eta = [0.1, 1e30]\nmax_failures = 2")
    (tmp_path / "specs").mkdir()  # its corpus is not beside it, and is read from the spec's folder, as the check
    spec = spec.rename(tmp_path / "specs" / "spec.toml")  # before Ray read it, by every trial too
    spec.write_text(spec.read_text().replace('corpus = ["book.txt"]', 'corpus = ["../book.txt"]'))
    sweep = tmp_path / "sweep"
    done = textgen("sweep", spec, "--out", sweep, cwd=tmp_path)
    err = done.stderr
    assert done.returncode == 1 and "Traceback" not in err and "started again" not in err, err
    reason = "the loss became inf at update 2"
    assert re.search(rf"^textgen: warning: trial-001 failed: {reason}.*\(1 trial to go\)$", err, re.M), err
    assert re.search(rf"^textgen: trial-001 failed: {reason}", err, re.M), err  # named in the closing lines
    assert err.splitlines()[-1] == f"textgen: 1 of 2 trials did not finish; the results of the others are in " \
                                   f"{sweep / 'results.csv'}", err
    state = trials(sweep)["trial-001"]
    assert state["status"] == "failed" and state["reason"].startswith(reason)
    assert [(r["trial"], r["status"]) for r in results(sweep)] == [("trial-000", "finished"), ("trial-001", "failed")]
    again = textgen("sweep", "--resume", sweep, cwd=tmp_path)  # it would fail the same way: it is not run again
    assert again.returncode == 1 and "0 of its 2 trials to run" in again.stderr, again.stderr
    assert len(json.loads((sweep / "sweep.json").read_text())["runs"]) == 1  # Ray did not start


def test_a_removed_trial_folder_is_pending_to_status_and_run_again_by_resume_from_the_spec_as_it_started(tmp_path):
    spec = write_spec(tmp_path, "updates = 200\neval_every = 100\n", "hidden = [8, 12]")
    sweep = tmp_path / "sweep"
    assert textgen("sweep", spec, "--out", sweep).returncode == 0
    spec.write_text(spec.read_text().replace("updates = 200", "updates = 900"))  # an edit after the start
    removed = sweep / "trials" / "trial-001"
    for path in sorted(removed.rglob("*"), reverse=True):
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    removed.rmdir()
    status = textgen("sweep", "--status", sweep)
    assert [line.split()[1:4] for line in status.stdout.splitlines()[1:]] == [["trial-000", "8", "finished"],
                                                                               ["trial-001", "12", "pending"]]
    done = textgen("sweep", "--resume", sweep)
    assert done.returncode == 0, done.stderr
    assert "1 of its 2 trials to run" in done.stderr, done.stderr
    assert sorted((r["trial"], r["status"], r["updates"]) for r in results(sweep)) == [
        ("trial-000", "finished", 200), ("trial-001", "finished", 200)]  # the spec as the sweep started
    assert_same_as_uninterrupted(tmp_path, removed, "removed")


def our_processes(mark: str) -> list[str]:
    """The live processes whose environment holds ``mark`` (a driver's and whatever Ray started from it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if mark.encode() in (proc / "environ").read_bytes() and (proc / "stat").read_text().split()[2] != "Z":
                # the whole command line: a Ray agent shows as python .../ray/dashboard/agent.py until it names itself
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError):
            continue
    return found


def hand_made_sweep(tmp_path: Path, updates: int) -> Path:
    """A sweep folder as textgen sweep makes it (one trial, pending), made here so that its first run is a resume."""
    spec = write_spec(tmp_path, f"updates = {updates}\neval_every = 1000\ncheckpoint_every = 500\nhidden = 8",
                      "eta = [0.1]")
    sweep = tmp_path / "sweep"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "spec.toml").write_bytes(spec.read_bytes())
    (sweep / "sweep.json").write_text(json.dumps({"spec": str(spec), "seed": 1, "trials": 1, "status": "stopped",
                                                  "runs": []}))
    (sweep / "trials.json").write_text(json.dumps({"trial-000": {"status": "pending", "settings": {"eta": 0.1},
                                                                 "seed": 5}}))
    return sweep


@pytest.mark.parametrize(("signals", "group", "status"), [
    ((signal.SIGINT, signal.SIGINT), False, 130),  # a double Ctrl-C of --resume
    ((signal.SIGTERM,), True, 143),  # timeout(1) and job schedulers signal the whole process group
])
def test_a_stopped_resume_leaves_no_ray_process_behind(tmp_path, signals, group, status):
    sweep = hand_made_sweep(tmp_path, 400000)
    mark = f"textgen-test-{uuid.uuid4()}"
    driver = start("sweep", "--resume", sweep, env=environment(TEXTGEN_TEST_MARK=mark), start_new_session=True)
    wait_until(lambda: trials(sweep).get("trial-000", {}).get("last_result", {}).get("update", 0) >= 1000,
               timeout=120, what="the trial under way")
    for signum in signals:
        os.killpg(driver.pid, signum) if group else driver.send_signal(signum)
        time.sleep(0.3)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == status, err
    assert "Traceback" not in err and f"continue with: textgen sweep --resume {sweep}" in err.splitlines()[-1], err
    wait_until(lambda: not our_processes(mark), timeout=15, what="Ray's processes gone", interval=0.2)
    assert trials(sweep)["trial-000"]["status"] == "pending"


def test_a_folder_in_the_way_of_tunes_own_is_left_alone_and_tune_uses_the_next_name(tmp_path):
    sweep = hand_made_sweep(tmp_path, 1000)  # its first run of the driver: Tune's folder would be SWEEP_DIR/tune
    (sweep / "tune").write_text("notes of mine")
    done = textgen("sweep", "--resume", sweep)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (sweep / "tune").read_text() == "notes of mine" and (sweep / "tune-2").is_dir()
    assert json.loads((sweep / "sweep.json").read_text())["runs"][0]["tune"] == "tune-2"


def test_a_finished_trial_is_said_to_end_at_its_last_update_not_its_last_evaluation(tmp_path):
    spec = write_spec(tmp_path, "updates = 130\neval_every = 50\nhidden = 8", "eta = [0.1]")
    done = textgen("sweep", spec, "--out", tmp_path / "sweep")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^textgen: trial-000 finished at update 130, last val [\d.]+ bpc \(the last one\)$", done.stderr,
                     re.M), done.stderr


def test_a_double_ctrl_c_as_tune_starts_the_trials_stops_in_one_line(tmp_path):
    # the second signal comes while Tune, stopped by the first, waits inside Ray's compiled code (ray.wait)
    spec = write_spec(tmp_path, "updates = 40000\neval_every = 1000\nhidden = 8", "eta = [0.1, 0.05]")
    mark = f"textgen-test-{uuid.uuid4()}"
    driver = start("sweep", spec, "--out", tmp_path / "sweep", env=environment(TEXTGEN_TEST_MARK=mark))
    assert driver.stderr.readline().startswith("textgen: sweep of 2 trials")  # said once Ray is up, as Tune starts
    time.sleep(1)
    for _ in range(2):
        driver.send_signal(signal.SIGINT)
        time.sleep(0.3)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("textgen: stopped"), err
    wait_until(lambda: not our_processes(mark), timeout=15, what="Ray's processes gone", interval=0.2)


def test_sigterm_to_the_group_while_ray_starts_leaves_no_ray_process_behind(tmp_path):
    spec = write_spec(tmp_path, "updates = 300\neval_every = 100\nhidden = 8", "eta = [0.1]")
    mark = f"textgen-test-{uuid.uuid4()}"
    driver = start("sweep", spec, "--out", tmp_path / "sweep", env=environment(TEXTGEN_TEST_MARK=mark),
                   start_new_session=True)
    wait_until(lambda: any("agent" in name.lower() for name in our_processes(mark)), timeout=120,
               what="Ray starting its agents", interval=0.02)
    os.killpg(driver.pid, signal.SIGTERM)  # as timeout(1) sends it, while ray.init starts Ray's processes
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143 and "Traceback" not in err, err
    wait_until(lambda: not our_processes(mark), timeout=15, what="Ray's processes gone", interval=0.2)


def test_a_stop_as_the_last_trial_ends_still_exits_with_the_stops_status(tmp_path):
    spec = write_spec(tmp_path, "updates = 300\neval_every = 100\nhidden = 8", "eta = [0.1]")
    sweep = tmp_path / "sweep"
    driver = start("sweep", spec, "--out", sweep)
    wait_until(lambda: trials(sweep).get("trial-000", {}).get("status") == "ended", timeout=120,
               what="the last trial ended", interval=0.02)
    driver.send_signal(signal.SIGTERM)  # while Tune ends its run, or while Ray stops
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 143 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("textgen: stopped after every trial had ended"), err


def test_a_sweep_on_a_full_disk_shows_no_traceback_of_rays(tmp_path):
    from commands import tmpfs

    spec = write_spec(tmp_path, "updates = 100\neval_every = 50\nhidden = 8", "eta = [0.1, 0.05]")
    with tmpfs(tmp_path / "small", "200k") as small:  # the trials fill it, then Tune cannot save its state
        done = textgen("sweep", spec, "--out", small / "sweep")
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith("textgen: "), done.stderr
