"""Settings precedence, oci.conf/slurm.conf parsing with file:line, logging sinks and JSON lines."""
import io
import json

import pytest

from scrun.config.conffile import read_conf
from scrun.config.paths import default_root
from scrun.core.identity import Identity
from scrun.config.defaults import resolve_slurm_conf
from scrun.config.settings import build_settings, load_node_config, parse_oci_conf
from scrun.errors import ConfigError
from scrun.log import DEBUG2, DEBUG3, VERBOSE, get_logger, log_config_from, parse_level, setup_logging

pytestmark = pytest.mark.unit

RUN_MODE = 'RunTimeRun="exec crun run --bundle %b %n-%j"\nRunTimeKill="crun kill -a %n-%j"\nRunTimeDelete="crun delete --force %n-%j"\n'


def test_slurm_conf_precedence():
    assert resolve_slurm_conf("/f.conf", {"SLURM_CONF": "/e.conf"}) == "/f.conf"
    assert resolve_slurm_conf(None, {"SLURM_CONF": "/e.conf"}) == "/e.conf"
    assert resolve_slurm_conf(None, {}) == "/etc/slurm/slurm.conf"


def test_conf_reader_keeps_lines_and_follows_include(tmp_path):
    (tmp_path / "extra.conf").write_text("PartitionName=p Nodes=ALL\n")
    conf = tmp_path / "slurm.conf"
    conf.write_text("# comment\nClusterName=c  # trailing\nInclude extra.conf\nSlurmctldHost=h(1.2.3.4)\n")
    lines = read_conf(str(conf))
    assert [(c.key, c.value, c.lineno) for c in lines] == [
        ("ClusterName", "c", 2), ("PartitionName", "p", 1), ("Nodes", "ALL", 1), ("SlurmctldHost", "h(1.2.3.4)", 4)]
    assert lines[1].path.endswith("extra.conf")


def test_oci_conf_values(tmp_path):
    path = tmp_path / "oci.conf"
    path.write_text(RUN_MODE + "SrunPath=/opt/slurm/bin/srun\nSrunArgs=--mpi=none\nSrunArgs=--overlap\n"
                    "DisableCleanup=true\nstdiodebug=debug\nEnvExclude=^SECRET_\n")
    oci = parse_oci_conf(str(path))
    assert oci.srun_path == "/opt/slurm/bin/srun" and oci.srun_args == ("--mpi=none", "--overlap")
    assert oci.disable_cleanup and oci.stdio_debug == "debug"


@pytest.mark.parametrize("text,needle", [
    (RUN_MODE + "Bogus=1\n", ":4: unknown oci.conf key 'Bogus'"),
    (RUN_MODE + "SrunPath=srun\n", ":4: SrunPath must be an absolute path"),
    (RUN_MODE + "DisableCleanup=maybe\n", ":4: DisableCleanup='maybe' is not a boolean"),
    (RUN_MODE + "EnvExclude=(\n", ":4: EnvExclude is not a valid regular expression"),
    (RUN_MODE + "FileDebug=chatty\n", ":4: FileDebug: invalid log level"),
    ("SrunArgs=-v\n", "no RunTime* command is set"),
    (RUN_MODE + 'RunTimeStart="x"\n', "do not form a valid set"),
    ('RunTimeRun="unterminated\n', ":1: No closing quotation"),
])
def test_oci_conf_errors_carry_file_and_line(tmp_path, text, needle):
    path = tmp_path / "oci.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        parse_oci_conf(str(path))
    assert needle in str(info.value) and str(path) in str(info.value)


def test_missing_slurm_conf_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read .*/nope.conf: No such file \(set SLURM_CONF or pass -f\)"):
        load_node_config(str(tmp_path / "nope.conf"))
    (tmp_path / "slurm.conf").write_text("ClusterName=x\n")
    assert load_node_config(str(tmp_path / "slurm.conf")).path is None  # no oci.conf: not fatal for scrun


