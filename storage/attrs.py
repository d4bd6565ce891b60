"""Names of what hpsearch stores on Optuna studies and trials (system and user attributes).

One place for the names, because the launcher, the workers, the gRPC proxy, the report and
the tuned-defaults promotion all read what the others wrote.
"""

SPEC_ATTR = "hps_spec"
# Study system attribute: the trial budget, stored by the launcher for the gRPC proxy, which
# enforces it for workers that reach the study through it (storage/grpc_proxy.py).
BUDGET_ATTR = "hps_budget"
CREATED_AT_ATTR = "hps_created_at"
IMPORTED_ATTR = "hps_imported_from"
# Study system attribute: the current tuned-defaults rows, stored by the launcher for workers
# that reach the study through a gRPC proxy and so cannot read the table.
TUNED_SNAPSHOT_ATTR = "hps_tuned_defaults"
WORKER_ATTR = "worker"
NODE_ATTR = "node"
ARTIFACT_ATTR = "checkpoint_artifact"
# Trial user attribute: a retry's checkpoint could not be read whole and was set aside.
CHECKPOINT_WARNING_ATTR = "checkpoint_warning"
BASELINE_ATTR = "hps_baseline"
# Trial user attribute: why the trial failed (the exception, a stall, a lost worker).
FAIL_REASON_ATTR = "fail_reason"
FAIL_KIND_ATTR = "fail_kind"
RETRY_OF_ATTR = "retry_of"
OVERRIDES_ATTR = "hps_config_overrides"
CONFIG_ATTR = "config"
# Study user attribute: {"grace_period_s", "max_retries"} of the spec's fault tolerance, stored
# by the launcher so the gRPC proxy can reap stale trials without reading the spec.
RECOVERY_ATTR = "hps_recovery"
# Study user attribute: the epoch the pruner may first decide at, raised by the launcher's
# pruning check for specs that opt in (search/report/pruning_check.py); workers read it.
PRUNER_FLOOR_ATTR = "hps_pruner_first_epoch"
