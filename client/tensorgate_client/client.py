"""`Client`: the API's networks, tasks, recognition specs and versions, endpoints, batch jobs and inference as
typed methods."""

from __future__ import annotations

import base64
import contextlib
import json
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import requests
from pydantic import BaseModel
from requests_toolbelt.multipart.encoder import MultipartEncoder

from tensorgate_client import config, uploads
from tensorgate_client.errors import ApiError, ConnectionFailed, TaskFailed, WaitTimeout
from tensorgate_client.models import (
    Dataset,
    DatasetPage,
    DatasetSplit,
    Endpoint,
    EndpointPage,
    Evaluation,
    Job,
    JobPage,
    Network,
    NetworkPage,
    Prediction,
    RecognitionSpec,
    RecognitionSpecPage,
    RecognitionVersion,
    RecognitionVersionPage,
    Task,
    TaskPage,
    TaskQueued,
    UploadInstructions,
)
from tensorgate_client.transport import RetryPolicy, Transport

JSON_FIELDS = ("metadata", "preprocessing", "postprocessings", "input_spec", "output_spec", "conversion_options")
GENERATED_ARCHIVE_NAME = "model.zip"
Parsed = TypeVar("Parsed", bound=BaseModel)
UNSET: Any = object()


class Client:
    """One account on one Tensorgate host. Thread-safe: share it between threads for concurrent inference.

    Arguments left out come from `TENSORGATE_API_URL` / `TENSORGATE_API_KEY`, then the profile file
    `tensorgate login` writes (see `tensorgate_client.config`).
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        profile: str | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = config.resolve(api_url, api_key, profile)
        self.transport = Transport(
            self.settings.api_url, self.settings.api_key, timeout=timeout, retry=retry, sleep=sleep
        )
        self.networks = Networks(self)
        self.tasks = Tasks(self)
        self.specs = Specs(self)
        self.versions = Versions(self)
        self.endpoints = Endpoints(self)
        self.jobs = Jobs(self)
        self.datasets = Datasets(self)
        self._sleep = sleep
        self._clock = clock

    def infer(
        self,
        network_id: int | str,
        image: str | Path | bytes,
        *,
        output_tensors: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue one inference on one image input; answers the task id. See `networks.infer`."""
        return self.networks.infer(network_id, image, output_tensors=output_tensors, options=options)


