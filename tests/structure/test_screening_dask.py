"""A screen on a local dask cluster (127.0.0.1, two worker processes): the serial rows,
in order, through a worker killed mid-chunk and a client killed mid-screen."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

distributed = pytest.importorskip("distributed")

from ase_alchemical.structure.screening import screen_elpasolites  # noqa: E402

CHUNK = 40  # 420 compositions of the 7 elements: 11 chunks


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        yield cluster, client


@pytest.fixture(scope="module")
def serial(screen_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "serial.csv"
    screen_elpasolites(screen_model, out, chunk_size=CHUNK, progress=False)
    return out.read_text()


def _slow_chunks(seconds: float, kill_marker=None):
    """A worker plugin that delays each screen chunk by ``seconds`` as it starts and, with
    ``kill_marker``, kills its own worker process at the third chunk it starts (once on
    the cluster: the marker file records it)."""

    class SlowChunks(distributed.WorkerPlugin):
        name = "slow-chunks"

        def setup(self, worker):
            self.started = 0

        def transition(self, key, start, finish, **kwargs):
            if finish != "executing" or "_screen_chunk" not in str(key):
                return
            self.started += 1
            if kill_marker is not None and self.started == 3 and not os.path.exists(kill_marker):
                with open(kill_marker, "w") as f:
                    f.write(str(key))
                os.kill(os.getpid(), signal.SIGKILL)  # mid-chunk: the task is executing
            time.sleep(seconds)

    return SlowChunks()


def _remove_plugin(client):
    client.unregister_worker_plugin("slow-chunks")


def test_distributed_screen_writes_the_serial_rows(screen_model, cluster, serial, tmp_path):
    _, client = cluster
    out = tmp_path / "dask.csv"
    result = screen_elpasolites(screen_model, out, chunk_size=CHUNK, progress=False, client=client)
    assert result["finished"]
    assert out.read_text() == serial


def test_a_worker_killed_mid_chunk_loses_nothing(screen_model, cluster, serial, tmp_path):
    _, client = cluster
    marker = tmp_path / "killed"
    client.register_plugin(_slow_chunks(0.05, kill_marker=str(marker)))
    try:
        out = tmp_path / "dask.csv"
        result = screen_elpasolites(
            screen_model, out, chunk_size=CHUNK, progress=False, client=client
        )
    finally:
        _remove_plugin(client)
    assert marker.exists(), "no worker was killed: the test did not test anything"
    assert result["finished"]
    assert out.read_text() == serial  # same rows, same order, no duplicates, none lost
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_a_killed_client_resumes(screen_model, cluster, serial, tmp_path):
    """The client (a CLI process) is killed after its second checkpoint; running the same
    command again finishes the screen from there."""
    local, client = cluster
    path = tmp_path / "model.pt"
    screen_model.save(path)
    out = tmp_path / "dask.csv"
    state = tmp_path / "dask.csv.partial.json"
    command = [
        sys.executable, "-m", "ase_alchemical.cli", "screen", "--model", str(path),
        "--out", str(out), "--chunk-size", str(CHUNK), "--quiet",
        "--dask", local.scheduler_address,
    ]  # fmt: skip
    client.register_plugin(_slow_chunks(0.5))
    try:
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if state.exists() and json.loads(state.read_text())["chunks_done"] >= 2:
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL, first.stdout.read().decode()
    finally:
        _remove_plugin(client)
    done = json.loads(state.read_text())["chunks_done"]
    assert 2 <= done < -(-420 // CHUNK) and not out.exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert out.read_text() == serial
    assert not state.exists()


def test_cli_local_cluster_and_a_missing_scheduler(screen_model, serial, tmp_path, capsys):
    from ase_alchemical.cli import main

    path = tmp_path / "model.pt"
    screen_model.save(path)
    out = tmp_path / "local.csv"
    args = ["screen", "--model", str(path), "--out", str(out), "--chunk-size", str(CHUNK)]
    assert main([*args, "--quiet", "--workers", "2"]) == 0
    assert out.read_text() == serial
    assert main([*args, "--overwrite", "--dask", "tcp://127.0.0.1:1"]) == 1
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


def test_a_model_sent_to_a_worker_leaves_its_variance_cache_behind(screen_model):
    import pickle

    from ase_alchemical.data.datasets import build_elpasolite

    atoms = [build_elpasolite("Li", "Na", "Cs", "F")]
    energy, std = screen_model.predict_per_atom(atoms, return_std=True)
    assert screen_model._variance is not None  # built by that prediction
    copy = pickle.loads(pickle.dumps(screen_model))
    assert copy._variance is None
    assert copy.predict_per_atom(atoms, return_std=True) == (energy, std)
