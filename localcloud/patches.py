"""Every seam into moto's private internals, in one place. PINNED: moto==5.2.5.

Each patch names the exact moto attribute it replaces or adds; install() refuses any other moto
version, because these names are private and change between releases. What each seam does:

1. `moto.events.models.Rule.send_to_targets` - moto delivers only to logs/SQS/buses and raises
   NotImplementedError for Step Functions and Lambda targets (swallowed for S3 events, so nothing
   starts), ignores a rule's State, matches rules without a pattern (schedules) to every event,
   ignores Input/InputPath, and delivers synchronously. Replaced: Step Functions, Lambda and SQS
   targets go to localcloud.event_delivery (async, RetryPolicy, DeadLetterConfig); other target
   types still go through moto's own code.
2. `moto.awslambda.models.LambdaFunction._invoke_lambda` - moto runs code only in Docker. Replaced:
   the function's real handler runs in a worker process (localcloud.lambda_runtime).
3. `moto.awslambda.models.LambdaFunction.invoke` - moto runs InvocationType=Event synchronously
   and reports uncaught errors as "Handled". Wrapped: Event invocations are queued and retried like
   Lambda's (EventInvokeConfig's MaximumRetryAttempts, then its SQS OnFailure destination); the function
   error header says "Unhandled", as Lambda does for an uncaught exception.
4. `moto.awslambda.models.LambdaBackend.create_event_source_mapping` - moto invokes the function
   inside SendMessage (via `Queue.lambda_event_source_mappings`) and never polls again. Wrapped:
   the mapping is detached from the queue and a real poller (localcloud.sqs_event_sources) starts.
5. `moto.sagemaker.models.SageMakerModelBackend.start_pipeline_execution` - moto ignores
   ClientRequestToken and marks executions Succeeded at once. Wrapped: the same token returns the
   same execution; a new execution is handed to the SIMULATED pipeline runner.
6. `moto.sagemaker.models.SageMakerModelBackend.describe_pipeline_execution` - moto always answers
   FailureReason "". Wrapped: the execution's failure reason, absent when there is none.
7. `moto.sagemaker.responses.SageMakerResponse.stop_pipeline_execution` - missing in moto. Added.
8. `moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda
   ._SUPPORTED_API_PARAM_BINDINGS["invoke"]` - moto's `arn:aws:states:::lambda:invoke` silently drops
   `InvocationType`, so `"InvocationType": "Event"` ran synchronously. Extended with it, as on AWS.
9. `moto.stepfunctions.parser.asl.component.state.state.datetime` - the module's one use is
   `$$.State.EnteredTime`, which moto renders as Python's isoformat ("...:42.644104+00:00").
   Replaced by a stand-in whose timestamps render as Step Functions' ("...:42.644Z").
10. `moto.dynamodb.responses.DynamoHandler.call_action` - moto's DynamoDB backend is not
   thread-safe: a cancelled TransactWriteItems restores a deep copy of every table it touched,
   silently undoing writes other threads made meanwhile (seen as a lost task token and a job stuck
   RUNNING). Wrapped: one DynamoDB request at a time, as DynamoDB applies each request atomically;
   requests from concurrent callers still interleave between requests.
11. `moto.stepfunctions.parser.backend.execution.BaseExecutionWorkerCommunication.terminated` - called by
   the execution's worker thread once the program is over; it sets the execution's status from the program
   state (ProgramEnded -> SUCCEEDED, ProgramError -> FAILED, ProgramTimedOut -> TIMED_OUT, ProgramStopped ->
   ABORTED) and stopDate. moto never emits `Step Functions Execution Status Change` events. Wrapped: after
   moto's own bookkeeping, the event for the ended STANDARD execution (AWS emits none for Express) is put
   on the default bus through moto's events backend, where the template's rules match and deliver it.
   Guarded so that an execution ends (and is announced) once, whichever of 11 and 12 gets there first.
12. `moto.stepfunctions.parser.backend.execution.Execution.stop` - moto's StopExecution only flags the
   program stopped: a task waiting for its task token keeps the worker thread, and with it the RUNNING
   status, until that task's own timeout (hours, for this project's waits). Step Functions aborts at once.
   Wrapped: once the program is flagged stopped, the execution is terminated right away (ABORTED, stopDate,
   the status-change event). The blocked worker thread is left to wake at its timeout; by then the program is
   not running, so it evaluates no further state, and the guard in 11 keeps it from ending the execution
   again. (Its history gets the ExecutionAborted event only then.)
13. `moto.sagemaker.responses.SageMakerResponse.delete_model_package` and `.delete_model_package_group` -
   missing in moto (offboarding deletes a tenant's model versions, then its group). Added: a version by
   name or ARN; a group only once it holds no version (SageMaker refuses otherwise); ValidationException
   when it does not exist.
14. `moto.dynamodb.models.table.Table.query` - moto answers every Query (base table or index) by sorting
   all the table's items (`all_items()`, DynamoType comparisons) and testing each one: O(N log N) per Query
   under seam 10's lock, so a jobs table of 1,000 items made each index Query cost ~60-200 ms and the
   emulator slow down as a run went on. Wrapped: moto's own query runs on the candidates only (the base
   table's items under the hash key; for an index, the items whose index hash key attributes match), so
   its sort, range conditions, filters, paging and projection are unchanged.
15. `moto.moto_server.werkzeug_app.DomainDispatcherApplication.get_backend_for_host` - called under the
   dispatcher's global lock for every HTTP request, it lists moto's package directory (a listdir and ~150
   isdir calls) and then tries every service's URL patterns. Wrapped: memoised per host (the answer depends
   only on the host).
16. `moto.dynamodb.models.DynamoDBBackend.transact_write_items` - before applying a transaction moto
   deep-copies every table it names (the whole jobs table for the gate's take and the state machine's
   release), to restore them if it is cancelled: O(table) per transaction under seam 10's lock, measured in
   `make bench` at p50 64 ms and p99 1.5 s, up to 5.3 s, held while every other DynamoDB request waits. Past
   the Lambdas' 5 s read timeout botocore retries requests that were applied, whose conditions then fail
   (a resume claim lost that way left jobs RUNNING). Wrapped: the rollback restores pre-images of the items
   the transaction names (the only items it can change), the answer and the outcome are moto's own. Tables
   with a stream keep moto's full copy. (`moto.dynamodb.models.copy` is swapped for a shim that, only
   inside this seam, hands back the tables uncopied.)
17. `moto.stepfunctions.parser.asl.parse.asl_parser.AmazonStateLanguageParser.parse` - moto lexes and parses
   the state machine's whole definition with ANTLR for every execution it starts: 0.35-1.1 s of CPU for
   this project's definition on a busy 2-core machine, in the emulator's one process, which made the upload
   front door the stack's bottleneck. Wrapped: the parse is kept per definition text. The evaluation
   components moto's Preprocessor builds from it (0.1-0.17 s more) are shared by the executions of a
   definition without Map or Parallel states: those components keep no state of their own while they
   evaluate (each execution's state is in its Environment); the Map and Parallel machinery does, so such a
   definition gets fresh components per execution from the kept tree. A definition with syntax errors is
   never kept (moto raises as before).
18. `boto_client_for` of `moto.stepfunctions.parser.asl.utils.boto_client`, and the same name in every
   `moto.stepfunctions.parser` module that imported it - each service task (a DynamoDB update, an SQS send,
   a Lambda invoke) built a new boto3 client, ~30-100 ms of CPU spent building the service's operation
   methods, in the emulator's one process (29 % of the time it held the GIL in a soak). Wrapped: one client
   per (region, service, port, the execution's role), reused (boto3 clients are thread-safe; moto's function
   ignores the task's credentials argument). Each records its calls as that role's (localcloud.permissions).
19. `parse` in `moto.stepfunctions.parser.asl.utils.json_path` (jsonpath_ng.ext) and in
   `...asl.component.common.path.result_path` (jsonpath_ng) - every JSONPath a state evaluates was parsed
   again, building a PLY parser each time (16 % of the GIL in a soak). Wrapped: memoised per path text
   (parsed paths are immutable; finding and updating work on the document).
20. `moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk
   ._SERVICE_ERROR_NAMES` - moto names an aws-sdk SageMaker error `sagemaker.<Code>Exception`; Step
   Functions names it `SageMaker.<Code>Exception` (e.g. `SageMaker.ResourceLimitExceededException`, which
   the state machine catches to requeue a job). Extended with that binding, as seam 8 extends a table.
21. `moto.apigateway.models.UsagePlan.apply_patch_operations` - UpdateUsagePlan's `/throttle/rateLimit`
   is stored as `int(value)`: a rate of 0.5 requests per second fails and 2.5 becomes 2, while API Gateway
   keeps a double. Wrapped: the rate is stored as a float (the burst stays an integer, as on AWS); the
   local API's throttling (localcloud.api_throttling) reads it.
22. `moto.sagemaker.models.SageMakerModelBackend.create_model_package` and `.update_model_package` - moto
   emits no `SageMaker Model Package State Change` event; accepts Tags on a version in a group (SageMaker
   refuses them: "Tags are not supported in Model Package versions"); and its UpdateModelPackage sets
   every field the request leaves out to None (an approval alone wiped the version's
   CustomerMetadataProperties and would wipe its status). Wrapped: Tags with a group are refused as
   SageMaker refuses them; fields a request leaves out keep their values; after each create and update the
   event goes on the default bus (localcloud.model_package_events), as SageMaker sends it.
23. `moto.sagemaker.responses.SageMakerResponse.list_pipeline_execution_steps` - missing in moto. Added:
   the steps the pipeline runner recorded for the execution (localcloud.sagemaker_jobs), newest first
   unless SortOrder=Ascending, paged by MaxResults/NextToken; ValidationException for an unknown execution.
24. `moto.sagemaker.responses.SageMakerResponse.describe_processing_job` and `.describe_training_job` -
   moto describes only jobs made by CreateProcessingJob / CreateTrainingJob, Completed at creation and
   without instances or real times; a pipeline's jobs are made inside SageMaker, so moto never knows them.
   Wrapped: a job the pipeline runner ran is described from its run (instances, start, end, status,
   TrainingTimeInSeconds, BillableTimeInSeconds); any other name goes to moto's own method.
"""

