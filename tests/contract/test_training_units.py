"""Fast tests of the training plumbing: `entrypoint.R train` run with Rscript on the host against a
temporary /opt/ml (SAGEMAKER_BASE_DIR), no container. The container tests are in test_training.py."""

import json
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from contract.training_support import (
    DUMP_PROGRAM,
    FETCH_CODE,
    PROJECT_ROOT,
    S3_CREDENTIALS,
    OptMl,
    encode_script_mode,
    make_tarball,
    run_s3_server,
    run_train,
    symlink_chain,
    tar_member,
    toolkit_env_vars,
    toolkit_python,
    upload,
)
from contract.training_toolkit_snapshot import SNAPSHOT_CPUS, SNAPSHOT_ENV_VARS

# Hyperparameters of every type, as the SDK sends them in script mode (JSON-encoded) ...
USER_HYPERPARAMETERS = {
    "epochs": 10,
    "alpha": 1.0,
    "learning_rate": 0.001,
    "tiny": 1e-07,
    "huge": 1e300,
    "big": 12345678901234567890,
    "flag": True,
    "off": False,
    "name": "rpart model",
    "quote": 'it\'s "quoted"',
    "unicode": "café ü",
    "list": [1, 2.5, "a", True, None, "it's"],
    "obj": {"b": [1, 2], "a": "x", "c": {"d": None}},
    "nothing": None,
    "empty": "",
    "k": "short",
    "Zeta": "upper",
}
# ... and values that are not JSON, which arrive raw (hyperparameters given without source_dir).
RAW_HYPERPARAMETERS = {"raw": "just text", "raw_brace": "{not json", "raw_number": "1.2.3"}


