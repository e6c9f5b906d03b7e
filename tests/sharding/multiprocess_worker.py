"""One process of the 2-process test (tests/sharding/test_multiprocess.py): joins the run,
trains BPR-MF for two epochs on a data=2 x model=2 mesh spanning both processes, and writes
the gathered parameters and epoch losses to ``OUT`` (an .npz).

Usage: python multiprocess_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID OUT
"""

import sys

from robustjax import sharding


def main(coordinator: str, num_processes: int, process_id: int, out: str) -> None:
    sharding.initialize_distributed(coordinator, num_processes, process_id, local_devices=2)
    import numpy as np
    from multiprocess_case import train_case  # after the distributed init

    mesh = sharding.make_mesh(data=2, model=2)
    params, losses = train_case(mesh)
    flat = {"/".join(map(str, k)): v for k, v in params.items()}
    np.savez(
        out,
        losses=np.asarray(losses),
        process_count=__import__("jax").process_count(),
        local_devices=__import__("jax").local_device_count(),
        **flat,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
