"""Record API test helpers: users for a test cluster.toml and a small client that sends the
headers every record request needs (bearer token, X-Request-ID)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp

from spinekv.security.secrets import hash_secret

TOKENS = {"clinical": "t-clinical", "admin": "t-admin", "service": "t-service"}
# Hashed once here (scrypt is slow by design), for every test cluster.toml that lists them.
USERS_TOML = "\n".join(
    f'[[user]]\nname = "{role}-user"\nrole = "{role}"\ntoken_hash = "{hash_secret(token)}"\n'
    for role, token in TOKENS.items()
)
# A KV API user granted the records type by name (a grant on `any` never reaches it), for
# tests that look under the record API at what it stored.
RAW_TOKEN = "t-records-kv"
USERS_TOML += (
    f'\n[[user]]\nname = "records-kv"\ntoken_hash = "{hash_secret(RAW_TOKEN)}"\n'
    'grants = [{ on = "records", permissions = ["get", "put", "delete", "index", "props"] }]\n'
)
RAW = {"Authorization": f"Bearer {RAW_TOKEN}"}
PDS = "/personal-demographics/FHIR/R4"
SCR = "/summary-care-record/FHIR/R4"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


class Answer:
    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def code(self) -> str:
        """The Spine code of an OperationOutcome answer."""
        return self.json["issue"][0]["details"]["coding"][0]["code"]

    def __repr__(self) -> str:
        return f"<{self.status} {self.text[:300]}>"


class RecordClient:
    """Calls a node's record API as a given role; every call gets a fresh X-Request-ID."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "clinical",
        body: Any = None,
        data: bytes | str | None = None,
        content_type: str = "application/fhir+json",
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
        base_url: str | None = None,
    ) -> Answer:
        sent = {"X-Request-ID": request_id or str(uuid.uuid4())}
        if role is not None:
            sent["Authorization"] = f"Bearer {TOKENS[role]}"
        if body is not None:
            data = json.dumps(body)
        if data is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        url = (base_url or self.base_url) + path
        async with self.session.request(method, url, data=data, headers=sent) as resp:
            return Answer(resp.status, resp.headers, await resp.text())


def patient(
    family: str = "Smith",
    given: str = "Jane",
    birth_date: str = "1980-02-29",
    gender: str = "female",
    postcode: str = "LS1 4HR",
    gp: str = "Y12345",
    nhs: str | None = None,
) -> dict:
    resource: dict = {
        "resourceType": "Patient",
        "name": [{"use": "usual", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"line": ["1 Trevelyan Square"], "postalCode": postcode}],
        "telecom": [{"system": "phone", "value": "0113 496 0000"}],
        "generalPractitioner": [
            {
                "type": "Organization",
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": gp,
                },
            }
        ],
    }
    if nhs is not None:
        resource["identifier"] = [{"system": NHS_SYSTEM, "value": nhs}]
    return resource