def comparison_tree(tmp_path):
    """The /opt/ml of a script-mode job on host algo-2 of three, with two channels."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", {"dump.R": DUMP_PROGRAM})
    sagemaker = {
        "sagemaker_program": "dump.R",
        "sagemaker_submit_directory": f"file://{tarball}",
        "sagemaker_region": "eu-west-1",
        "sagemaker_job_name": "job-1",
        "sagemaker_container_log_level": 20,
        "sagemaker_custom_flag": True,  # a framework parameter: SM_FRAMEWORK_PARAMS
        "_tuning_objective_metric": "validation:accuracy",
    }
    opt_ml.hyperparameters(
        {**encode_script_mode({**sagemaker, **USER_HYPERPARAMETERS}), **RAW_HYPERPARAMETERS}
    )
    opt_ml.channels(
        {
            "train": {
                "ContentType": "text/csv",
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            },
            "validation": {
                "TrainingInputMode": "File",
                "S3DistributionType": "ShardedByS3Key",
                "RecordWrapperType": "None",
            },
        }
    )
    group = {
        "instance_group_name": "homogeneousCluster",
        "instance_type": "ml.m5.xlarge",
        "hosts": ["algo-1", "algo-2", "algo-3"],
    }
    opt_ml.hosts(
        "algo-2",
        ["algo-1", "algo-2", "algo-3"],
        network_interface_name="eth1",
        current_instance_type="ml.m5.xlarge",
        current_group_name="homogeneousCluster",
        instance_groups=[group],
    )
    return opt_ml


def expected_toolkit_vars(opt_ml):
    """The toolkit's SM_* variables for opt_ml: computed by sagemaker-training when it is importable,
    else the snapshot it produced for this same tree (tests/training_toolkit_snapshot.py)."""
    python = toolkit_python()
    if python:
        return toolkit_env_vars(python, opt_ml, TRAINING_JOB_NAME="job-1")
    base = str(opt_ml.root)
    tarball = str(opt_ml.root.parent / "sourcedir.tar.gz")
    expected = {}
    for key, value in SNAPSHOT_ENV_VARS.items():
        value = value.replace("{base}", base).replace("{tarball}", tarball)
        # The snapshot's CPU count is the machine it was taken on; the toolkit counts this one.
        value = value.replace(f'"num_cpus":{SNAPSHOT_CPUS}', f'"num_cpus":{os.cpu_count()}')
        expected[key] = str(os.cpu_count()) if key == "SM_NUM_CPUS" else value
    return expected


def test_sm_variables_and_arguments_match_the_training_toolkit(rscript, tmp_path):
    opt_ml = comparison_tree(tmp_path)
    done = run_train(rscript, opt_ml, TRAINING_JOB_NAME="job-1")
    assert done.returncode == 0, done.stderr
    seen = opt_ml.dump()
    expected = expected_toolkit_vars(opt_ml)
    ours = {key: value for key, value in seen["env"].items() if key.startswith("SM_")}

    # Every variable the toolkit exports, with the same text (JSON byte for byte).
    for key, value in sorted(expected.items()):
        assert ours.get(key) == value, f"{key}: ours {ours.get(key)!r} != toolkit {value!r}"
    # Ours on top, documented: the host's rank and the checkpoint directory.
    assert set(ours) - set(expected) == {"SM_HOST_RANK", "SM_CHECKPOINT_DIR"}
    assert ours["SM_HOST_RANK"] == "1"
    assert ours["SM_CHECKPOINT_DIR"] == str(opt_ml.path("checkpoints"))
    # SM_TRAINING_ENV: every key of the toolkit's dict(Environment()).
    assert json.loads(ours["SM_TRAINING_ENV"]) == json.loads(expected["SM_TRAINING_ENV"])
    # The program's arguments are the toolkit's to_cmd_args(): str() of each value.
    assert seen["args"] == json.loads(expected["SM_USER_ARGS"])
    # Variables the toolkit sets in its own process, inherited by the program.
    assert seen["env"]["CURRENT_HOST"] == "algo-2"
    assert seen["env"]["SAGEMAKER_JOB_NAME"] == "job-1"
    assert seen["env"]["SAGEMAKER_REGION"] == "eu-west-1"
    assert seen["cwd"] == str(opt_ml.path("code"))


def test_hyperparameter_decoding_by_type(rscript, tmp_path):
    """Script-mode values are JSON-decoded (typed), other values arrive raw; the program sees them
    in SM_HPS / SM_HP_<NAME> (compact JSON, strings as they are) and as arguments (Python str())."""
    opt_ml = comparison_tree(tmp_path)
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    seen = opt_ml.dump()
    hps = json.loads(seen["env"]["SM_HPS"])
    assert hps == {**USER_HYPERPARAMETERS, **RAW_HYPERPARAMETERS}
    assert isinstance(hps["epochs"], int) and isinstance(hps["alpha"], float)
    env = seen["env"]
    assert env["SM_HP_EPOCHS"] == "10"
    assert env["SM_HP_ALPHA"] == "1.0"
    assert env["SM_HP_LEARNING_RATE"] == "0.001"
    assert env["SM_HP_TINY"] == "1e-07"
    assert env["SM_HP_HUGE"] == "1e+300"
    assert env["SM_HP_BIG"] == "12345678901234567890"
    assert env["SM_HP_FLAG"] == "true"
    assert env["SM_HP_NAME"] == "rpart model"
    assert env["SM_HP_UNICODE"] == "café ü"
    assert env["SM_HP_LIST"] == '[1,2.5,"a",true,null,"it\'s"]'
    assert env["SM_HP_OBJ"] == '{"a":"x","b":[1,2],"c":{"d":null}}'
    assert env["SM_HP_NOTHING"] == ""
    assert env["SM_HP_RAW"] == "just text"
    assert env["SM_HP_RAW_NUMBER"] == "1.2.3"
    args = seen["args"]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--epochs"] == "10"
    assert pairs["--flag"] == "True" and pairs["--off"] == "False"
    assert pairs["--list"] == "[1, 2.5, 'a', True, None, \"it's\"]"
    assert pairs["--obj"] == "a=x,b=[1, 2],c={'d': None}"
    assert pairs["--nothing"] == ""
    assert pairs["-k"] == "short"
    assert pairs["--quote"] == 'it\'s "quoted"'
    assert list(pairs) == sorted(pairs, key=lambda a: a.lstrip("-"))
    assert "--sagemaker_program" not in pairs and "--_tuning_objective_metric" not in pairs


def test_single_host_defaults_and_rank(rscript, tmp_path):
    """Without resourceconfig.json the job is one host, algo-1, rank 0."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    (opt_ml.path("code") / "dump.R").write_text(DUMP_PROGRAM)
    opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "dump.R"}))
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    env = opt_ml.dump()["env"]
    assert (env["SM_CURRENT_HOST"], env["SM_HOSTS"], env["SM_HOST_RANK"]) == ("algo-1", '["algo-1"]', "0")
    assert env["SM_CHANNELS"] == "[]" and env["SM_HPS"] == "{}"
    assert opt_ml.dump()["args"] == []


