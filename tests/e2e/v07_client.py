"""A minimal Deepomatic v0.7 client: the wire format exactly as the existing Python client sends it.

What it reproduces, because an existing client relies on it: `requests` with an `X-API-KEY`
header; `Content-Type: application/json` (and `Accept`) on every request without files, the body
`json.dumps`-ed; a create with files sent as multipart where nested fields are flattened the
Django-REST way (`metadata.author`, `preprocessing.inputs[0]image.dimension_order`) and leaf
values left to `requests`, which writes them with `str()` (`True`, `255.0`); files as parts whose
form names are the file names; URLs with a trailing slash; string ids meaning public networks;
lists walked by following the absolute `next` links; 204 (and no body) expected on delete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

import requests

API_VERSION = "v0.7"
JSON = "application/json"


class ClientError(Exception):
    """A 4xx answer (or a 5xx: `ServerError`), keeping the response for the test to inspect."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:500]}")
        self.response = response
        self.status_code = response.status_code


class ServerError(ClientError):
    pass


def flatten_for_multipart(fields: dict[str, Any]) -> dict[str, Any]:
    """Django REST framework's nested form keys: `a.b`, `a[0]`, and no dot after an index (`a[0]b`)."""
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any, after_index: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}{key}" if after_index else f"{prefix}.{key}", item, False)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(f"{prefix}[{index}]", item, True)
        else:
            if prefix in flat:
                raise ValueError(f"duplicate form key {prefix!r}")
            flat[prefix] = value

    # Top-level names take no leading dot: the same rule as right after a list index.
    visit("", fields, True)
    return flat


class V07Client:
    def __init__(self, api_key: str, host: str, timeout: float = 30.0) -> None:
        # The host is the server's root; the client adds the version, as the v0.7 client does.
        self.resource_prefix = host.rstrip("/") + "/" + API_VERSION
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"X-API-KEY": api_key, "User-Agent": "tensorgate-v07-wire-test"})
        self.last_request: requests.PreparedRequest | None = None

    # -- HTTP ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        resource: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, IO[bytes]] | None = None,
    ) -> Any:
        url = resource if resource.startswith("http") else self.resource_prefix + resource
        headers: dict[str, str] = {}
        body: Any = data
        if files:
            # requests writes the multipart body and its boundary; fields are flattened, not JSON.
            body = flatten_for_multipart(data or {})
            for file in files.values():
                file.seek(0)
        else:
            headers = {"Content-Type": JSON, "Accept": JSON}
            body = None if data is None else json.dumps(data)
        response = self.session.request(
            method, url, params=params, data=body, files=files, headers=headers, timeout=self.timeout
        )
        self.last_request = response.request
        if response.status_code == 204:
            return None
        if 400 <= response.status_code < 500:
            raise ClientError(response)
        if not 200 <= response.status_code < 300:
            raise ServerError(response)
        if JSON in response.headers.get("Content-Type", ""):
            return response.json()
        return response.content

    def list_pages(self, resource: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a list: the first by offset/limit, the others by their absolute `next` link."""
        page = self.request("GET", resource, params=params)
        while True:
            yield page
            if page["next"] is None:
                return
            page = self.request("GET", page["next"])

    def iterate(self, resource: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for page in self.list_pages(resource, params):
            yield from page["results"]

    # -- networks -----------------------------------------------------------------------------

    @staticmethod
    def network_uri(network_id: int | str | None = None, public: bool = False) -> str:
        public = public or isinstance(network_id, str)
        base = "/networks/public/" if public else "/networks/"
        return base if network_id is None else f"{base}{network_id}/"

    def create_network(self, files: dict[str, IO[bytes]] | None = None, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", self.network_uri(), data=fields, files=files)
        return result

    def list_networks(self, public: bool = False, offset: int = 0, limit: int = 100) -> Iterator[dict[str, Any]]:
        return self.iterate(self.network_uri(public=public), {"offset": offset, "limit": limit})

    def retrieve_network(self, network_id: int | str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", self.network_uri(network_id))
        return result

    def update_network(self, network_id: int, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", self.network_uri(network_id), data=fields)
        return result

    def delete_network(self, network_id: int) -> None:
        url = self.resource_prefix + self.network_uri(network_id)
        response = self.session.delete(url, headers={"Content-Type": JSON, "Accept": JSON}, timeout=self.timeout)
        self.last_request = response.request
        if response.status_code != 204:
            raise ClientError(response)
        if response.content:
            raise AssertionError(f"DELETE answered 204 with a body: {response.content[:200]!r}")

    # -- tasks --------------------------------------------------------------------------------

    def retrieve_task(self, task_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/tasks/{task_id}/")
        return result

    def list_tasks(self, task_ids: list[int], limit: int = 100) -> Iterator[dict[str, Any]]:
        # requests repeats a list parameter: task_ids=1&task_ids=2.
        return self.iterate("/tasks/", {"task_ids": task_ids, "offset": 0, "limit": limit})