from __future__ import annotations

import copy
import datetime as datetime_module
import functools
import json
import logging
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import moto
from moto.apigateway.models import UsagePlan
from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.core.responses import ActionResult
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table as DynamoTable
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import Rule, events_backends
from moto.events.utils import _BASE_EVENT_MESSAGE
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sagemaker.exceptions import ConflictException, ValidationError
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import get_pipeline_execution_from_arn
from moto.sqs.models import sqs_backends
from moto.stepfunctions.parser.api import StateMachineType
from moto.stepfunctions.parser.asl.component.common.path import result_path as sfn_result_path
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
    state_task_service_lambda,
)
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import boto_client as sfn_boto_client
from moto.stepfunctions.parser.asl.utils import json_path as sfn_json_path
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution import Execution as StepFunctionsExecution

from localcloud import model_package_events
from localcloud.call_recording import CallRecorder
from localcloud.event_delivery import EventDelivery
from localcloud.lambda_runtime import Invocation, LambdaRuntime
from localcloud.pipeline_runner import ExecutionNotStoppableError, PipelineRunner, StatusChange
from localcloud.sqs_event_sources import MappingSettings, SqsEventSources

PINNED_MOTO_VERSION = "5.2.5"
LOGGER = logging.getLogger("localcloud.patches")
PIPELINE_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
# AWS leaves the input/output out of the event (null, with `included: false`) when it would make the event
# too large for EventBridge; this emulator draws the line at 248 KiB.
_EVENT_DATA_LIMIT_BYTES = 248 * 1024
# moto gives every S3 event this same id (moto.events.utils._BASE_EVENT_MESSAGE).
_MOTO_CONSTANT_EVENT_ID = _BASE_EVENT_MESSAGE["id"]