# ---- code sources ----------------------------------------------------------------------------------

PROGRAM_V2 = DUMP_PROGRAM + 'writeLines("v2", file.path(Sys.getenv("SM_MODEL_DIR"), "version.txt"))\n'


def job_with_code(tmp_path, submit=None):
    opt_ml = OptMl(tmp_path / "opt_ml")
    (opt_ml.path("code") / "stale.R").write_text("stop('stale code must not survive')\n")
    values = {"sagemaker_program": "dump.R"}
    if submit is not None:
        values["sagemaker_submit_directory"] = submit
    opt_ml.hyperparameters(encode_script_mode(values))
    return opt_ml


def assert_ran_new_code(opt_ml, done):
    assert done.returncode == 0, done.stderr
    assert opt_ml.path("model", "version.txt").read_text().strip() == "v2"
    assert not opt_ml.path("code", "stale.R").exists(), "stale files mixed with the new code"
    assert sorted(os.listdir(opt_ml.path("model", "code"))) == ["deploy.R", "dump.R"]


SOURCE_FILES = {"dump.R": PROGRAM_V2, "deploy.R": "model_fn <- function(model_dir) NULL\n"}


@pytest.mark.parametrize("form", ["file_uri", "tarball_path", "directory"])
def test_code_from_local_sources(rscript, tmp_path, form):
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", SOURCE_FILES)
    if form == "directory":
        source = tmp_path / "src"
        source.mkdir()
        for name, text in SOURCE_FILES.items():
            (source / name).write_text(text)
        submit = str(source)
    else:
        submit = f"file://{tarball}" if form == "file_uri" else str(tarball)
    opt_ml = job_with_code(tmp_path, submit)
    assert_ran_new_code(opt_ml, run_train(rscript, opt_ml))


def test_code_channel_of_a_network_isolated_job(rscript, tmp_path):
    opt_ml = job_with_code(tmp_path)
    opt_ml.channels({"code": {"TrainingInputMode": "File"}})
    make_tarball(opt_ml.path("input", "data", "code", "sourcedir.tar.gz"), SOURCE_FILES)
    done = run_train(rscript, opt_ml)
    assert_ran_new_code(opt_ml, done)
    assert not opt_ml.path("model", "code", "sourcedir.tar.gz").exists()


def test_sdk_local_mode_directory_is_used_in_place(rscript, tmp_path):
    """SageMaker SDK local mode mounts source_dir at /opt/ml/code and names that directory."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    for name, text in SOURCE_FILES.items():
        (opt_ml.path("code") / name).write_text(text)
    opt_ml.hyperparameters(
        encode_script_mode(
            {"sagemaker_program": "dump.R", "sagemaker_submit_directory": str(opt_ml.path("code"))}
        )
    )
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    assert "already in place" in done.stderr
    assert sorted(os.listdir(opt_ml.path("code"))) == ["deploy.R", "dump.R"]


def test_baked_code_when_no_source_is_given(rscript, tmp_path):
    """No sagemaker_submit_directory: the code in /opt/ml/code (baked into the image) runs as it is;
    here the project's own train.R on its iris data, leaving a model and its inference code."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    shutil.copytree(PROJECT_ROOT / "code", opt_ml.path("code"), dirs_exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "data" / "train", opt_ml.path("input", "data", "train"))
    opt_ml.channels({"train": {"TrainingInputMode": "File"}}, create=False)
    opt_ml.hyperparameters(encode_script_mode({"maxdepth": 3, "cp": 0.01}))
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    assert "train_accuracy=" in done.stdout
    model_files = sorted(os.listdir(opt_ml.path("model")))
    assert model_files == [
        "baseline.json",
        "code",
        "input-prototype.json",
        "model.rds",
        "rsagemaker-versions.json",
    ], (
        "only the model, its input prototype, its monitoring baseline, its code and the versions it "
        "was trained under: no tarball, no training data"
    )
    # train.R sources baseline.R from its working directory: the code folder, as SageMaker runs it.
    assert "Monitoring baseline saved to" in done.stdout
    assert {"baseline.R", "deploy.R", "train.R"} <= set(os.listdir(opt_ml.path("model", "code")))
    assert not any(name.endswith((".csv", ".tar.gz")) for name in os.listdir(opt_ml.path("model", "code")))
    assert opt_ml.failure() is None


