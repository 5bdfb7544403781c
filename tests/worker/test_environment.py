"""A trial's child environment: its threads and only its GPUs, the allowlist and what the study
names, and the worker's secret-looking values found for scrubbing."""

from sweeps.secrets import env_secrets, scrub
from sweeps.study.resources import SET_BY_TASK
from sweeps.worker.environment import child_env


def test_child_gets_its_threads_and_only_its_gpus():
    env = child_env(3, ["2", "5"], environ={"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5", "OMP_NUM_THREADS": "64"})
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert child_env(1, [], environ={})["CUDA_VISIBLE_DEVICES"] == ""
    assert set(SET_BY_TASK) <= set(child_env(1, [], environ={}))  # what resources.env may not name


WORKER = {
    "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "VIRTUAL_ENV": "/venv",
    "TF_CPP_MIN_LOG_LEVEL": "0", "XLA_FLAGS": "--xla_gpu_autotune_level=0", "NCCL_DEBUG": "INFO",
    "DQN_SWEEP_TEST_RECORD": "/tmp/r", "DQN_SWEEP_STORAGE": "postgresql://u:pg-secret@db/x",
    "AWS_SECRET_ACCESS_KEY": "aws-secret", "PGPASSWORD": "pg-password", "GITHUB_TOKEN": "ghp_token",
    "DATABASE_URL": "postgresql://app:url-secret@db/app", "WANDB_MODE": "offline", "SHORTKEY": "abc",
    "TF_VAR_db_password": "tf-secret", "TF_TOKEN_app_terraform_io": "tf-token", "TF_CLI_CONFIG_FILE": "/t",  # Terraform's
}


def test_child_gets_the_allowlist_and_what_the_study_names():
    env = child_env(2, [], ["WANDB_MODE", "DQN_SWEEP_STORAGE"], environ=WORKER)
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL", "XLA_FLAGS", "NCCL_DEBUG",
            "DQN_SWEEP_TEST_RECORD", "WANDB_MODE"}
    assert {name for name in WORKER if name in env} == kept
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the worker's choice, else quiet
    assert child_env(2, [], environ={})["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert "WANDB_MODE" not in child_env(2, [], environ=WORKER)


def test_secret_looking_values_are_scrubbed_longest_first():
    secrets = env_secrets(WORKER)
    assert set(secrets) == {"postgresql://u:pg-secret@db/x", "pg-secret", "aws-secret", "pg-password",
                            "ghp_token", "url-secret", "tf-secret", "tf-token"}  # "abc" is too short to mask safely
    text = "auth failed for postgresql://u:pg-secret@db/x (pg-secret); key aws-secret; url-secret; abc"
    assert scrub(text, secrets) == "auth failed for *** (***); key ***; ***; abc"
