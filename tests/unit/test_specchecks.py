"""What create refuses before any job: the runtime-spec's MUST-errors that need no node."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scrun.core.bundle import parse_bundle_config
from scrun.core.specchecks import (
    CAPABILITIES, RLIMITS, asks_new_network_namespace, check_namespace_paths, first_unsearchable, host_id_of_root,
    namespace_paths)
from scrun.errors import InvalidInputError

pytestmark = pytest.mark.unit

USERNS = {"namespaces": [{"type": "user"}, {"type": "mount"}],
          "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
          "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


def config(process_extra=None, linux=None):
    return {"ociVersion": "1.0.2", "root": {"path": "/rootfs"},
            "process": {"args": ["true"], "cwd": "/", **(process_extra or {})}, "linux": linux or {}}


def parse(doc):
    return parse_bundle_config("/b", json.dumps(doc))


def refusal(doc) -> str:
    with pytest.raises(InvalidInputError) as err:
        parse(doc)
    return str(err.value)


def test_a_well_formed_config_passes():
    cfg = parse(config({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}],
                        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"], "ambient": []}}, USERNS))
    assert cfg.linux["uidMappings"][0]["hostID"] == 100000


@pytest.mark.parametrize("rlimits, words", [
    ([{"type": "RLIMIT_TEST", "soft": 1, "hard": 1}], ["process.rlimits[0].type", "'RLIMIT_TEST'", "not an rlimit"]),
    ([{"type": "NOFILE", "soft": 1, "hard": 1}], ["'NOFILE'"]),
    ([{"type": "RLIMIT_CORE", "soft": 1, "hard": 1}, {"type": "RLIMIT_CORE", "soft": 2, "hard": 2}], ["twice"]),
    ([{"type": "RLIMIT_CORE", "soft": 5, "hard": 1}], ["soft limit 5 is above hard limit 1"]),
    ([{"type": "RLIMIT_CORE", "soft": -1, "hard": 1}], ["integers >= 0"]),
    ([{"type": "RLIMIT_CORE", "soft": "1", "hard": 1}], ["integers >= 0"]),
    ([{"type": "RLIMIT_CORE", "soft": True, "hard": 1}], ["integers >= 0"]),
    ({"type": "RLIMIT_CORE"}, ["must be a list"]),
    (["RLIMIT_CORE"], ["must be an object"]),
])
def test_rlimits_the_spec_refuses(rlimits, words):
    message = refusal(config({"rlimits": rlimits}))
    assert message.startswith("/b/config.json: ") and "\n" not in message
    assert all(w in message for w in words), message


@pytest.mark.parametrize("caps, words", [
    ({"bounding": ["CAP_TEST"]}, ["process.capabilities.bounding", "'CAP_TEST'", "capabilities(7)"]),
    ({"effective": ["chown"]}, ["'chown'"]),
    ({"ambient": "CAP_CHOWN"}, ["must be a list"]),
    (["CAP_CHOWN"], ["must be an object"]),
])
def test_capabilities_the_spec_refuses(caps, words):
    message = refusal(config({"capabilities": caps}))
    assert all(w in message for w in words), message


@pytest.mark.parametrize("linux, words", [
    ({"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}, ["needs a user namespace"]),
    ({**USERNS, "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}]}, ["uidMappings[0]", "size > 0"]),
    ({**USERNS, "gidMappings": [{"containerID": 0, "hostID": -1, "size": 1}]}, ["gidMappings[0]"]),
    ({**USERNS, "uidMappings": [{"containerID": 0, "hostID": 2 ** 32, "size": 1}]}, ["below 2^32"]),
    ({**USERNS, "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10},
                                {"containerID": 5, "hostID": 5000, "size": 10}]}, ["overlapping container ids"]),
    ({**USERNS, "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10},
                                {"containerID": 10, "hostID": 1009, "size": 1}]}, ["overlapping host ids"]),
    ({**USERNS, "uidMappings": {"containerID": 0}}, ["must be a list"]),
    ([], ["linux must be an object"]),
])
def test_id_mappings_the_spec_refuses(linux, words):
    message = refusal({**config(), "linux": linux})
    assert all(w in message for w in words), message


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(1, 50)), min_size=1, max_size=4))
def test_mappings_are_refused_exactly_when_two_ranges_overlap(ranges):
    def overlap(a, b):
        return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]
    clash = any(overlap((ranges[i][k], ranges[i][2]), (ranges[j][k], ranges[j][2]))
                for i in range(len(ranges)) for j in range(i + 1, len(ranges)) for k in (0, 1))
    linux = {"namespaces": [{"type": "user"}],
             "uidMappings": [{"containerID": c, "hostID": h, "size": s} for c, h, s in ranges]}
    if clash:
        assert "overlapping" in refusal(config(linux=linux))
    else:
        parse(config(linux=linux))


def test_namespace_type_and_path_kind_must_agree():
    linux = {"namespaces": [{"type": "uts", "path": "/proc/1/ns/cgroup"}, {"type": "network", "path": "/run/netns/x"},
                            {"type": "pid"}]}
    assert namespace_paths(linux) == ["/proc/1/ns/cgroup", "/run/netns/x"]
    with pytest.raises(InvalidInputError, match=r"/proc/1/ns/cgroup is a cgroup namespace, not uts"):
        check_namespace_paths(linux, "c.json", {"/proc/1/ns/cgroup": "cgroup", "/run/netns/x": None})
    check_namespace_paths(linux, "c.json", {"/proc/1/ns/cgroup": "uts", "/run/netns/x": None})
    check_namespace_paths({"namespaces": [{"type": "network", "path": "/proc/1/ns/net"}]}, "c", {"/proc/1/ns/net": "net"})
    with pytest.raises(InvalidInputError, match="given twice"):
        check_namespace_paths({"namespaces": [{"type": "pid"}, {"type": "pid"}]}, "c", {})
    with pytest.raises(InvalidInputError, match="type must be one of"):
        check_namespace_paths({"namespaces": [{"type": "nope"}]}, "c", {})


def test_who_the_container_root_is_on_the_host():
    assert host_id_of_root(USERNS["uidMappings"]) == 100000
    assert host_id_of_root([{"containerID": 1, "hostID": 5, "size": 9}, {"containerID": 0, "hostID": 7, "size": 1}]) == 7
    assert host_id_of_root([{"containerID": 1, "hostID": 5, "size": 9}]) is None
    assert host_id_of_root(None) is None


def test_the_first_directory_the_mapped_root_cannot_search():
    chain = [("/var", 0, 0, 0o40755), ("/var/lib/containers", 0, 0, 0o40700), ("/var/lib/containers/x", 100000, 100000, 0o40700)]
    assert first_unsearchable(chain, USERNS) == ("/var/lib/containers", 0, 0o700)
    chain[1] = ("/var/lib/containers", 0, 0, 0o40711)
    assert first_unsearchable(chain, USERNS) is None  # 0700 but its own: owner and group mapped
    group_only = [("/srv", 0, 100000, 0o40710)]
    assert first_unsearchable(group_only, USERNS) is None
    # A map that includes host root: its capabilities apply to root-owned directories.
    with_root = {"uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
                 "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}
    assert first_unsearchable([("/run/x", 0, 0, 0o40700)], with_root) is None
    assert first_unsearchable([("/run/x", 5, 5, 0o40700)], with_root) == ("/run/x", 5, 0o700)
    assert first_unsearchable([("/run/x", 0, 0, 0o40700)], {}) is None  # no mapping, no verdict


def test_the_tables_are_complete():
    assert len(RLIMITS) == 16 and len(CAPABILITIES) == 41


@pytest.mark.parametrize("linux, asks", [
    ({"namespaces": [{"type": "pid"}, {"type": "network"}]}, True),          # docker --network none
    ({"namespaces": [{"type": "network", "path": ""}]}, True),
    ({"namespaces": [{"type": "network", "path": "/run/netns/x"}]}, False),  # podman's, made by the engine
    ({"namespaces": [{"type": "pid"}, {"type": "mount"}]}, False),           # --network host
    ({"namespaces": {"type": "network"}}, False),                            # not a list: checked elsewhere
    ({}, False),
])
def test_a_new_network_namespace_is_asked_for_only_without_a_path(linux, asks):
    assert asks_new_network_namespace(linux) is asks