def test_checkpoint_resumed_by_the_sample_training_script(rscript, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    shutil.copytree(PROJECT_ROOT / "code", opt_ml.path("code"), dirs_exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "data" / "train", opt_ml.path("input", "data", "train"))
    opt_ml.channels({"train": {"TrainingInputMode": "File"}}, create=False)
    first = run_train(rscript, opt_ml)
    assert first.returncode == 0, first.stderr
    assert opt_ml.path("checkpoints", "checkpoint.rds").exists()
    assert "Resuming" not in first.stdout
    shutil.rmtree(opt_ml.path("model"))  # a restarted Spot job starts with an empty model directory
    second = run_train(rscript, opt_ml)
    assert second.returncode == 0, second.stderr
    assert "Resuming from checkpoint" in second.stdout and "1 earlier run(s)" in second.stdout


def test_checkpoint_dir_follows_sagemaker_checkpoint_dir(rscript, tmp_path):
    """The job's CheckpointConfig LocalPath reaches the program as SM_CHECKPOINT_DIR, created."""
    opt_ml = OptMl(tmp_path / "opt_ml")
    (opt_ml.path("code") / "dump.R").write_text(DUMP_PROGRAM)
    opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "dump.R"}))
    local_path = tmp_path / "spot" / "checkpoints"
    done = run_train(rscript, opt_ml, SAGEMAKER_CHECKPOINT_DIR=local_path)
    assert done.returncode == 0, done.stderr
    assert opt_ml.dump()["env"]["SM_CHECKPOINT_DIR"] == str(local_path)
    assert local_path.is_dir() and not opt_ml.path("checkpoints").exists()


# The code of a project using renv and keeping secrets in dotfiles.
PROJECT_WITH_DOTFILES = {
    "dump.R": DUMP_PROGRAM,
    "deploy.R": "predict_fn <- function(data, model) data\n",
    "helpers/util.R": "# a helper\n",
    ".Rprofile": 'options(project.setting = "from .Rprofile")\nsource("renv/activate.R")\n',
    "renv/activate.R": 'file.create(file.path(Sys.getenv("SM_MODEL_DIR"), "renv-activated"))\n',
    "renv/settings.json": "{}\n",
    "renv.lock": "{}\n",
    ".Renviron": "DB_PASSWORD=secret\n",
    ".env": "TOKEN=secret\n",
    ".git/config": "[core]\n",
    "helpers/.credentials": "secret\n",
}


def test_inference_code_leaves_dotfiles_out_but_keeps_rprofile_and_renv(rscript, tmp_path):
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", PROJECT_WITH_DOTFILES)
    opt_ml = job_with_code(tmp_path, str(tarball))
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    code = opt_ml.path("model", "code")
    saved = sorted(str(path.relative_to(code)) for path in code.rglob("*") if path.is_file())
    assert saved == [
        ".Rprofile",
        "deploy.R",
        "dump.R",
        "helpers/util.R",
        "renv.lock",
        "renv/activate.R",
        "renv/settings.json",
    ]
    assert "left out: " in done.stderr and ".Renviron" in done.stderr


