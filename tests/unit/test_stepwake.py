"""Which of srun's sockets the anchor may wake (anchor.stepwake): its only listening one."""
import pytest

from scrun.anchor.stepwake import listening_ports

pytestmark = pytest.mark.unit

# /proc/<srun>/net/tcp while srun waits in step_ctx_create_timeout (captured on 22.05; the table
# is the network namespace's: other processes' listeners are in it too).
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:A857 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13487889 1 00000000df31886b 100 0 0 10 0
   1: 00000000:1AA4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 13159960 1 00000000ef1583fe 100 0 0 10 0
   2: 0100007F:A857 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 13487999 1 00000000df31886b 100 0 0 10 0
"""


def test_only_the_processes_own_listening_sockets_count():
    assert listening_ports([TCP], {"13487889"}) == [0xA857]
    assert listening_ports([TCP], {"13487889", "13159960"}) == [0xA857, 0x1AA4]
    assert listening_ports([TCP], {"13487999"}) == []  # connected, not listening
    assert listening_ports([TCP], set()) == []
    assert listening_ports(["", "header only\n"], {"1"}) == []
