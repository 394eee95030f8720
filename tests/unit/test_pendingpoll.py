"""anchor/pendingpoll.py: which pending jobs share one squeue poll."""
import asyncio

import pytest

from scrun.anchor.pendingpoll import PendingPoll

pytestmark = pytest.mark.unit


def test_jobs_whose_squeue_environment_matches_share_a_poll():
    async def polls():
        base = {"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf"}
        a = PendingPoll.shared({**base, "SCRUN_ID": "a", "SLURM_JOB_ID": "1"})
        b = PendingPoll.shared({**base, "SCRUN_ID": "b", "SLURM_JOB_ID": "2"})
        other_conf = PendingPoll.shared({**base, "SLURM_CONF": "/tmp/other/slurm.conf"})
        other_format = PendingPoll.shared({**base, "SQUEUE_FORMAT": "%i"})
        return a, b, other_conf, other_format

    a, b, other_conf, other_format = asyncio.run(polls())
    assert a is b and a.env == {"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf"}
    assert other_conf is not a and other_format is not a
    again, *_ = asyncio.run(polls())
    assert again is not a, "a poll belongs to its event loop"
