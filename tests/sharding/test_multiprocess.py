"""Two processes on localhost (``jax.distributed`` with gloo CPU collectives, 2 devices
each) train BPR-MF on one ``data=2 x model=2`` mesh spanning both; the result equals the
one-process, one-device run."""

import os
import socket
import subprocess
import sys

import numpy as np
from multiprocess_case import train_case

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    coordinator = f"localhost:{_free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("ROBUSTJAX_CPU_DEVICES", None)
    outs = [tmp_path / f"p{i}.npz" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "multiprocess_worker.py"),
                coordinator,
                "2",
                str(i),
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, out in enumerate(outs)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} failed:\n{logs[i][-3000:]}"
    ref, ref_losses = train_case(None)
    for out in outs:
        got = np.load(out)
        assert int(got["process_count"]) == 2 and int(got["local_devices"]) == 2
        np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-5)
        for name, table in ref.items():
            np.testing.assert_allclose(got["/".join(name)], table, rtol=1e-5, atol=1e-6)