@dataclass(frozen=True)
class Hooks:
    """The emulator's components the patched moto code hands work to."""

    lambda_runtime: LambdaRuntime
    event_delivery: EventDelivery
    sqs_event_sources: SqsEventSources
    pipeline_runner: PipelineRunner
    # Records the state machines' service-task calls for the permission check (seam 18); None: off.
    call_recorder: CallRecorder | None = None


_hooks: Hooks | None = None
_replaced: list[tuple[Any, str, Any]] = []
_start_pipeline_lock = threading.Lock()


def _active() -> Hooks:
    if _hooks is None:
        raise RuntimeError("localcloud patches are not installed")
    return _hooks


# ----------------------------------------------------------------- 1. EventBridge rule delivery


def delivered_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge would deliver it, from the dict moto passes rules.

    moto sends a numeric `time`, an internal `ingestion-time`, S3's `eTag` (S3 sends `etag`) and one
    constant id for every S3 event. The id is replaced in place, so every rule sees the same new id.
    """
    if event.get("id") == _MOTO_CONSTANT_EVENT_ID:
        event["id"] = str(uuid.uuid4())
    delivered = copy.deepcopy(event)
    delivered.pop("ingestion-time", None)
    if isinstance(delivered.get("time"), (int, float)):
        delivered["time"] = datetime.fromtimestamp(delivered["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    s3_object = delivered.get("detail", {}).get("object") if delivered.get("source") == "aws.s3" else None
    if isinstance(s3_object, dict) and "eTag" in s3_object:
        s3_object["etag"] = s3_object.pop("eTag")
    return delivered


def _send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
    if self.state != "ENABLED" or not self.event_pattern.get_pattern():
        return  # disabled, or a schedule: the scheduler fires those
    event: Any = delivered_event(original_event)
    if not self.event_pattern.matches_event(event):
        return
    delivery = _active().event_delivery
    moto_targets = []
    for target in self.targets:
        if delivery.handles(target["Arn"]):
            delivery.deliver(self.arn, target, event)
        else:
            moto_targets.append(target)
    if moto_targets:
        rule_for_moto = copy.copy(self)
        rule_for_moto.targets = moto_targets
        try:
            _original(Rule, "send_to_targets")(rule_for_moto, original_event, transform_input)
        except Exception:
            # One failing target must not stop the other rules (moto's callers loop over rules).
            LOGGER.exception("rule %s: delivery to %s failed", self.name, [t["Arn"] for t in moto_targets])


# ----------------------------------------------------------------- 2, 3. Lambda


def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    invocation = _active().lambda_runtime.invoke(
        self.function_name, json.dumps({} if event is None else event)
    )
    # The third element is moto's log tail; the function's log is its .localcloud/logs file.
    return invocation.payload, invocation.function_error, ""


def _invoke(self: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
    original_invoke = _original(LambdaFunction, "invoke")
    if request_headers.get("x-amz-invocation-type") == "Event":

        def run_once() -> Invocation:
            headers: dict[str, Any] = {}
            payload = original_invoke(self, body, {}, headers)
            text = payload.decode() if isinstance(payload, bytes) else payload
            return Invocation(text, function_error="x-amz-function-error" in headers)

        _active().lambda_runtime.invoke_async(self.function_name, run_once, request_payload=body)
        return b""
    payload: str | bytes = original_invoke(self, body, request_headers, response_headers)
    if "x-amz-function-error" in response_headers:
        response_headers["x-amz-function-error"] = "Unhandled"
    return payload


# ----------------------------------------------------------------- 4. SQS event source mappings


def _mapping_settings(backend: LambdaBackend, mapping_uuid: str) -> MappingSettings | None:
    mapping = backend.get_event_source_mapping(mapping_uuid)
    if mapping is None:
        return None
    return MappingSettings(
        enabled=bool(mapping.enabled),
        batch_size=int(mapping.batch_size or 10),
        batching_window_seconds=float(mapping.max_batch_window or 0),
        report_batch_item_failures="ReportBatchItemFailures" in (mapping.function_response_types or []),
        maximum_concurrency=(mapping.scaling_config or {}).get("MaximumConcurrency"),
    )


def _create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> Any:
    mapping = _original(LambdaBackend, "create_event_source_mapping")(self, spec)
    if mapping.event_source_arn.split(":")[2] == "sqs":
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            if queue.queue_arn == mapping.event_source_arn:
                queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
        _active().sqs_event_sources.start_mapping(
            mapping.event_source_arn,
            mapping.function_arn,
            functools.partial(_mapping_settings, self, mapping.uuid),
        )
    return mapping


# ----------------------------------------------------------------- 5, 6, 7. SageMaker pipelines


def _start_pipeline_execution(  # noqa: PLR0917 - moto's positional signature
    self: SageMakerModelBackend,
    pipeline_name: str,
    pipeline_execution_display_name: str,
    pipeline_parameters: list[dict[str, Any]],
    pipeline_execution_description: str,
    parallelism_configuration: dict[str, int],
    client_request_token: str,
) -> dict[str, str]:
    with _start_pipeline_lock:
        pipeline = self.pipelines.get(pipeline_name)
        if pipeline is not None and client_request_token:
            for execution in pipeline.pipeline_executions.values():
                if execution.client_request_token == client_request_token:
                    return {"PipelineExecutionArn": execution.arn}
        result: dict[str, str] = _original(SageMakerModelBackend, "start_pipeline_execution")(
            self,
            pipeline_name,
            pipeline_execution_display_name,
            pipeline_parameters,
            pipeline_execution_description,
            parallelism_configuration,
            client_request_token,
        )
    pipeline = self.pipelines[pipeline_name]
    _active().pipeline_runner.execution_started(
        pipeline_arn=pipeline.arn,
        execution_arn=result["PipelineExecutionArn"],
        display_name=pipeline_execution_display_name,
        parameters={parameter["Name"]: parameter["Value"] for parameter in pipeline_parameters or []},
    )
    return result


def _describe_pipeline_execution(self: SageMakerModelBackend, pipeline_execution_arn: str) -> dict[str, Any]:
    description: dict[str, Any] = _original(SageMakerModelBackend, "describe_pipeline_execution")(
        self, pipeline_execution_arn
    )
    execution = get_pipeline_execution_from_arn(self.pipelines, pipeline_execution_arn)
    if execution.pipeline_execution_failure_reason:
        description["FailureReason"] = execution.pipeline_execution_failure_reason
    else:
        description.pop("FailureReason", None)
    return description


def _stop_pipeline_execution(self: SageMakerResponse) -> ActionResult:
    execution_arn = self._get_param("PipelineExecutionArn")
    get_pipeline_execution_from_arn(self.sagemaker_backend.pipelines, execution_arn)
    try:
        _active().pipeline_runner.stop_requested(execution_arn)
    except ExecutionNotStoppableError as error:
        raise ConflictException(str(error)) from error
    return ActionResult({"PipelineExecutionArn": execution_arn})


def _list_pipeline_execution_steps(self: SageMakerResponse) -> ActionResult:
    execution_arn = str(self._get_param("PipelineExecutionArn"))
    get_pipeline_execution_from_arn(self.sagemaker_backend.pipelines, execution_arn)
    ascending = self._get_param("SortOrder") == "Ascending"
    steps = _active().pipeline_runner.jobs.steps(execution_arn, ascending=ascending) or []
    size = int(self._get_param("MaxResults") or 50)
    start = int(self._get_param("NextToken") or 0)
    result: dict[str, Any] = {"PipelineExecutionSteps": steps[start : start + size]}
    if start + size < len(steps):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def _describe_processing_job(self: SageMakerResponse) -> ActionResult:
    found = _active().pipeline_runner.jobs.processing_job(str(self._get_param("ProcessingJobName")))
    if found is None:
        result: ActionResult = _original(SageMakerResponse, "describe_processing_job")(self)
        return result
    return ActionResult(found)


def _describe_training_job(self: SageMakerResponse) -> ActionResult:
    found = _active().pipeline_runner.jobs.training_job(str(self._get_param("TrainingJobName")))
    if found is None:
        result: ActionResult = _original(SageMakerResponse, "describe_training_job")(self)
        return result
    return ActionResult(found)


def delete_model_package(self: SageMakerResponse) -> ActionResult:
    name = str(self._get_param("ModelPackageName"))
    packages = self.sagemaker_backend.model_packages
    key = (
        name
        if name in packages
        else next((k for k, p in packages.items() if p.model_package_name == name), None)
    )
    if key is None:
        raise ValidationError(message=f"Model package {name} does not exist.")
    del packages[key]
    return ActionResult({})


def delete_model_package_group(self: SageMakerResponse) -> ActionResult:
    name = str(self._get_param("ModelPackageGroupName"))
    backend = self.sagemaker_backend
    if name not in backend.model_package_groups:
        raise ValidationError(message=f"Model package group {name} does not exist.")
    if any(package.model_package_group_name == name for package in backend.model_packages.values()):
        raise ConflictException(f"Model package group {name} still contains model packages.")
    del backend.model_package_groups[name]
    return ActionResult({})


# ----------------------------------------------------------------- 22. model package events


def _create_model_package(self: SageMakerModelBackend, *args: Any, **kwargs: Any) -> str:
    if kwargs.get("model_package_group_name") and kwargs.get("tags"):
        raise ValidationError(
            message="Tags are not supported in Model Package versions. "
            "Please add them to the Model Package Group."
        )
    arn: str = _original(SageMakerModelBackend, "create_model_package")(self, *args, **kwargs)
    model_package_events.announce(
        self.describe_model_package(arn), account_id=self.account_id, region=self.region_name
    )
    return arn


def _update_model_package(self: SageMakerModelBackend, model_package_arn: str, **kwargs: Any) -> str:
    package = self.describe_model_package(model_package_arn)
    kwargs = model_package_events.keeping_unset_fields(package, kwargs)
    arn: str = _original(SageMakerModelBackend, "update_model_package")(self, model_package_arn, **kwargs)
    model_package_events.announce(package, account_id=self.account_id, region=self.region_name)
    return arn


class MotoPipelineStore:
    """Where the simulated runner's status changes land: moto's execution and the default bus."""

    def record(self, change: StatusChange) -> None:
        _, _, _, region, account_id, _ = change.execution_arn.split(":", 5)
        backend = sagemaker_backends[account_id][region]
        execution = get_pipeline_execution_from_arn(backend.pipelines, change.execution_arn)
        execution.pipeline_execution_status = change.current_status
        execution.pipeline_execution_failure_reason = change.failure_reason  # type: ignore[assignment]
        execution.last_modified_time = datetime.now(UTC)
        if not change.announce:
            return
        detail: dict[str, Any] = {
            "pipelineArn": change.pipeline_arn,
            "pipelineExecutionArn": change.execution_arn,
            "pipelineExecutionDisplayName": change.display_name,
            "currentPipelineExecutionStatus": change.current_status,
            "executionStartTime": _iso(change.start_time),
        }
        if change.previous_status is not None:
            detail["previousPipelineExecutionStatus"] = change.previous_status
        if change.end_time is not None:
            detail["executionEndTime"] = _iso(change.end_time)
        events_backends[account_id][region].put_events(
            [
                {
                    "Source": "aws.sagemaker",
                    "DetailType": PIPELINE_STATUS_CHANGE,
                    "Detail": json.dumps(detail),
                    "Resources": [change.pipeline_arn, change.execution_arn],
                }
            ]
        )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------- 8, 9. Step Functions


class _StepFunctionsTimestamp(datetime):
    """A datetime whose isoformat() is the one Step Functions uses: milliseconds and Z."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.microsecond // 1000:03d}Z"