class Networks:
    """`/networks/`: create from a path, list, get, update, delete, wait for the deploy, infer."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client.transport

    def create(
        self,
        path: str | Path,
        *,
        name: str,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        framework: str | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        postprocessings: Sequence[Mapping[str, Any]] | None = None,
        input_spec: Sequence[Mapping[str, Any]] | None = None,
        output_spec: Sequence[Mapping[str, Any]] | None = None,
        conversion_options: Mapping[str, Any] | None = None,
        extra_files: Iterable[str | Path] = (),
        progress: uploads.Progress | None = None,
        on_stage: Callable[[str], None] | None = None,
        multipart_limit: int = uploads.MULTIPART_BODY_LIMIT - uploads.MULTIPART_HEADROOM,
    ) -> Network:
        """Register the model at `path` (a SavedModel folder, a .keras/.h5/.tflite/.onnx file or an archive).

        Files whose multipart body fits `multipart_limit` go in the create request; anything larger, or
        an archive, goes by a JSON create and the presigned POST its answer carries. `progress(sent, total)`
        follows the bytes of whichever body carries the model (and first, when files are zipped, the bytes
        zipped); `on_stage(text)` says which step runs ("zipping …", "uploading …"). The answer is the
        network, still `pending`: `wait` follows its deploy.
        """
        stage = on_stage or (lambda text: None)
        model = uploads.collect(Path(path), tuple(Path(extra) for extra in extra_files))
        fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "metadata": metadata,
            "framework": framework or model.framework,
            "preprocessing": preprocessing,
            "postprocessings": postprocessings,
            "input_spec": input_spec,
            "output_spec": output_spec,
            "conversion_options": conversion_options,
        }
        fields = {key: value for key, value in fields.items() if value is not None}
        if model.multipart_names_ok():
            text_fields = {
                key: json.dumps(value) if key in JSON_FIELDS else str(value) for key, value in fields.items()
            }
            if uploads.multipart_length(text_fields, model.files) <= multipart_limit:
                body = uploads.multipart_body(text_fields, model.files, progress)
                return _parsed(self._http.request("POST", "networks/", body=body), Network)
        if model.archive is None:
            stage(f"zipping {len(model.files)} files")
        with uploads.as_archive(model, progress) as archive:
            stage(f"uploading {archive.name if model.archive is not None else GENERATED_ARCHIVE_NAME}")
            name_signed = uploads.archive_name(archive) if model.archive is not None else GENERATED_ARCHIVE_NAME
            created = _parsed(
                self._http.request("POST", "networks/", json=fields | {"archive_name": name_signed}), Network
            )
            if created.upload is None:
                raise ApiError(201, "The service created the network but sent no upload instructions for the archive.")
            try:
                self.upload_archive(created.upload, archive, name_signed, progress)
            except BaseException:
                # Nothing half-written: a network whose archive never arrived would stay pending.
                self._delete_quietly(created.id)
                raise
        return created

    def upload_archive(
        self, upload: UploadInstructions, archive: Path, name: str, progress: uploads.Progress | None = None
    ) -> None:
        """POST the archive to the presigned URL: its fields first, the file last, streamed from disk."""
        _post_presigned(self._http, upload, archive, name, progress)

    def list(self, offset: int = 0, limit: int = 20) -> NetworkPage:
        answer = self._http.request("GET", "networks/", params={"offset": offset, "limit": limit})
        return _parsed(answer, NetworkPage)

    def iterate(self, page_size: int = 100) -> Iterable[Network]:
        """Every network of the account, following `next` links."""
        return _every(self._http, self.list(0, page_size), NetworkPage)

    def get(self, network_id: int | str) -> Network:
        return _parsed(self._http.request("GET", f"networks/{_network_path(network_id)}/"), Network)

    def update(
        self,
        network_id: int | str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Network:
        """Change the name, description or metadata (the only fields that can change)."""
        changes = {
            key: value
            for key, value in {"name": name, "description": description, "metadata": metadata}.items()
            if value is not None
        }
        if not changes:
            raise ValueError("Give at least one of name, description or metadata to update.")
        answer = self._http.request("PATCH", f"networks/{_network_path(network_id)}/", json=changes)
        return _parsed(answer, Network)

    def delete(self, network_id: int | str) -> None:
        self._http.request("DELETE", f"networks/{_network_path(network_id)}/")

    def wait(
        self,
        network_id: int | str,
        *,
        timeout: float = 900.0,
        poll: float = 1.0,
        on_poll: Callable[[Network, float], None] | None = None,
    ) -> Network:
        """Wait for the deploy to end; the network `ready` (or `error`: read `.error`). `WaitTimeout` past `timeout`."""
        return _poll(
            lambda: self.get(network_id),
            lambda network: network.status != "pending",
            f"network {network_id} to deploy",
            timeout,
            poll,
            on_poll,
            self._client._sleep,
            self._client._clock,
        )

    def infer(
        self,
        network_id: int | str,
        image: str | Path | bytes,
        *,
        output_tensors: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue one inference; answers the task id. `image` is a path or bytes (sent as a multipart file part)
        or an http(s)/s3 URL (sent as JSON, fetched by the service). `options` holds the request's other
        fields (`bounding_box_threshold`, `iou_threshold`, `max_objects`, ...)."""
        return _queue_inference(
            self._http, f"networks/{_network_path(network_id)}/inference", image, output_tensors, options
        )

    def _delete_quietly(self, network_id: int | str) -> None:
        # The upload's own error is the one to report.
        with contextlib.suppress(Exception):
            self.delete(network_id)