def test_the_r_plumbing_and_the_tools_pack_the_same_paths_of_code(rscript):
    """One rule of what of code/ is packed (sourcedir.tar.gz, the image, /opt/ml/model/code): the
    model's copy (R, packed()) and the tools' tarball (Python, opt_ml.packed()) agree path by path."""
    from rsagemaker_cli.core.opt_ml import packed

    paths = [
        "train.R",
        "deploy.R",
        ".Rprofile",
        "helpers/util.R",
        "helpers/.Rprofile",
        ".Renviron",
        ".env",
        ".git",
        ".git/config",
        "helpers/.credentials",
        "renv",
        "renv/activate.R",
        "renv/settings.json",
        "renv/.gitignore",
        "renv/library",
        "renv/library/R-4.5/jsonlite/DESCRIPTION",
        "renv/staging",
        "renv/sandbox/x",
        "renvironment.R",
        "renv.lock",
        "sourcedir.tar.gz",
        "data/part.tar",
        "m.tgz",
        "a.zip",
        "__pycache__",
        "tools/__pycache__/x.pyc",
        "tools/x.pyc",
        "notes.tar.gz.R",
        ".RData",
    ]
    script = 'cat(rsagemaker:::packed(commandArgs(trailingOnly = TRUE)), sep = "\\n")'
    done = subprocess.run([rscript, "-e", script, *paths], capture_output=True, text=True, check=True)
    in_r = dict(zip(paths, (line == "TRUE" for line in done.stdout.split())))
    in_python = {path: packed(path) for path in paths}
    assert in_r == in_python
    assert [path for path in paths if in_python[path]] == [
        "train.R",
        "deploy.R",
        ".Rprofile",
        "helpers/util.R",
        "renv",
        "renv/activate.R",
        "renv/settings.json",
        "renvironment.R",
        "renv.lock",
        "notes.tar.gz.R",
    ]


def test_the_project_rprofile_runs_in_the_training_program(rscript, tmp_path):
    """R_PROFILE_USER (the plumbing's error recorder) would make R skip the code folder's .Rprofile,
    and renv with it: it runs, as R runs it, before the program."""
    program = (
        'writeLines(getOption("project.setting", "unset"), file.path(Sys.getenv("SM_MODEL_DIR"), "setting.txt"))\n'
        'stop("failed after the profile ran")\n'
    )
    files = {**PROJECT_WITH_DOTFILES, "dump.R": program}
    opt_ml = job_with_code(tmp_path, str(make_tarball(tmp_path / "sourcedir.tar.gz", files)))
    done = run_train(rscript, opt_ml)
    assert opt_ml.path("model", "renv-activated").exists(), done.stderr
    assert opt_ml.path("model", "setting.txt").read_text().strip() == "from .Rprofile"
    # The program's own error is still recorded for the failure file.
    assert done.returncode != 0
    assert opt_ml.failure().startswith("ExecuteUserScriptError: dump.R exited with status 1")
    assert "failed after the profile ran" in opt_ml.failure()


def test_an_activate_r_that_runs_the_user_profile_again_runs_the_profile_once(rscript, tmp_path):
    """renv's activate.R, with its autoloader off and RENV_CONFIG_USER_PROFILE on, sources
    R_PROFILE_USER itself: that is the plumbing's profile, which runs .Rprofile, which runs
    activate.R... It must run the project's .Rprofile once, not until R's stack overflows."""
    activate = (
        'cat("x\\n", file = file.path(Sys.getenv("SM_MODEL_DIR"), "profile-runs"), append = TRUE)\n'
        'sys.source(Sys.getenv("R_PROFILE_USER"), envir = globalenv())\n'
    )
    program = 'writeLines("trained", file.path(Sys.getenv("SM_MODEL_DIR"), "done.txt"))\n'
    files = {**PROJECT_WITH_DOTFILES, "renv/activate.R": activate, "dump.R": program}
    opt_ml = job_with_code(tmp_path, str(make_tarball(tmp_path / "sourcedir.tar.gz", files)))
    done = run_train(rscript, opt_ml, RENV_CONFIG_USER_PROFILE="TRUE")
    assert done.returncode == 0, done.stderr
    assert opt_ml.path("model", "profile-runs").read_text() == "x\n"
    assert opt_ml.path("model", "done.txt").read_text() == "trained\n"


# ---- unsafe and broken tarballs ---------------------------------------------------------------------


member = tar_member
# Written by the unsafe archives wherever they manage to write: only the code folder may hold it.
EVIL = "evil.R"
CHAIN_MEMBERS, CHAIN_REFUSED = symlink_chain(2, f"output/{EVIL}")  # to /opt/ml/output/evil.R