class _StateEnteredClock:
    """Stands in for the `datetime` module inside moto's state.py."""

    timezone = datetime_module.timezone
    datetime = _StepFunctionsTimestamp


# ----------------------------------------------------------------- 11. Step Functions status-change events


def _epoch_millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _event_data(text: str | None) -> tuple[str | None, dict[str, bool] | None]:
    """The execution's input or output as the event carries it, with its `...Details`."""
    if text is None:
        return None, None
    if len(text.encode("utf-8")) > _EVENT_DATA_LIMIT_BYTES:
        return None, {"included": False}
    return text, {"included": True}


def execution_status_change_detail(execution: StepFunctionsExecution) -> dict[str, Any]:
    """The `detail` of the event Step Functions sends when ``execution`` changes status."""
    status = execution.exec_status.value if execution.exec_status is not None else None
    input_text, input_details = _event_data(to_json_str(execution.input_data, separators=(",", ":")))
    output_text, output_details = (None, None)
    if status == "SUCCEEDED":
        output_text, output_details = _event_data(to_json_str(execution.output, separators=(",", ":")))
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine.arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_millis(execution.start_date),
        "stopDate": _epoch_millis(execution.stop_date),
        "input": input_text,
        "inputDetails": input_details,
        "output": output_text,
        "outputDetails": output_details,
        # moto's StopExecution drops the request's error and cause, so ABORTED events carry none.
        "error": execution.error or None,
        "cause": execution.cause or None,
    }