def _ids(uid, real_uid=None, userns=False):
    real = uid if real_uid is None else real_uid
    return Identity(uid=uid, gid=uid, real_uid=real, real_gid=real, in_user_namespace=userns)


def test_default_root(tmp_path):
    assert default_root(_ids(0), {}) == ("/run/scrun", None)
    assert default_root(_ids(1000), {"XDG_RUNTIME_DIR": str(tmp_path)}) == (str(tmp_path / "scrun"), None)
    root, note = default_root(_ids(987654), {})
    assert root == "/tmp/scrun-987654" and "/run/user/987654 does not exist" in note


def test_default_root_of_rootless_podman_is_the_real_users(tmp_path):
    """Root inside a user namespace is the real user outside: never /run/scrun, never /run/user/0."""
    root, note = default_root(_ids(0, real_uid=987654, userns=True), {})
    assert root == "/tmp/scrun-987654" and "/run/user/987654 does not exist" in note
    assert default_root(_ids(0, real_uid=987654, userns=True), {"XDG_RUNTIME_DIR": str(tmp_path)})[0] == str(tmp_path / "scrun")


@pytest.mark.parametrize("text,level", [("quiet", 0), ("FATAL", 1), ("error", 2), ("info", 3), ("verbose", 4),
                                        ("debug", 5), ("debug5", 9), ("7", 7)])
def test_levels(text, level):
    assert parse_level(text) == level


def test_log_precedence():
    assert log_config_from({}).stderr_level == 3
    assert log_config_from({}, oci_overrides={"stdio_debug": "error"}).stderr_level == 2
    assert log_config_from({"SCRUN_DEBUG": "debug"}, oci_overrides={"stdio_debug": "error"}).stderr_level == 5
    cfg = log_config_from({"SCRUN_DEBUG": "verbose", "SCRUN_STDERR_DEBUG": "quiet", "SCRUN_FILE_DEBUG": "debug3",
                           "SCRUN_SYSLOG_DEBUG": "error"})
    assert (cfg.stderr_level, cfg.file_level, cfg.syslog_level) == (0, 7, 2)
    assert log_config_from({"SCRUN_STDERR_DEBUG": "error"}, verbose=2).stderr_level == 4
    assert log_config_from({}, debug=True).stderr_level == 5
    with pytest.raises(ValueError, match="SCRUN_FILE_DEBUG"):
        log_config_from({"SCRUN_FILE_DEBUG": "nope"})
    with pytest.raises(ValueError, match="--log-format"):
        log_config_from({}, log_format="xml")


def test_json_log_lines_have_level_msg_time(tmp_path):
    log_file = tmp_path / "log.json"
    stream = io.StringIO()
    logger = setup_logging(log_config_from({}, log_file=str(log_file), log_format="json"), stderr_stream=stream)
    logger.error("bad %s", "thing")
    logger.info("hello")
    logger.debug("hidden")
    docs = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [(d["level"], d["msg"]) for d in docs] == [("error", "bad thing"), ("info", "hello")]
    assert all("T" in d["time"] and ("+" in d["time"] or "Z" in d["time"]) for d in docs)
    assert stream.getvalue() == "scrun: error: bad thing\nscrun: hello\n"
    setup_logging(log_config_from({"SCRUN_STDERR_DEBUG": "quiet"}), stderr_stream=stream)
    get_logger().error("not shown")
    assert "not shown" not in stream.getvalue()


def test_log_levels_sinks_and_a_bug_report(tmp_path):
    stream = io.StringIO()
    text_log = tmp_path / "log.txt"
    logger = setup_logging(log_config_from({"SCRUN_STDERR_DEBUG": "verbose", "SCRUN_FILE_DEBUG": "debug2"},
                                           log_file=str(text_log)), stderr_stream=stream)
    logger.log(VERBOSE, "seen %d", 1)
    logger.debug("file only")
    logger.log(DEBUG3, "nowhere")
    assert logger.isEnabledFor(DEBUG2) and not logger.isEnabledFor(DEBUG3)
    try:
        raise KeyError("boom")
    except KeyError:
        logger.error("bug: %r", "x", exc_info=True)
    assert stream.getvalue().startswith("scrun: verbose: seen 1\nscrun: error: bug: 'x'\nTraceback (most recent call last):")
    lines = text_log.read_text().splitlines()
    assert [line.split("] ", 1)[1] for line in lines[:3]] == ["verbose: seen 1", "debug: file only", "error: bug: 'x'"]
    assert lines[0].startswith("[") and "KeyError: 'boom'" in lines[-1]
    logger.close()
    logger.error("after close")
    assert "after close" not in stream.getvalue() + text_log.read_text()