UNSAFE_MEMBERS = {
    "absolute": ([member("/tmp/evil.R")], "/tmp/evil.R"),
    "dotdot": ([member("sub/../../evil.R")], "sub/../../evil.R"),
    "device": ([member("dev/null", tarfile.CHRTYPE)], "dev/null"),
    "block_device": ([member("dev/sda", tarfile.BLKTYPE)], "dev/sda"),
    "fifo": ([member("pipe", tarfile.FIFOTYPE)], "pipe"),
    "symlink_out": ([member("passwd", tarfile.SYMTYPE, "../../../etc/passwd")], "passwd"),
    "symlink_absolute": ([member("passwd", tarfile.SYMTYPE, "/etc/passwd")], "passwd"),
    "hardlink_out": ([member("shadow", tarfile.LNKTYPE, "../etc/shadow")], "shadow"),
    "hardlink_absolute": ([member("shadow", tarfile.LNKTYPE, "/etc/shadow")], "shadow"),
    # Each link's target stays inside as text; created through each other they climb out.
    "symlink_chain": (CHAIN_MEMBERS, CHAIN_REFUSED),
    # A file written through a link that points outside.
    "file_through_symlink": (
        [member("up", tarfile.SYMTYPE, "../.."), member(f"up/output/{EVIL}")],
        f"up/output/{EVIL}",
    ),
    # A link that looks inside until a later link redirects the folder it goes through.
    "symlink_redirected_later": (
        [member("a", tarfile.SYMTYPE, "b/x/../.."), member("b", tarfile.SYMTYPE, ".")],
        "a",
    ),
    # A hard link reached through a symbolic link to the outside.
    "hardlink_through_symlink": (
        [member("up", tarfile.SYMTYPE, "../../output"), member("copy", tarfile.LNKTYPE, "up/secret")],
        "copy",
    ),
    # A link that stays inside the staging folder by climbing out and back in by its name: inside
    # while checked there, out of the code folder once moved into it.
    "symlink_via_staging_name": ([member("x", tarfile.SYMTYPE, "../staging/dump.R")], "x"),
    # A link to a folder that is the top of the tree, then up from there.
    "symlink_through_top": (
        [member("top", tarfile.SYMTYPE, "."), member("out", tarfile.SYMTYPE, "top/..")],
        "out",
    ),
    # A hard link to an earlier symbolic link would be one to what it points at.
    "hardlink_to_symlink": (
        [
            member("pw", tarfile.SYMTYPE, "../../../../../../etc/passwd"),
            member("copy", tarfile.LNKTYPE, "pw"),
        ],
        "copy",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_MEMBERS))
def test_unsafe_tarball_is_refused_naming_the_member(rscript, tmp_path, case):
    unsafe, name = UNSAFE_MEMBERS[case]
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", {"dump.R": DUMP_PROGRAM}, unsafe)
    opt_ml = job_with_code(tmp_path, str(tarball))
    opt_ml.path("output", "secret").write_text("not to be linked")
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    failure = opt_ml.failure()
    assert failure.startswith("CodeFetchError:"), failure
    assert f"unsafe member {name!r}" in failure[:1024]
    assert opt_ml.path("code", "stale.R").exists(), "a refused archive leaves the code folder as it was"
    assert sorted(os.listdir(opt_ml.path("code"))) == ["stale.R"]
    written = [path for path in tmp_path.rglob(EVIL) if not path.is_symlink()]
    assert written == [] and not Path("/tmp/evil.R").exists(), f"written outside the code folder: {written}"
    assert not any(opt_ml.root.glob(".code-*")), "the staging folder is removed"