_TERMINATED_MARK = "_localcloud_terminated"
_terminated_lock = threading.Lock()


def _execution_terminated(self: BaseExecutionWorkerCommunication) -> None:
    execution = self.execution
    with _terminated_lock:
        if getattr(execution, _TERMINATED_MARK, False):
            return  # already ended by StopExecution (seam 12); its worker thread only just woke up
        setattr(execution, _TERMINATED_MARK, True)
    _original(BaseExecutionWorkerCommunication, "terminated")(self)
    if execution.sm_type != StateMachineType.STANDARD:
        return
    try:
        detail = execution_status_change_detail(execution)
        events_backends[execution.account_id][execution.region_name].put_events(
            [
                {
                    "Source": "aws.states",
                    "DetailType": EXECUTION_STATUS_CHANGE,
                    "Detail": json.dumps(detail),
                    "Resources": [execution.exec_arn],
                }
            ]
        )
    except Exception:
        # The execution has ended either way; a lost event is what the control plane's sweep is for.
        LOGGER.exception("could not announce the end of execution %s", execution.exec_arn)


def _stop_execution(
    self: StepFunctionsExecution, stop_date: datetime, error: str | None, cause: str | None
) -> None:
    _original(StepFunctionsExecution, "stop")(self, stop_date, error, cause)
    worker = self.exec_worker
    if (
        worker is not None
        and worker.env is not None
        and isinstance(worker.env.program_state(), ProgramStopped)
    ):
        worker._execution_communication.terminated()


