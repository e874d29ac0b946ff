"""Schemathesis against a real `drawdown serve`: every operation of /openapi.json, generated
requests valid and invalid, and not one server error, undocumented status, response off its
schema or wrong content type.

Bounded for CI by DRAWDOWN_FUZZ_EXAMPLES (examples per operation and phase, default 15);
`make fuzz` runs it long. Each run draws a new seed (printed on failure);
DRAWDOWN_FUZZ_SEED=N replays one."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.live_server import create_key, live_server

ST = str(Path(sys.executable).parent / "st")
ROOT = Path(__file__).resolve().parent.parent
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
EXAMPLES = int(os.environ.get("DRAWDOWN_FUZZ_EXAMPLES", "15"))


def make_known_records(base_url: str, key: str) -> dict[str, list[str]]:
    """Customers, accounts with credits, and held invoices for the fuzzer to land on."""
    tag = uuid.uuid4().hex[:6]
    known: dict[str, list[str]] = {
        "customer_id": [],
        "account_id": [],
        "credit_id": [],
        "invoice_id": [],
    }
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        for n in range(2):
            customer, account = f"fz-{tag}-c{n}", f"fz-{tag}-a{n}"
            made = http.post(
                "/customers",
                json={
                    "id": customer,
                    "name": f"Fuzz customer {n}",
                    "primaryEmail": f"fuzz{n}@example.com",
                    "address": {"line1": "1 Main St", "country": "US"},
                    "account": {"id": account, "name": f"Fuzz account {n}"},
                },
            )
            assert made.status_code == 201, made.text
            known["customer_id"].append(customer)
            known["account_id"].append(account)
            grants = http.post(
                "/credits",
                json={
                    "creditRequests": [
                        {
                            "accountId": account,
                            "purpose": "fuzz",
                            "effectiveFrom": "2020-01-01",
                            "creditAmount": amount,
                            "priority": priority,
                        }
                        for priority, amount in enumerate((1000, 123456789012.0123456789, 0.5))
                    ]
                },
            )
            assert grants.status_code == 200, grants.text
            known["credit_id"] += [c["id"] for c in grants.json()["credits"]]
            for mode in ("HOLD", "DEBIT"):
                invoice = f"fz-{tag}-i{n}-{mode.lower()}"
                applied = http.post(
                    f"/accounts/{account}/credit_applications",
                    json={
                        "invoiceId": invoice,
                        "mode": mode,
                        "lineItems": [
                            {
                                "entityId": "um.api",
                                "entityType": "USAGE_METER_RATE_CARD",
                                "amount": 7,
                            }
                        ],
                    },
                )
                assert applied.status_code == 200, applied.text
                known["invoice_id"].append(invoice)
    return known


def run_schemathesis(
    base_url: str, key: str, known: dict[str, list[str]], workdir: Path
) -> tuple[int, str]:
    command = [
        ST,
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
    ]
    if os.environ.get("DRAWDOWN_FUZZ_SEED"):
        command += ["--seed", os.environ["DRAWDOWN_FUZZ_SEED"]]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "DRAWDOWN_FUZZ_KNOWN": json.dumps(known),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_schemathesis_finds_no_failure(database_url: str, tmp_path: Path) -> None:
    with live_server(database_url) as server:
        key = create_key(database_url, f"org-fuzz-{uuid.uuid4().hex}")
        known = make_known_records(server.base_url, key)
        operations = len(
            [
                op
                for ops in httpx.get(f"{server.base_url}/openapi.json").json()["paths"].values()
                for op in ops
            ]
        )
        returncode, output = run_schemathesis(server.base_url, key, known, tmp_path)
        reached = records_made(server.base_url, key, known)
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"Test cases:\s*\n\s*(.+)", output)
    print(
        f"schemathesis: {tested.group(1) if tested else '?'} operations tested of {operations}; "
        f"test cases: {cases.group(1) if cases else '?'}; beyond the known records: {reached}"
    )
    assert returncode == 0, output
    assert tested is not None and int(tested.group(1)) == operations, output
    # the hooks steered generated requests onto the known accounts: the ledger was reached
    assert reached["credits"] > 0 and reached["applications"] > 0, reached


def records_made(base_url: str, key: str, known: dict[str, list[str]]) -> dict[str, int]:
    """How many credits and applications the fuzzer made on the known accounts."""
    made = {"credits": 0, "applications": 0}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        for account in known["account_id"]:
            for kind, path, query, seeded in (
                ("credits", "/credits", {"account_id": account}, 3),
                ("applications", f"/accounts/{account}/credit_applications", {}, 2),
            ):
                count, token = 0, None
                while True:
                    page = http.get(
                        path, params={**query, **({"nextToken": token} if token else {})}
                    )
                    assert page.status_code == 200, page.text
                    count += len(page.json()["data"])
                    token = page.json().get("nextToken")
                    if not token:
                        break
                made[kind] += count - seeded
    return made
