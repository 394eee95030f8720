"""core.cdi and its Slurm parsers: markers → GRES request, Slurm's ids → the node's annotation,
the node's spec → config.json edits."""
from __future__ import annotations

import json

import pytest

from scrun.core import cdi
from scrun.core.nodebundle import node_config
from scrun.slurm.argv import build_gres_counts_argv, build_job_details_argv
from scrun.slurm.parse import expand_hostlist, parse_gres_counts, parse_gres_ids

KIND = "example.com/gpu"


def test_markers_become_a_gres_request():
    env = ["PATH=/bin", f"SCRUN_CDI_A_0={KIND}=0", f"SCRUN_CDI_A_1={KIND}=1", "SCRUN_PARTITION=gpu"]
    requests = cdi.requested_devices(env)
    assert requests == {KIND: {"0", "1"}}
    assert cdi.gres_request(requests, {}) == "gpu:2"
    assert cdi.gres_request({KIND: {"all"}}, {"gpu": 4}) == "gpu:4"
    assert cdi.gres_request({KIND: {"0"}, "vendor.io/fpga": {"x"}}, {}) == "gpu:1,fpga:1"
    assert cdi.without_markers(env) == ["PATH=/bin", "SCRUN_PARTITION=gpu"]
    assert cdi.requested_devices(["PATH=/bin"]) == {}


@pytest.mark.parametrize("marker", ["SCRUN_CDI_X=gpu=0", "SCRUN_CDI_X=example.com/gpu", "SCRUN_CDI_X=example.com/gpu=",
                                    "SCRUN_CDI_X=examplecom/gpu=0", "SCRUN_CDI_X=example.com/a/b=0"])
def test_a_malformed_marker_is_refused_by_name(marker):
    with pytest.raises(ValueError, match=marker.split("=", 1)[0]):
        cdi.requested_devices([marker])


def test_all_needs_a_node_that_has_the_gres():
    with pytest.raises(ValueError, match="no node of the partition has GRES gpu"):
        cdi.gres_request({KIND: {"all"}}, {"fpga": 2})


DETAILS_2205 = """JobId=12 JobName=scrun:abc
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,mem=100M,node=1,billing=1,gres/gpu=1
     Nodes=iso1 CPU_IDs=0 Mem=100 GRES=gpu:1(IDX:1)
   MinCPUsNode=1 MinMemoryCPU=100M MinTmpDiskNode=0
"""


def test_slurms_ids_per_node_become_the_nodes_annotation():
    ids = parse_gres_ids(DETAILS_2205)
    assert ids == {"iso1": {"gpu": ["1"]}}
    assert parse_gres_ids("     Nodes=n[1-2] CPU_IDs=0-1 Mem=0 GRES=gpu:a100:2(IDX:0,2)\n") == {
        "n1": {"gpu": ["0", "2"]}, "n2": {"gpu": ["0", "2"]}}
    annotation = cdi.node_annotation({KIND: {"0"}}, ids)
    assert json.loads(annotation) == {"iso1": [f"{KIND}=1"]}
    assert cdi.devices_for_node({cdi.NODE_ANNOTATION: annotation}, "iso1") == [(KIND, "1")]
    assert cdi.devices_for_node({cdi.NODE_ANNOTATION: annotation}, "n1") == []
    assert cdi.devices_for_node({cdi.NODE_ANNOTATION: "not json"}, "iso1") == []
    assert expand_hostlist("n[01-02],login") == ["n01", "n02", "login"]
    assert parse_gres_counts("gpu:2\n(null)\ngpu:tesla:4(S:0-1)\nmps:100\n") == {"gpu": 4, "mps": 100}
    assert build_job_details_argv("scontrol", 12) == ["scontrol", "--details", "show", "job", "12"]
    assert build_gres_counts_argv("sinfo", "gpu")[-1] == "--partition=gpu"


def test_the_node_config_drops_the_markers_and_carries_the_ids():
    config = {"process": {"env": ["A=1", f"SCRUN_CDI_X={KIND}=0"]}, "root": {"path": "/r"}, "annotations": {"k": "v"}}
    out = node_config(config, slurm_version=(24, 11, 0), root_path="/r", terminal_size=None, cdi_devices='{"n1":[]}')
    assert out["process"]["env"] == ["A=1"] and out["annotations"] == {"k": "v", cdi.NODE_ANNOTATION: '{"n1":[]}'}
    assert config["process"]["env"][1].startswith("SCRUN_CDI_"), "the engine's config is not changed in place"


SPEC = {"cdiVersion": "0.5.0", "kind": KIND,
        "containerEdits": {"mounts": [{"hostPath": "/run/cdi", "containerPath": "/drv", "options": ["ro", "bind"]}]},
        "devices": [{"name": str(i), "containerEdits": {"env": [f"FAKE_GPU_{i}={i}"],
                                                         "deviceNodes": [{"path": f"/dev/g{i}"}]}} for i in range(2)]}


def test_the_nodes_spec_edits_the_config_for_exactly_the_ids():
    specs = cdi.index_specs([{"kind": KIND, "devices": []}, SPEC, {"kind": "bad"}])
    config = {"process": {"env": ["PATH=/bin", "FAKE_GPU_1=stale"]}, "mounts": []}
    out = cdi.apply_devices(config, [(KIND, "1")], specs, lambda path: ("c", 1, 3))
    assert out["process"]["env"] == ["PATH=/bin", "FAKE_GPU_1=1"]
    assert out["linux"]["devices"] == [{"path": "/dev/g1", "type": "c", "major": 1, "minor": 3}]
    assert out["linux"]["resources"]["devices"] == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    assert out["mounts"] == [{"destination": "/drv", "type": "bind", "source": "/run/cdi", "options": ["ro", "bind"]}]
    two = cdi.apply_devices(config, [(KIND, "0"), (KIND, "1")], specs, lambda path: ("c", 1, 3))
    assert len(two["mounts"]) == 1 and [d["path"] for d in two["linux"]["devices"]] == ["/dev/g0", "/dev/g1"]
    assert config == {"process": {"env": ["PATH=/bin", "FAKE_GPU_1=stale"]}, "mounts": []}
    with pytest.raises(KeyError, match="example.com/gpu=7"):
        cdi.apply_devices(config, [(KIND, "7")], specs, lambda path: ("c", 1, 3))


def test_dockers_gpus_flag_is_a_request_for_nvidia_gpus():
    hook = ("/usr/local/bin/nvidia-container-runtime-hook",)
    assert cdi.nvidia_request(hook, ["NVIDIA_VISIBLE_DEVICES=0,1", "A=1"]) == {"nvidia.com/gpu": {"0", "1"}}
    assert cdi.nvidia_request(hook, ["NVIDIA_VISIBLE_DEVICES=all"]) == {"nvidia.com/gpu": {"all"}}
    assert cdi.nvidia_request(hook, ["NVIDIA_VISIBLE_DEVICES=void"]) == {}
    assert cdi.nvidia_request((), ["NVIDIA_VISIBLE_DEVICES=all"]) == {}, "an image's variable alone asks for nothing"
    config = {"process": {"env": []}, "root": {"path": "/r"},
              "hooks": {"prestart": [{"path": hook[0], "args": ["nvidia-container-runtime-hook", "prestart"]},
                                     {"path": "/usr/bin/other"}]}}
    out = node_config(config, slurm_version=(24, 11, 0), root_path="/r", terminal_size=None, cdi_devices="{}")
    assert out["hooks"] == {"prestart": [{"path": "/usr/bin/other"}]}, "the login node's stub hook is not the node's"