class Tasks:
    """`/tasks/`: get one or many, wait for them to end."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client.transport

    def get(self, task_id: int) -> Task:
        return _parsed(self._http.request("GET", f"tasks/{int(task_id)}/"), Task)

    def get_many(self, task_ids: Sequence[int]) -> list[Task]:
        """The tasks, in the order asked (100 per request, the service's limit)."""
        found: dict[int, Task] = {}
        for start in range(0, len(task_ids), 100):
            chunk = [int(task_id) for task_id in task_ids[start : start + 100]]
            params = {"task_ids": ",".join(map(str, chunk)), "limit": 100}
            page = _parsed(self._http.request("GET", "tasks/", params=params), TaskPage)
            found |= {task.id: task for task in page.results}
        return [found[int(task_id)] for task_id in task_ids if int(task_id) in found]

    def wait(
        self,
        task_id: int,
        *,
        timeout: float = 300.0,
        poll: float = 0.5,
        raise_on_error: bool = False,
        on_poll: Callable[[Task, float], None] | None = None,
    ) -> Task:
        """Poll until the task ends, the interval growing from `poll` to 10 s. `WaitTimeout` past `timeout`;
        with `raise_on_error`, a task ending `error` raises `TaskFailed`."""
        task = _poll(
            lambda: self.get(task_id),
            lambda task: task.ended,
            f"task {task_id} to end",
            timeout,
            poll,
            on_poll,
            self._client._sleep,
            self._client._clock,
        )
        if raise_on_error and task.status == "error":
            raise TaskFailed(task)
        return task


class Specs:
    """`/recognition/specs/`: what a recognition answers. Inference through a spec runs its current version,
    so a spec id is a stable name for "the model now": switch models with `update(current_version_id=…)`."""

    def __init__(self, client: Client) -> None:
        self._http = client.transport

    def create(
        self,
        name: str,
        outputs: Sequence[Mapping[str, Any]] | None = None,
        *,
        labels: Sequence[str] | None = None,
        roi: str = "NONE",
        exclusive: bool = False,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RecognitionSpec:
        """A spec with `outputs` as the API takes them, or one output of `labels` (ids 0, 1, … in order) with
        `roi` NONE (classification) or BBOX (detection)."""
        if (outputs is None) == (labels is None):
            raise ValueError("Give either outputs or labels.")
        if labels is not None:
            listed = [{"id": index, "name": label} for index, label in enumerate(labels)]
            outputs = [{"labels": {"roi": roi, "exclusive": exclusive, "labels": listed}}]
        body: dict[str, Any] = {"name": name, "outputs": list(outputs or [])}
        if description is not None:
            body["description"] = description
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return _parsed(self._http.request("POST", "recognition/specs/", json=body), RecognitionSpec)

    def list(self, offset: int = 0, limit: int = 20) -> RecognitionSpecPage:
        answer = self._http.request("GET", "recognition/specs/", params={"offset": offset, "limit": limit})
        return _parsed(answer, RecognitionSpecPage)

    def iterate(self, page_size: int = 100) -> Iterable[RecognitionSpec]:
        return _every(self._http, self.list(0, page_size), RecognitionSpecPage)

    def get(self, spec_id: int | str) -> RecognitionSpec:
        return _parsed(self._http.request("GET", f"{_spec_path(spec_id)}/"), RecognitionSpec)

    def update(
        self,
        spec_id: int | str,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        current_version_id: int | None = UNSET,
    ) -> RecognitionSpec:
        """Change the name, description, metadata or current version (`None` clears it); outputs never change."""
        changes: dict[str, Any] = {
            key: value
            for key, value in {"name": name, "description": description, "metadata": metadata}.items()
            if value is not None
        }
        if current_version_id is not UNSET:
            changes["current_version_id"] = current_version_id
        if not changes:
            raise ValueError("Give at least one of name, description, metadata or current_version_id to update.")
        answer = self._http.request("PATCH", f"{_spec_path(spec_id)}/", json=changes)
        return _parsed(answer, RecognitionSpec)

    def delete(self, spec_id: int | str) -> None:
        """Delete the spec and its versions."""
        self._http.request("DELETE", f"{_spec_path(spec_id)}/")

    def versions(self, spec_id: int | str, offset: int = 0, limit: int = 20) -> RecognitionVersionPage:
        answer = self._http.request(
            "GET", f"{_spec_path(spec_id)}/versions/", params={"offset": offset, "limit": limit}
        )
        return _parsed(answer, RecognitionVersionPage)

    def infer(
        self,
        spec_id: int | str,
        image: str | Path | bytes,
        *,
        output_tensors: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue one inference through the spec's current version (an `ApiError` 409 when it has none);
        `options` may hold `show_discarded` and `max_predictions`. Answers the task id."""
        return _queue_inference(self._http, f"{_spec_path(spec_id)}/inference", image, output_tensors, options)


class Versions:
    """`/recognition/versions/`: a spec bound to a `ready` network, with how to read its tensors."""

    def __init__(self, client: Client) -> None:
        self._http = client.transport

    def create(
        self, spec_id: int | str, network_id: int | str, post_processings: Sequence[Mapping[str, Any]]
    ) -> RecognitionVersion:
        """`post_processings`: one per spec output, `classification` or `detection` (docs/recognition.md)."""
        body = {"spec_id": spec_id, "network_id": network_id, "post_processings": list(post_processings)}
        return _parsed(self._http.request("POST", "recognition/versions/", json=body), RecognitionVersion)

    def list(self, offset: int = 0, limit: int = 20) -> RecognitionVersionPage:
        answer = self._http.request("GET", "recognition/versions/", params={"offset": offset, "limit": limit})
        return _parsed(answer, RecognitionVersionPage)

    def iterate(self, page_size: int = 100) -> Iterable[RecognitionVersion]:
        return _every(self._http, self.list(0, page_size), RecognitionVersionPage)

    def get(self, version_id: int) -> RecognitionVersion:
        return _parsed(self._http.request("GET", f"recognition/versions/{int(version_id)}/"), RecognitionVersion)

    def delete(self, version_id: int) -> None:
        self._http.request("DELETE", f"recognition/versions/{int(version_id)}/")

    def infer(
        self,
        version_id: int,
        image: str | Path | bytes,
        *,
        output_tensors: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue one inference through this version; answers the task id."""
        path = f"recognition/versions/{int(version_id)}/inference"
        return _queue_inference(self._http, path, image, output_tensors, options)


TARGET_FIELDS = ("network_id", "recognition_version_id", "recognition_spec_id")


class Endpoints:
    """`/endpoints/`: named deployments with a synchronous `predict`, a canary split and warm workers."""

    def __init__(self, client: Client) -> None:
        self._http = client.transport

    def create(
        self,
        name: str,
        *,
        network_id: int | None = None,
        recognition_version_id: int | None = None,
        recognition_spec_id: int | None = None,
        replicas: int = 0,
        gpu_required: bool = False,
        description: str | None = None,
        canary: Mapping[str, Any] | None = None,
    ) -> Endpoint:
        """An endpoint on exactly one target: a network, a recognition version, or a spec (whichever version is
        current at each prediction). `canary`: another target and the `weight` (0 < w < 1) of predictions it takes."""
        body = _one_target(network_id, recognition_version_id, recognition_spec_id) | {
            "name": name,
            "replicas": replicas,
            "gpu_required": gpu_required,
        }
        if description is not None:
            body["description"] = description
        if canary is not None:
            body["canary"] = dict(canary)
        return _parsed(self._http.request("POST", "endpoints/", json=body), Endpoint)

    def list(self, offset: int = 0, limit: int = 20, *, search: str | None = None) -> EndpointPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if search:
            params["search"] = search
        return _parsed(self._http.request("GET", "endpoints/", params=params), EndpointPage)

    def iterate(self, page_size: int = 100, *, search: str | None = None) -> Iterable[Endpoint]:
        return _every(self._http, self.list(0, page_size, search=search), EndpointPage)

    def get(self, endpoint_id: int) -> Endpoint:
        return _parsed(self._http.request("GET", f"endpoints/{int(endpoint_id)}/"), Endpoint)

    def lookup(self, name: str) -> Endpoint:
        """The endpoint with exactly this name (`ApiError` 404 when none)."""
        return _parsed(self._http.request("GET", "endpoints/lookup", params={"name": name}), Endpoint)

    def update(self, endpoint_id: int, **changes: Any) -> Endpoint:
        """PATCH any of name, description, metadata, a target, canary (None removes it), replicas, gpu_required."""
        if not changes:
            raise ValueError("Give at least one field to update.")
        return _parsed(self._http.request("PATCH", f"endpoints/{int(endpoint_id)}/", json=changes), Endpoint)

    def shutdown(self, endpoint_id: int) -> Endpoint:
        """End predictions (they answer 409) and release the warm workers; the record stays."""
        return _parsed(self._http.request("POST", f"endpoints/{int(endpoint_id)}/shutdown"), Endpoint)

    def delete(self, endpoint_id: int) -> None:
        self._http.request("DELETE", f"endpoints/{int(endpoint_id)}/")

    def predict(
        self,
        endpoint_id: int,
        images: Sequence[str | Path | bytes],
        *,
        wait: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Prediction:
        """Run up to 16 images in one request: paths and bytes are sent base64, URLs (https, s3) as they are.
        The answer holds every result when they were ready within the service's budget (`status` complete);
        else the pending tasks, which `client.tasks.wait` follows. `wait` asks for a shorter budget."""
        features = [_feature(image) for image in images]
        params = {"wait": wait} if wait is not None else None
        body = {"features": features, **dict(options or {})}
        answer = self._http.request("POST", f"endpoints/{int(endpoint_id)}/predict", json=body, params=params)
        return _parsed(answer, Prediction)


def _job_inputs(urls: Sequence[str] | None, prefix: str | None, split: tuple[int, int, str] | None) -> dict[str, Any]:
    if urls is not None:
        return {"urls": list(urls)}
    if split is not None:
        dataset_id, split_id, part = split
        return {"split": {"dataset_id": int(dataset_id), "split_id": int(split_id), "part": part}}
    return {"prefix": prefix}


class Jobs:
    """`/jobs/`: batch inference over a list of URLs, an `s3://` prefix of the account's uploads, an archive of
    images (or a folder, zipped on the way), or a dataset split's part."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client.transport

    def create(
        self,
        name: str,
        *,
        urls: Sequence[str] | None = None,
        prefix: str | None = None,
        split: tuple[int, int, str] | None = None,
        archive: str | Path | None = None,
        network_id: int | None = None,
        recognition_version_id: int | None = None,
        recognition_spec_id: int | None = None,
        endpoint_id: int | None = None,
        output_tensors: Sequence[str] | None = None,
        gpu_required: bool = False,
        description: str | None = None,
        progress: uploads.Progress | None = None,
    ) -> Job:
        """A job over `urls`, every object under `prefix`, the images of `split` (dataset id, split id, part) in
        the part's order, or the images of `archive` (a .zip/.tar.gz/.tgz, or a folder zipped into a temporary
        file) in member path order, uploaded by the presigned POST the create answers and streamed from disk
        (`progress(sent, total)`); through one target (or an endpoint's, following its traffic split)."""
        if sum(value is not None for value in (urls, prefix, split, archive)) != 1:
            raise ValueError("Give one of urls, prefix, split or archive.")
        if endpoint_id is not None:
            if any(value is not None for value in (network_id, recognition_version_id, recognition_spec_id)):
                raise ValueError("Give one target: a network, a recognition version, a spec or an endpoint.")
            body: dict[str, Any] = {"endpoint_id": endpoint_id}
        else:
            body = _one_target(network_id, recognition_version_id, recognition_spec_id)
        body |= {
            "name": name,
            "gpu_required": gpu_required,
            "inputs": _job_inputs(urls, prefix, split),
        }
        if output_tensors is not None:
            body["output_tensors"] = list(output_tensors)
        if description is not None:
            body["description"] = description
        if archive is not None:
            return self._create_from_archive(Path(archive), body, progress)
        return _parsed(self._http.request("POST", "jobs/", json=body), Job)

    def _create_from_archive(self, path: Path, body: dict[str, Any], progress: uploads.Progress | None) -> Job:
        files = uploads.collect(path)
        if files.archive is None and path.is_file():
            raise uploads.UnusableModelPath(f"{path} is one file: a job's archive is a folder or a .zip of images.")
        with uploads.as_archive(files, progress) as packed:
            signed = uploads.archive_name(packed) if files.archive is not None else "images.zip"
            created = _parsed(
                self._http.request("POST", "jobs/", json=body | {"inputs": {"archive": {"name": signed}}}), Job
            )
            if created.upload is None:
                raise ApiError(201, "The service created the job but sent no upload instructions.")
            _post_presigned(self._http, created.upload, packed, signed, progress)
        return created

    def list(
        self,
        offset: int = 0,
        limit: int = 20,
        *,
        search: str | None = None,
        name: str | None = None,
        status: str | None = None,
    ) -> JobPage:
        """A page of the account's jobs, oldest first; `search` matches parts of name, description or author."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        for key, value in (("search", search), ("name", name), ("status", status)):
            if value:
                params[key] = value
        return _parsed(self._http.request("GET", "jobs/", params=params), JobPage)

    def iterate(self, page_size: int = 100, *, search: str | None = None) -> Iterable[Job]:
        return _every(self._http, self.list(0, page_size, search=search), JobPage)

    def lookup(self, name: str) -> Job:
        """The newest job named exactly `name` (`ApiError` 404 when none)."""
        return _parsed(self._http.request("GET", "jobs/lookup", params={"name": name}), Job)

    def get(self, job_id: int) -> Job:
        return _parsed(self._http.request("GET", f"jobs/{int(job_id)}/"), Job)

    def cancel(self, job_id: int) -> Job:
        """Items not started end as cancelled; running ones finish. `ApiError` 409 once the job ended."""
        return _parsed(self._http.request("POST", f"jobs/{int(job_id)}/cancel"), Job)

    def wait(
        self,
        job_id: int,
        *,
        timeout: float = 3600.0,
        poll: float = 1.0,
        on_poll: Callable[[Job, float], None] | None = None,
    ) -> Job:
        """Poll until the job ends (success, error or cancelled); `on_poll(job, elapsed)` sees its counters."""
        return _poll(
            lambda: self.get(job_id),
            lambda job: job.ended,
            f"job {job_id} to end",
            timeout,
            poll,
            on_poll,
            self._client._sleep,
            self._client._clock,
        )

    def download(self, job_id: int, target: str | Path, progress: uploads.Progress | None = None) -> Path:
        """Write an ended job's results (JSON Lines, one line per item in input order) to `target`, streamed;
        `progress(received, total)` follows the bytes. The file appears whole or not at all: the bytes go to
        `target.part` first. The results URL is signed: an expired one is an `ApiError` with storage's sentence."""
        job = self.get(job_id)
        if job.results_url is None:
            raise ApiError(409, f"Job {job_id} is {job.status}: its results are written when it ends.")
        path = Path(target)
        partial = path.with_name(f"{path.name}.part")
        try:
            with open(partial, "wb") as handle:  # first, so a target that cannot be written costs no download
                response = self._http.request("GET", job.results_url, authenticated=False, stream=True)
                total = int(response.headers.get("Content-Length") or 0)
                received = 0
                with response:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        handle.write(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
            partial.replace(path)
        except ApiError as error:
            raise ApiError(error.status, f"The results of job {job_id} could not be read: {error.message}") from None
        except requests.RequestException as error:  # the connection broke while the results were arriving
            raise ConnectionFailed(f"The results of job {job_id} stopped arriving: {error}.") from None
        except OSError as error:  # the target cannot be written: name it, not the .part beside it
            if error.filename != str(partial):
                raise
            raise type(error)(error.errno, error.strerror, str(path)) from None
        finally:
            partial.unlink(missing_ok=True)
        return path


class Datasets:
    """`/datasets/`: labelled images from an uploaded archive (or a folder, zipped on the way), extracted by the
    service item by item (docs/datasets.md)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._http = client.transport

    def create(
        self,
        path: str | Path,
        *,
        name: str,
        kind: str = "classification",
        classes: Mapping[str, int] | None = None,
        collection_date: str | None = None,
        description: str | None = None,
        progress: uploads.Progress | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> Dataset:
        """Upload `path` (a .zip/.tar.gz/.tgz, or a folder: a folder per class, images with a labels file, or
        COCO's layout) by the presigned POST the create answers; the extraction then runs (`wait`)."""
        stage = on_stage or (lambda text: None)
        files = uploads.collect(Path(path))
        if files.archive is None and Path(path).is_file():
            raise uploads.UnusableModelPath(f"{path} is one file: a dataset is a folder or an archive of images.")
        body: dict[str, Any] = {"name": name, "kind": kind}
        for key, value in (("classes", classes), ("collection_date", collection_date), ("description", description)):
            if value is not None:
                body[key] = dict(value) if isinstance(value, Mapping) else value
        if files.archive is None:
            stage(f"zipping {len(files.files)} files")
        with uploads.as_archive(files, progress) as archive:
            name_signed = uploads.archive_name(archive) if files.archive is not None else "dataset.zip"
            stage(f"uploading {archive.name if files.archive is not None else name_signed}")
            created = _parsed(
                self._http.request("POST", "datasets/", json=body | {"archive_name": name_signed}), Dataset
            )
            if created.upload is None:
                raise ApiError(201, "The service created the dataset but sent no upload instructions.")
            try:
                _post_presigned(self._http, created.upload, archive, name_signed, progress)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.delete(created.id)
                raise
        return created

    def list(self, offset: int = 0, limit: int = 20, *, search: str | None = None) -> DatasetPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if search:
            params["search"] = search
        return _parsed(self._http.request("GET", "datasets/", params=params), DatasetPage)

    def get(self, dataset_id: int) -> Dataset:
        return _parsed(self._http.request("GET", f"datasets/{int(dataset_id)}/"), Dataset)

    def lookup(self, name: str) -> Dataset:
        return _parsed(self._http.request("GET", "datasets/lookup", params={"name": name}), Dataset)

    def delete(self, dataset_id: int) -> None:
        self._http.request("DELETE", f"datasets/{int(dataset_id)}/")

    def cancel(self, dataset_id: int) -> Dataset:
        """Cancel a pending extraction: the worker stops at its next chunk and removes what it wrote. `ApiError`
        409 once it ended; cancelling twice answers the same."""
        return _parsed(self._http.request("POST", f"datasets/{int(dataset_id)}/cancel"), Dataset)

    def cancel_version(self, dataset_id: int, version: str) -> dict[str, Any]:
        """Cancel a pending transformation: no item of the version is left."""
        answer = self._http.request("POST", f"datasets/{int(dataset_id)}/versions/{version}/cancel")
        return dict(answer.json())

    def cancel_evaluation(self, dataset_id: int, split_id: int, evaluation_id: int) -> Evaluation:
        """Cancel a pending evaluation and its batch job; nothing is scored."""
        path = f"datasets/{int(dataset_id)}/splits/{int(split_id)}/evaluations/{int(evaluation_id)}/cancel"
        return _parsed(self._http.request("POST", path), Evaluation)

    def errors(self, dataset_id: int, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """The last extraction's item errors, one by one."""
        answer = self._http.request(
            "GET", f"datasets/{int(dataset_id)}/errors", params={"offset": offset, "limit": limit}
        )
        return dict(answer.json())

    def split(
        self,
        dataset_id: int,
        name: str,
        parts: Mapping[str, float],
        *,
        version: str = "v1",
        seed: int = 0,
        stratify: bool = True,
        exclude_labels: Sequence[str] = (),
    ) -> DatasetSplit:
        """Split a version into named parts by percentage (summing to 100); the same seed draws the same items."""
        body = {
            "name": name,
            "version": version,
            "seed": seed,
            "stratify": stratify,
            "exclude_labels": list(exclude_labels),
            "parts": [{"name": part, "percentage": percentage} for part, percentage in parts.items()],
        }
        answer = self._http.request("POST", f"datasets/{int(dataset_id)}/splits", json=body)
        return _parsed(answer, DatasetSplit)

    def get_split(self, dataset_id: int, split_id: int) -> DatasetSplit:
        return _parsed(self._http.request("GET", f"datasets/{int(dataset_id)}/splits/{int(split_id)}"), DatasetSplit)

    def evaluate(
        self,
        dataset_id: int,
        split_id: int,
        network_id: int | None = None,
        *,
        recognition_version_id: int | None = None,
        recognition_spec_id: int | None = None,
        endpoint_id: int | None = None,
        part: str = "test",
        output_tensor: str | None = None,
    ) -> Evaluation:
        """Run one target over one part of a split and score its answers (a batch job): a network (classification,
        scores by index), or a recognition version, spec or endpoint (labels matched to classes by name; detection
        datasets through a detection version)."""
        targets = {
            "network_id": network_id,
            "recognition_version_id": recognition_version_id,
            "recognition_spec_id": recognition_spec_id,
            "endpoint_id": endpoint_id,
        }
        given = {key: value for key, value in targets.items() if value is not None}
        if len(given) != 1:
            raise ValueError("Give one target: a network, a recognition version, a spec or an endpoint.")
        body: dict[str, Any] = given | {"part": part}
        if output_tensor is not None:
            body["output_tensor"] = output_tensor
        path = f"datasets/{int(dataset_id)}/splits/{int(split_id)}/evaluations"
        return _parsed(self._http.request("POST", path, json=body), Evaluation)

    def metrics(self, dataset_id: int, split_id: int, evaluation_id: int) -> Evaluation:
        path = f"datasets/{int(dataset_id)}/splits/{int(split_id)}/evaluations/{int(evaluation_id)}/metrics"
        return _parsed(self._http.request("GET", path), Evaluation)

    def wait_for(self, fetch: Callable[[], Any], what: str, *, timeout: float = 1800.0, poll: float = 1.0) -> Any:
        """Poll `fetch` (a split or an evaluation) until it is no longer pending."""
        return _poll(
            fetch,
            lambda current: current.status != "pending",
            what,
            timeout,
            poll,
            None,
            self._client._sleep,
            self._client._clock,
        )

    def wait(
        self,
        dataset_id: int,
        *,
        timeout: float = 1800.0,
        poll: float = 1.0,
        on_poll: Callable[[Dataset, float], None] | None = None,
    ) -> Dataset:
        """Poll until the extraction ends: `ready` (item errors are on it) or `error`."""
        return _poll(
            lambda: self.get(dataset_id),
            lambda dataset: dataset.status != "pending",
            f"dataset {dataset_id} to be extracted",
            timeout,
            poll,
            on_poll,
            self._client._sleep,
            self._client._clock,
        )


MAX_POLL_INTERVAL = 10.0


def _poll(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    what: str,
    timeout: float,
    poll: float,
    on_poll: Callable[[Any, float], None] | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Any:
    """Fetch until `done`, the interval growing by half each time up to 10 s, never past the deadline."""
    started = clock()
    deadline = started + timeout
    interval = poll
    while True:
        current = fetch()
        elapsed = clock() - started
        if on_poll is not None:
            on_poll(current, elapsed)
        if done(current):
            return current
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(f"Gave up waiting for {what} after {timeout:g} s.", current)
        sleep(min(interval, remaining))
        interval = min(interval * 1.5, MAX_POLL_INTERVAL)


def _parsed(response: requests.Response, model: type[Parsed]) -> Parsed:
    """The answer as `model`; an answer that is not one (a wrong URL, a proxy's page) is an `ApiError` saying so."""
    try:
        return model.model_validate(response.json())
    except ValueError:  # not JSON, or JSON of another shape (pydantic's ValidationError is a ValueError)
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise ApiError(
            response.status_code,
            f"{response.request.method} {response.url} answered {response.status_code} with {kind} that is not "
            f"a Tensorgate {model.__name__}; is the API URL right?",
        ) from None


def _queue_inference(
    http: Transport,
    path: str,
    image: str | Path | bytes,
    output_tensors: Sequence[str] | None,
    options: Mapping[str, Any] | None,
) -> int:
    """POST one image input to an inference route; answers the task id. Paths and bytes go as a multipart
    file part (bytes base64 in JSON), URLs as JSON for the service to fetch."""
    extra = dict(options or {})
    if output_tensors is not None:
        extra["output_tensors"] = list(output_tensors)
    if isinstance(image, str) and image.startswith(("http://", "https://", "s3://", "data:")):
        body = {"inputs": [{"image": {"source": image}}], **extra}
        return _parsed(http.request("POST", path, json=body), TaskQueued).task_id
    if isinstance(image, bytes):
        encoded = base64.b64encode(image).decode("ascii")
        body = {"inputs": [{"image": {"source": encoded}}], **extra}
        return _parsed(http.request("POST", path, json=body), TaskQueued).task_id
    file = Path(image)
    if not file.is_file():
        raise FileNotFoundError(f"{file} is not a file.")
    text = [(key, _form_value(value)) for key, value in extra.items()]
    media = mimetypes.guess_type(file.name)[0] or "application/octet-stream"

    def body_factory() -> tuple[Any, Mapping[str, str]]:
        encoder = MultipartEncoder(fields=[*text, ("inputs[0]image.source", (file.name, file.read_bytes(), media))])
        return encoder, {"Content-Type": encoder.content_type}

    return _parsed(http.request("POST", path, body=body_factory), TaskQueued).task_id


def _every(http: Transport, page: Any, model: type[Any]) -> Iterable[Any]:
    """A list's results, page after page, following `next` links."""
    yield from page.results
    while page.next:
        page = _parsed(http.request("GET", page.next), model)
        yield from page.results


def _spec_path(spec_id: int | str) -> str:
    """Private specs are integers; a string that is not one is a public spec's id."""
    if isinstance(spec_id, int) or str(spec_id).isdigit():
        return f"recognition/specs/{int(spec_id)}"
    return f"recognition/public/{spec_id}"


def _post_presigned(
    http: Transport, upload: UploadInstructions, archive: Path, name: str, progress: uploads.Progress | None
) -> None:
    """POST a file to a presigned URL: its fields first, the file last, streamed from disk."""
    size = archive.stat().st_size
    if size > upload.max_bytes:
        raise ApiError(413, f"The archive is {size} bytes, over the {upload.max_bytes} bytes the upload is signed for.")
    fields = list(upload.fields.items())

    # S3 names the file part `file`; `streamed` names parts by file name, so build that one here.
    def s3_body() -> tuple[Any, Mapping[str, str]]:
        handle = open(archive, "rb")  # noqa: SIM115 - closed when the encoder is collected
        encoder = MultipartEncoder(fields=[*fields, ("file", (name, handle, "application/octet-stream"))])
        return uploads.monitored(encoder, progress)

    try:
        http.request("POST", upload.url, body=s3_body, authenticated=False, timeout=(10.0, 3600.0))
    except ApiError as error:
        raise ApiError(error.status, f"The archive upload was refused: {error.message}", error.details) from None


def _one_target(network_id: int | None, version_id: int | None, spec_id: int | None) -> dict[str, Any]:
    given = {
        name: value
        for name, value in zip(TARGET_FIELDS, (network_id, version_id, spec_id), strict=True)
        if value is not None
    }
    if len(given) != 1:
        raise ValueError("Give exactly one target: network_id, recognition_version_id or recognition_spec_id.")
    return given


def _feature(image: str | Path | bytes) -> str:
    """An SBrain feature: a URL as it is, a file's or bytes' base64."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "s3://", "data:")):
        return image
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _network_path(network_id: int | str) -> str:
    """Private networks are integers; a string that is not one is a public slug."""
    if isinstance(network_id, int) or str(network_id).isdigit():
        return str(int(network_id))
    return f"public/{network_id}"


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