def test_settings_object_is_frozen(tmp_path):
    s = build_settings(root_flag=str(tmp_path), slurm_conf_flag=None, env={}, identity=_ids(0), verbose=0, debug=False,
                       log_file=None, log_format=None)
    with pytest.raises(AttributeError):
        s.root = "/x"
    with pytest.raises(ConfigError, match="SCRUN_DEBUG"):
        build_settings(root_flag=None, slurm_conf_flag=None, env={"SCRUN_DEBUG": "x"}, identity=_ids(0), verbose=0,
                       debug=False, log_file=None, log_format=None)


def test_scrun_conf_names_staging_and_the_node_guard(tmp_path):
    from scrun.config.settings import load_site_staging
    from scrun.errors import ConfigError

    stage = tmp_path / "stage"
    stage.mkdir()
    slurm_conf = str(tmp_path / "slurm.conf")
    assert load_site_staging(slurm_conf) == (None, (), True, None, None)  # no scrun.conf: no staging, guarded
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nSharedPaths=/home,/scratch\n")
    assert load_site_staging(slurm_conf) == (str(stage), ("/home", "/scratch", str(stage)), True, None, None)
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nNodeGuard=no\n")
    assert load_site_staging(slurm_conf).node_guard is False
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nNodeGuard=maybe\n")
    with pytest.raises(ConfigError, match=r"scrun.conf:2: NodeGuard must be yes or no, got 'maybe'"):
        load_site_staging(slurm_conf)


def test_scrun_conf_image_cache_must_be_a_shared_directory(tmp_path):
    from scrun.config.settings import load_site_staging
    from scrun.errors import ConfigError

    stage, cache = tmp_path / "stage", tmp_path / "stage" / "cache"
    cache.mkdir(parents=True)
    slurm_conf = str(tmp_path / "slurm.conf")
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nImageCache={cache}\n")
    assert load_site_staging(slurm_conf).image_cache == str(cache)
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nImageCache={cache}\nImageCacheSize=50G\n")
    assert load_site_staging(slurm_conf).image_cache_size == 50 << 30
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nImageCache={cache}\nImageCacheSize=big\n")
    with pytest.raises(ConfigError, match=r"scrun.conf:3: ImageCacheSize must be a size \(e.g. 50G, 512M\), got 'big'"):
        load_site_staging(slurm_conf)
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nImageCache={tmp_path}\n")
    with pytest.raises(ConfigError, match=r"scrun.conf:2: ImageCache .* must be under SharedPaths"):
        load_site_staging(slurm_conf)
    (tmp_path / "scrun.conf").write_text(f"StageDir={stage}\nImageCache={tmp_path}/missing\n")
    with pytest.raises(ConfigError, match=r"scrun.conf:2: ImageCache .*missing: not a directory"):
        load_site_staging(slurm_conf)


@pytest.mark.parametrize("when", [0.0, 1796380726.869597, 1796380726.9999999, 1700000000.000001])
@pytest.mark.parametrize("digits", [3, 6])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/St_Johns"])
def test_local_iso_time_is_datetimes(monkeypatch, when, digits, zone):
    import datetime
    import time

    from scrun.log import local_iso_time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        spec = "milliseconds" if digits == 3 else "microseconds"
        assert local_iso_time(when, digits) == datetime.datetime.fromtimestamp(when).astimezone().isoformat(timespec=spec)
    finally:
        monkeypatch.undo()
        time.tzset()