# fetch_code.py run as by a Python whose tarfile offers no extraction filters (3.11.2 as Debian
# bookworm first shipped it; they came with 3.11.4 and in later point releases of some distributions):
# the safe filters are removed, tarfile's own fully trusted default stays.
WITHOUT_TAR_FILTERS = (
    "import runpy, sys, tarfile\n"
    "for name in ('tar_filter', 'data_filter'):\n"
    "    if hasattr(tarfile, name):\n"
    "        delattr(tarfile, name)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.mark.parametrize("case", sorted(UNSAFE_MEMBERS))
def test_unsafe_tarball_is_refused_without_tarfile_filters(tmp_path, case):
    unsafe, name = UNSAFE_MEMBERS[case]
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", {"dump.R": DUMP_PROGRAM}, unsafe)
    opt_ml = job_with_code(tmp_path, str(tarball))
    opt_ml.path("output", "secret").write_text("not to be linked")
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TAR_FILTERS, str(FETCH_CODE), str(tarball), str(opt_ml.path("code"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"unsafe member {name!r}" in done.stderr.strip().splitlines()[-1]
    written = [path for path in tmp_path.rglob(EVIL) if not path.is_symlink()]
    assert written == [], f"written outside the code folder: {written}"
    assert sorted(os.listdir(opt_ml.path("code"))) == ["stale.R"]


def fetch_folder(tmp_path, make_source):
    """fetch_code.py on a file:// folder source that make_source(folder) fills, into a code folder
    holding stale.R; returns the run and the code folder."""
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "train.R").write_text("1\n")
    make_source(source)
    code = tmp_path / "opt_ml" / "code"
    code.mkdir(parents=True)
    (code / "stale.R").write_text("old\n")
    done = subprocess.run(
        [sys.executable, str(FETCH_CODE), f"file://{source}", str(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done, code


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("passwd", "/etc/passwd"),
        ("up", "../../.."),
        ("sub/out", "../../x.R"),
        ("beside", "../source/train.R"),  # inside by the source folder's name only
        ("via", "sub/../.."),
    ],
)
def test_a_folder_source_with_a_link_out_of_it_is_refused(tmp_path, link, target):
    done, code = fetch_folder(tmp_path, lambda source: os.symlink(target, source / link))
    assert done.returncode == 1, done.stdout
    assert f"unsafe entry {link!r}: symbolic link to {target!r}" in done.stderr.strip().splitlines()[-1]
    assert sorted(os.listdir(code)) == ["stale.R"], "a refused source leaves the code folder as it was"


def test_a_folder_source_keeps_its_links_inside(tmp_path):
    def links(source):
        os.symlink("train.R", source / "helpers.R")
        os.symlink("..", source / "sub" / "top")
        os.symlink("sub/top/train.R", source / "again.R")

    done, code = fetch_folder(tmp_path, links)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(code)) == ["again.R", "helpers.R", "sub", "train.R"]
    assert os.readlink(code / "helpers.R") == "train.R" and (code / "again.R").read_text() == "1\n"


def test_a_fifo_in_a_folder_source_is_refused_before_copying(tmp_path):
    done, code = fetch_folder(tmp_path, lambda source: os.mkfifo(source / "sub" / "pipe"))
    assert done.returncode == 1
    assert "unsafe entry 'sub/pipe': device, FIFO or socket" in done.stderr
    assert sorted(os.listdir(code)) == ["stale.R"]


def test_symlink_chain_passes_a_check_of_names_and_link_texts():
    """The chain case is the real attack: every link target, read as text, stays in the tree."""
    root = "/code"
    for link in CHAIN_MEMBERS[:-1]:
        resolved = posixpath.normpath(posixpath.join(root, posixpath.dirname(link.name), link.linkname))
        assert resolved == root or resolved.startswith(root + "/"), link.name


def test_later_member_replaces_an_earlier_link_without_following_it(rscript, tmp_path):
    """tar's rule (a later member replaces an earlier one) holds, but writing replaces the link
    itself: the file lands in the code folder, never where the link pointed."""
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "dump.R").write_text(PROGRAM_V2)
    with tarfile.open(tmp_path / "replace.tar.gz", "w:gz") as archive:
        archive.addfile(member(EVIL, tarfile.SYMTYPE, "../../output/target.R"))
        archive.add(staged / "dump.R", arcname=EVIL)
        archive.add(staged / "dump.R", arcname="dump.R")
    opt_ml = job_with_code(tmp_path, str(tmp_path / "replace.tar.gz"))
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    assert (
        not os.path.islink(opt_ml.path("code", EVIL)) and opt_ml.path("code", EVIL).read_text() == PROGRAM_V2
    )
    assert not opt_ml.path("output", "target.R").exists()


def test_safe_links_inside_the_code_are_kept(rscript, tmp_path):
    links = [member("helpers.R", tarfile.SYMTYPE, "dump.R"), member("again.R", tarfile.LNKTYPE, "dump.R")]
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", SOURCE_FILES, links)
    opt_ml = job_with_code(tmp_path, str(tarball))
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    assert os.path.islink(opt_ml.path("code", "helpers.R"))


@pytest.mark.parametrize("content", [b"this is not a tarball", b"\x1f\x8b\x08\x00truncated gzip"])
def test_corrupt_tarball_fails_clearly(rscript, tmp_path, content):
    bad = tmp_path / "sourcedir.tar.gz"
    bad.write_bytes(content)
    opt_ml = job_with_code(tmp_path, str(bad))
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    failure = opt_ml.failure()
    assert failure.startswith("CodeFetchError:") and "not a readable tar archive" in failure, failure


def test_missing_local_source_fails(rscript, tmp_path):
    opt_ml = job_with_code(tmp_path, str(tmp_path / "nowhere.tar.gz"))
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    assert "does not exist" in opt_ml.failure()


# ---- S3 through a loopback S3 API server (moto) ---------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server():
    yield from run_s3_server()


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_code_from_s3(rscript, tmp_path, s3_server, variable):
    tarball = make_tarball(tmp_path / "sourcedir.tar.gz", SOURCE_FILES)
    upload(s3_server, "code-bucket", "job/source/sourcedir.tar.gz", tarball)
    opt_ml = job_with_code(tmp_path, "s3://code-bucket/job/source/sourcedir.tar.gz")
    done = run_train(rscript, opt_ml, **S3_CREDENTIALS, **{variable: s3_server})
    assert_ran_new_code(opt_ml, done)


@pytest.mark.parametrize(
    "uri", ["s3://code-bucket/missing/sourcedir.tar.gz", "s3://no-such-bucket/sourcedir.tar.gz"]
)
def test_missing_s3_object_or_bucket_fails(rscript, tmp_path, s3_server, uri):
    upload(s3_server, "code-bucket", "other.txt", make_tarball(tmp_path / "x.tar.gz", {}))
    opt_ml = job_with_code(tmp_path, uri)
    done = run_train(rscript, opt_ml, **S3_CREDENTIALS, AWS_ENDPOINT_URL_S3=s3_server)
    assert done.returncode != 0
    failure = opt_ml.failure()
    assert failure.startswith("CodeFetchError:") and uri in failure and "does not exist" in failure, failure


# ---- the failure file on every other failure path --------------------------------------------------------


def test_invalid_hyperparameters_json(rscript, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    opt_ml.write_config("hyperparameters.json", '{"epochs": "10",')
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    assert (
        opt_ml.failure().startswith("InvalidConfig:")
        and "hyperparameters.json is not valid JSON" in opt_ml.failure()
    )


def test_non_string_hyperparameter_value(rscript, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    opt_ml.hyperparameters({"epochs": 10, "name": '"ok"'})
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    failure = opt_ml.failure()
    assert failure.startswith("InvalidHyperparameters:") and "not a string: epochs" in failure, failure


def test_missing_channel_directory(rscript, tmp_path):
    opt_ml = job_with_code(tmp_path)
    (opt_ml.path("code") / "dump.R").write_text(DUMP_PROGRAM)
    opt_ml.channels({"train": {"TrainingInputMode": "File"}}, create=False)
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    assert opt_ml.failure().startswith("MissingChannel: channel 'train'")


def test_missing_program(rscript, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "nope.R"}))
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    assert opt_ml.failure().startswith("ProgramNotFound: sagemaker_program 'nope.R'")


def test_error_in_user_code_reaches_the_failure_file(rscript, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    (opt_ml.path("code") / "train.R").write_text(
        'check <- function(x) if (x < 1) stop("learning rate too small: ", x)\ncheck(0.5)\n'
    )
    done = run_train(rscript, opt_ml)
    assert done.returncode != 0
    failure = opt_ml.failure()
    assert failure.startswith("ExecuteUserScriptError: train.R exited with status 1")
    assert "learning rate too small: 0.5" in failure[:1024]


def test_failure_file_of_an_earlier_run_is_removed(rscript, tmp_path):
    opt_ml = OptMl(tmp_path / "opt_ml")
    opt_ml.path("output", "failure").write_text("old failure")
    (opt_ml.path("code") / "dump.R").write_text(DUMP_PROGRAM)
    opt_ml.hyperparameters(encode_script_mode({"sagemaker_program": "dump.R"}))
    done = run_train(rscript, opt_ml)
    assert done.returncode == 0, done.stderr
    assert opt_ml.failure() is None