# ----------------------------------------------------------------- install / uninstall

_DYNAMODB_REQUEST_LOCK = threading.RLock()
_original_dynamodb_call_action = DynamoHandler.call_action


def _serialized_dynamodb_call_action(self: DynamoHandler) -> Any:
    with _DYNAMODB_REQUEST_LOCK:
        return _original_dynamodb_call_action(self)


# ----------------------------------------------------------------- 16. transactions: item pre-images


class _TransactionCopies(threading.local):
    item_snapshots_only = False


_transaction_copies = _TransactionCopies()


class _TableCopyShim:
    """Stands in for the `copy` module inside moto.dynamodb.models: the same deepcopy, except that inside
    `_transact_write_items` (which restores item pre-images itself) a table is handed back uncopied."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if _transaction_copies.item_snapshots_only and isinstance(value, DynamoTable):
            return value
        return copy.deepcopy(value, memo)


_TransactionKey = tuple[str, Any, Any]


def _transaction_pre_images(
    backend: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> dict[_TransactionKey, Any] | None:
    """Deep copies of the items the transaction names, keyed by (table, hash, range); None when a table it
    names has a stream (whose records a rollback would have to undo too: moto's full copy is kept)."""
    images: dict[_TransactionKey, Any] = {}
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table_name = op.get("TableName") if isinstance(op, dict) else None
        table = backend.tables.get(str(table_name)) if table_name else None
        if table is None:
            continue
        if table.stream_shard is not None:
            return None
        try:
            key = op["Item"] if op_type == "Put" else op["Key"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(hash_value, range_value)
        except Exception:  # noqa: S112 - a malformed key: moto rejects that operation, which writes nothing
            continue
        images.setdefault((table.name, hash_value, range_value), copy.deepcopy(current))
    return images


def _restore_pre_images(backend: DynamoDBBackend, images: dict[_TransactionKey, Any]) -> None:
    for (table_name, hash_value, range_value), item in images.items():
        table = backend.tables.get(table_name)
        if table is None:
            continue
        if range_value is not None:
            bucket = table.items[hash_value]
            if item is None:
                bucket.pop(range_value, None)
                if not bucket:
                    table.items.pop(hash_value, None)
            else:
                bucket[range_value] = item
        elif item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    original = _original(DynamoDBBackend, "transact_write_items")
    images = _transaction_pre_images(self, transact_items) if len(transact_items) <= 100 else None
    if images is None:
        original(self, transact_items)
        return
    _transaction_copies.item_snapshots_only = True
    try:
        original(self, transact_items)
    except BaseException:
        # moto put back the (uncopied) tables it "restored": undo the writes it made, item by item.
        _restore_pre_images(self, images)
        raise
    finally:
        _transaction_copies.item_snapshots_only = False


# ----------------------------------------------------------------- 14, 15. speed (same answers)


def _query_candidates(
    table: DynamoTable, hash_key: Any, index_name: str | None, conditions: Any
) -> list[Any]:
    if not index_name:
        bucket = table.items.get(hash_key) if hash_key is not None else None
        if bucket is None:
            return []
        return list(bucket.values()) if table.range_key_attr else [bucket]
    items = [
        item
        for bucket in table.items.values()
        for item in (bucket.values() if table.range_key_attr else (bucket,))
    ]
    if not conditions:
        return items
    return [item for item in items if all(_attribute_equals(item, name, value) for name, value in conditions)]


def _attribute_equals(item: Any, name: str, value: Any) -> bool:
    present = item.attrs.get(name)
    return present is not None and bool(present == value)


def _query_candidates_only(self: DynamoTable, *args: Any, **kwargs: Any) -> Any:
    hash_key = args[0] if args else kwargs.get("hash_key")
    index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
    candidates = _query_candidates(self, hash_key, index_name, kwargs.get("hash_key_conditions"))
    view = copy.copy(self)
    view.all_items = lambda: candidates  # type: ignore[method-assign]
    return _original(DynamoTable, "query")(view, *args, **kwargs)


_backend_for_host: dict[str | None, Any] = {}


def _memoised_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    if host not in _backend_for_host:
        _backend_for_host[host] = _original(DomainDispatcherApplication, "get_backend_for_host")(self, host)
    return _backend_for_host[host]


# ----------------------------------------------------------------- 17. one ASL parse per definition

_parses: dict[str, tuple[Any, Any, bool]] = {}  # definition -> (program, tree, program may be shared)


def _has_stateful_states(document: Any) -> bool:
    if isinstance(document, dict):
        if document.get("Type") in {"Map", "Parallel"}:
            return True
        return any(_has_stateful_states(value) for value in document.values())
    if isinstance(document, list):
        return any(_has_stateful_states(value) for value in document)
    return False


def _parse_keeping_the_tree(definition: str) -> tuple[Any, Any]:
    kept = _parses.get(definition)
    if kept is None:
        program, tree = _original(AmazonStateLanguageParser, "parse")(definition)
        try:
            shareable = not _has_stateful_states(json.loads(definition))
        except ValueError:
            shareable = False
        _parses[definition] = (program, tree, shareable)
        return program, tree
    program, tree, shareable = kept
    return (program if shareable else Preprocessor().visit(tree)), tree


# ----------------------------------------------------------------- 18. one boto3 client per task service

_task_clients: dict[tuple[str, str, str, str], Any] = {}
_task_clients_lock = threading.Lock()


def _shared_task_client(region: str, service: str, state_credentials: Any = None) -> Any:
    original = _original(sfn_boto_client, "boto_client_for")
    # The task's credentials carry the execution's role: its calls are recorded as that role's.
    role_arn = str(getattr(state_credentials, "role_arn", "") or "")
    key = (region, service, os.environ.get("MOTO_PORT", ""), role_arn)
    with _task_clients_lock:
        if key not in _task_clients:
            client = original(region, service)
            recorder = _hooks.call_recorder if _hooks is not None else None
            if recorder is not None:
                recorder.attach(client, {"role": role_arn})
            _task_clients[key] = client
        return _task_clients[key]


# The defining module first (_original finds the function there), then every module that imported the name.
_TASK_CLIENT_USERS = [sfn_boto_client] + [
    module
    for name, module in sorted(sys.modules.items())
    if name.startswith("moto.stepfunctions.parser")
    and module is not sfn_boto_client
    and getattr(module, "boto_client_for", None) is sfn_boto_client.boto_client_for
]

# ----------------------------------------------------------------- 19. one JSONPath parse per path


def _memoised_parse(module: Any) -> Any:
    parsed: dict[str, Any] = {}

    def parse(path: str) -> Any:
        if path not in parsed:
            parsed[path] = _original(module, "parse")(path)
        return parsed[path]

    return parse


def _usage_plan_patch_keeping_a_fractional_rate(
    self: UsagePlan, patch_operations: list[dict[str, Any]]
) -> None:
    rates = [
        op
        for op in patch_operations
        if op.get("op") in {"add", "replace"} and op.get("path") == "/throttle/rateLimit"
    ]
    others = [op for op in patch_operations if op not in rates]
    _original(UsagePlan, "apply_patch_operations")(self, others)
    for op in rates:
        self.throttle["rateLimit"] = float(op["value"])


_PATCHES: list[tuple[Any, str, Any]] = [
    (Rule, "send_to_targets", _send_to_targets),
    (LambdaFunction, "_invoke_lambda", _invoke_lambda),
    (LambdaFunction, "invoke", _invoke),
    (LambdaBackend, "create_event_source_mapping", _create_event_source_mapping),
    (SageMakerModelBackend, "start_pipeline_execution", _start_pipeline_execution),
    (SageMakerModelBackend, "describe_pipeline_execution", _describe_pipeline_execution),
    (SageMakerResponse, "stop_pipeline_execution", _stop_pipeline_execution),
    (SageMakerResponse, "delete_model_package", delete_model_package),
    (SageMakerResponse, "list_pipeline_execution_steps", _list_pipeline_execution_steps),
    (SageMakerResponse, "describe_processing_job", _describe_processing_job),
    (SageMakerResponse, "describe_training_job", _describe_training_job),
    (SageMakerResponse, "delete_model_package_group", delete_model_package_group),
    (SageMakerModelBackend, "create_model_package", _create_model_package),
    (SageMakerModelBackend, "update_model_package", _update_model_package),
    (state_module, "datetime", _StateEnteredClock),
    (DynamoHandler, "call_action", _serialized_dynamodb_call_action),
    (BaseExecutionWorkerCommunication, "terminated", _execution_terminated),
    (StepFunctionsExecution, "stop", _stop_execution),
    (DynamoTable, "query", _query_candidates_only),
    (DomainDispatcherApplication, "get_backend_for_host", _memoised_backend_for_host),
    (DynamoDBBackend, "transact_write_items", _transact_write_items),
    (dynamodb_models, "copy", _TableCopyShim()),
    (AmazonStateLanguageParser, "parse", staticmethod(_parse_keeping_the_tree)),
    *((module, "boto_client_for", _shared_task_client) for module in _TASK_CLIENT_USERS),
    (sfn_json_path, "parse", _memoised_parse(sfn_json_path)),
    (sfn_result_path, "parse", _memoised_parse(sfn_result_path)),
    (UsagePlan, "apply_patch_operations", _usage_plan_patch_keeping_a_fractional_rate),
]


def _lambda_invoke_parameters() -> set[str]:
    parameters: set[str] = state_task_service_lambda._SUPPORTED_API_PARAM_BINDINGS["invoke"]
    return parameters


def _aws_sdk_error_prefixes() -> dict[str, str]:
    prefixes: dict[str, str] = state_task_service_aws_sdk._SERVICE_ERROR_NAMES
    return prefixes


def _original(owner: Any, name: str) -> Any:
    for patched_owner, patched_name, original in _replaced:
        if patched_owner is owner and patched_name == name:
            return original
    raise RuntimeError(f"{owner}.{name} is not patched")


def install(hooks: Hooks) -> None:
    global _hooks  # noqa: PLW0603 - moto's classes are process-wide, so is the emulator hooked into them
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise RuntimeError(
            f"localcloud patches moto {PINNED_MOTO_VERSION} internals; moto {moto.__version__} is installed"
        )
    if _hooks is not None:
        raise RuntimeError("localcloud patches are already installed (one LocalCloud per process)")
    for owner, name, replacement in _PATCHES:
        _replaced.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, replacement)
    _lambda_invoke_parameters().add("InvocationType")
    _aws_sdk_error_prefixes()["sagemaker"] = "SageMaker"
    _hooks = hooks


def uninstall() -> None:
    global _hooks  # noqa: PLW0603
    for owner, name, original in reversed(_replaced):
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _replaced.clear()
    _lambda_invoke_parameters().discard("InvocationType")
    _aws_sdk_error_prefixes().pop("sagemaker", None)
    _hooks = None
