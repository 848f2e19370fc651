"""A small Python client of a node's local API; the CLI uses it, and so can any script.

    from agora.client import AgoraClient
    with AgoraClient("http://127.0.0.1:8765") as c:
        print(c.node()["did"], [p["did"] for p in c.peers()])

`base_url` may be `http://127.0.0.1:PORT` or `unix:///path/to/api.sock`. Errors from the node come
back as `AgoraError` with the node's code, message and hint; a node that is not running raises
`AgoraError("node_not_running")`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agora.errors import AgoraError

if TYPE_CHECKING:  # httpx is imported when a client is made: `agora --help` should not pay for it
    import httpx

DEFAULT_API = "http://127.0.0.1:8765"


def discover_api(home: Path | None = None) -> str:
    """Where the node's API is, most explicit first: $AGORA_API; else, when $AGORA_NODE names a devnet
    member, that member in the devnet directory (./.agora-devnet or $AGORA_DEVNET_DIR); else the run file
    the local node writes in its home ($AGORA_HOME or ~/.agora); else the devnet's node-1; else the
    default port. A node of your own running in your home never hides the devnet node you named."""
    env = os.environ.get("AGORA_API")
    if env:
        return env
    named = os.environ.get("AGORA_NODE")
    if named:
        try:
            api = _from_devnet(read_devnet_file(_devnet_file()), named)
        except (OSError, ValueError, KeyError, TypeError):
            api = None
        if api is None:
            path = _devnet_file()
            why = f"{path} has no member of that name" if path.is_file() else f"there is no devnet here (no {path})"
            raise AgoraError(
                "invalid_argument",
                f"AGORA_NODE={named} but {why}",
                hint="Run from the devnet's parent directory (or set AGORA_DEVNET_DIR), or unset AGORA_NODE.",
            )
        return api
    home = home or Path(os.environ.get("AGORA_HOME", Path.home() / ".agora"))
    for path, read, pick in (
        (home / "run.json", lambda p: json.loads(p.read_text()), _from_run_file),
        (_devnet_file(), read_devnet_file, _from_devnet),
    ):
        try:
            api = pick(read(path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if api:
            return api
    return DEFAULT_API


def devnet_dir() -> Path:
    """The devnet directory the CLI uses by default: $AGORA_DEVNET_DIR, else ./.agora-devnet."""
    return Path(os.environ.get("AGORA_DEVNET_DIR", ".agora-devnet"))


def _devnet_file() -> Path:
    return devnet_dir() / "devnet.json"


def read_devnet_file(path: Path) -> dict[str, Any]:
    """A devnet.json, only when it is the user's own and nobody else may rewrite it (`config_invalid`
    otherwise). It is found in the current directory, which may be one others write to (/tmp): a file planted
    there would send the CLI's calls, job inputs included, to an API of the planter's choosing, or name the
    processes `devnet down` stops. The checks are made on the file opened, so the file checked is the file read.
    OSError and ValueError (no such file, not JSON) are the caller's to handle."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & stat.S_IWOTH:
            raise AgoraError(
                "config_invalid",
                f"{path} is not trusted: it belongs to uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o}, "
                "and only a devnet file of your own that others cannot write is followed",
                hint="Run from a directory of your own, or pass --dir / AGORA_DEVNET_DIR naming your devnet.",
            )
        doc = json.loads(fh.read())
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON object")
    return doc


def resolve_node(name: str) -> str:
    """A node named by its DID, or by its devnet name (`hub`, `node-1`, …) from the devnet.json that
    `discover_api` reads (./.agora-devnet or $AGORA_DEVNET_DIR)."""
    if name.startswith("did:"):
        return name
    path = _devnet_file()
    try:
        doc = read_devnet_file(path)
        members = [doc["hub"], *doc["nodes"]]
    except (OSError, ValueError, KeyError, TypeError):
        members = []
    for member in members:
        if member.get("name") == name and member.get("did"):
            return str(member["did"])
    names = ", ".join(str(m.get("name")) for m in members) or f"no devnet in {path.parent}"
    raise AgoraError(
        "did_invalid",
        f"{name!r} is neither a DID nor a devnet member ({names})",
        hint="Pass a DID (`agora peers` lists them), or a devnet name such as node-1 from the devnet's parent "
        "directory (or with AGORA_DEVNET_DIR set).",
    )


def _from_run_file(doc: dict[str, Any]) -> str | None:
    api = doc.get("api")
    return str(api) if api else None


def _from_devnet(doc: dict[str, Any], name: str = "node-1") -> str | None:
    for member in [doc["hub"], *doc["nodes"]]:
        if member.get("name") == name:
            return str(member["api"])
    return None


def local_api_token(base_url: str, home: Path | None = None) -> str | None:
    """The token of the local node's TCP API (`api.token`, 0600, in its home), when that node runs with
    `require_api_token`. Sent only to the API the home's run file names: never to another port's listener."""
    home = home or Path(os.environ.get("AGORA_HOME", Path.home() / ".agora"))
    try:
        if _from_run_file(json.loads((home / "run.json").read_text())) != base_url:
            return None
        return (home / "api.token").read_text().strip() or None
    except (OSError, ValueError, AttributeError):
        return None


class AgoraClient:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`transport` replaces the HTTP transport (tests pass an `httpx.MockTransport`)."""
        import httpx

        self.base_url = base_url or discover_api()
        if self.base_url.startswith("unix://"):
            transport = transport or httpx.HTTPTransport(uds=self.base_url[len("unix://") :])
            self._http = httpx.Client(base_url="http://agora", transport=transport, timeout=timeout)
        else:
            token = token or local_api_token(self.base_url)
            headers = {"Authorization": f"Bearer {token}"} if token else None
            self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout, headers=headers)

    def __enter__(self) -> AgoraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, body_on: tuple[int, ...] = (), **kw: Any) -> Any:
        """`body_on`: error statuses whose reply is a reading, not an error (`/health` answers 503 when degraded):
        their JSON body is returned unless it is an error body."""
        import httpx

        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise AgoraError(
                "node_not_running",
                f"no agora node answers at {self.base_url} ({type(exc).__name__})",
                hint="Start one with `agora node up --hub URL` or `agora devnet up`; to reach a devnet node, "
                "pass --api with its URL from devnet.json or set AGORA_NODE=node-2 (run from the devnet's parent dir).",
            ) from None
        if resp.status_code >= 400:
            try:
                doc = resp.json()
                if resp.status_code in body_on and isinstance(doc, dict) and "error" not in doc:
                    return doc
                err = doc["error"]
            except (ValueError, KeyError, TypeError):
                raise AgoraError("internal", f"HTTP {resp.status_code}: {resp.text[:200]}") from None
            raise AgoraError.from_dict(err)
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    def health(self) -> dict[str, Any]:
        """`status` is `ok` or `degraded` (with `reasons`); a degraded node answers HTTP 503 with the same body."""
        return dict(self._request("GET", "/health", body_on=(503,)))

    def node(self) -> dict[str, Any]:
        return dict(self._request("GET", "/node"))

    def peers(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else None
        return list(self._request("GET", "/peers", params=params)["peers"])

    def ping(self, did: str, *, count: int = 1, timeout: float = 5.0) -> list[float]:
        body = {"did": did, "count": count, "timeout": timeout}
        return list(self._request("POST", "/ping", json=body)["rtt_ms"])

    def events(
        self, *, after: int = 0, kind: str | None = None, subject: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if kind:
            params["kind"] = kind
        if subject:
            params["subject"] = subject
        return list(self._request("GET", "/events", params=params)["events"])

    def metrics(self) -> str:
        return str(self._request("GET", "/metrics"))

    # -- jobs (this node as requester) ----------------------------------------------------------
    def submit_job(
        self, spec: dict[str, Any] | str, *, node: str | None = None, base_dirs: list[str] | None = None
    ) -> dict[str, Any]:
        """Start a job (spec as a mapping or YAML/JSON text) on `node` (this node when None).

        Relative paths in the spec (modules, inputs) are looked up in `base_dirs`, in order; by default
        in the current directory of this process, like a command run here would. Pass `base_dirs=[]` to
        allow none (every path must then be absolute)."""
        dirs = [os.getcwd()] if base_dirs is None else list(base_dirs)
        body = {"spec": spec, "node": node, "base_dirs": dirs}
        return dict(self._request("POST", "/jobs", json=body))

    def jobs(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return list(self._request("GET", "/jobs", params=params)["jobs"])

    def job(self, job_id: str, *, wait: float = 0.0) -> dict[str, Any]:
        """The job record; with `wait`, the server holds the reply until the job ends (at most 25 s)."""
        return dict(self._request("GET", f"/jobs/{job_id}", params={"wait": wait}))

    def job_why(self, job_id: str) -> dict[str, Any]:
        """Why the job's units are placed where they are (or not yet): see `GET /jobs/{id}/why`."""
        return dict(self._request("GET", f"/jobs/{job_id}/why"))

    def job_logs(self, job_id: str, *, after: int = 0, wait: float = 0.0, limit: int = 1000) -> dict[str, Any]:
        params = {"after": after, "wait": wait, "limit": limit}
        return dict(self._request("GET", f"/jobs/{job_id}/logs", params=params))

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/jobs/{job_id}/cancel"))

    def job_outputs(self, job_id: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/jobs/{job_id}/outputs")["outputs"])

    # -- this node as provider -----------------------------------------------------------------
    def resources(self) -> dict[str, Any]:
        return dict(self._request("GET", "/node/resources"))

    def bench(self) -> dict[str, Any]:
        return dict(self._request("POST", "/node/bench"))

    def grant(
        self, did: str, *, command: str = "/agora/alloc", ttl_s: int | None = None, policy: list[Any] | None = None
    ) -> dict[str, Any]:
        """Let `did` run tasks on this node; the reply holds the token and whether it was delivered."""
        body: dict[str, Any] = {"did": did, "command": command, "policy": policy or []}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return dict(self._request("POST", "/grants", json=body))

    def grants(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/grants")["grants"])

    def add_delegation(self, token: str) -> dict[str, Any]:
        return dict(self._request("POST", "/delegations", json={"token": token}))

    def delegations(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/delegations")["delegations"])

    def allocations(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return list(self._request("GET", "/allocations", params=params)["allocations"])

    # -- what this node sells (offers) ------------------------------------------------------------
    def create_offer(self, offer: dict[str, Any] | None = None, *, from_node: bool = False) -> dict[str, Any]:
        """Sell under `offer` (missing provider, id and validity are filled in), or under the default offer
        from this machine (`from_node`)."""
        if (offer is None) == (not from_node):
            raise AgoraError("invalid_argument", "give an offer or from_node=True, not both")
        body = {"from_node": True} if from_node else offer
        return dict(self._request("POST", "/offers", json=body))

    def offers(self, *, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        return list(self._request("GET", "/offers", params=params)["offers"])

    def offer(self, offer_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/offers/{offer_id}"))

    def withdraw_offer(self, offer_id: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/offers/{offer_id}"))

    # -- the market -----------------------------------------------------------------------------
    def market(self) -> dict[str, Any]:
        """The hub's market index as this node sees it: `providers` (each ad verified, with `age_s` and
        `stale`), `ignored` (forged, replayed entries), `self` (this node's own publisher)."""
        return dict(self._request("GET", "/market"))

    # -- trust --------------------------------------------------------------------------------
    def trust(self, did: str, *, records: int = 20) -> dict[str, Any]:
        """This node's view of one provider: score, breakdown (counts, decayed weights), penalty, latency and
        its newest evidence records."""
        return dict(self._request("GET", f"/trust/{did}", params={"records": records}))

    def trust_all(self) -> dict[str, Any]:
        """Every provider this node holds evidence about (`providers`), with the trust `settings`."""
        return dict(self._request("GET", "/trust"))

    def metrics_summary(self) -> dict[str, Any]:
        """The marketplace snapshot: offers, intents by status, contracts by state, escrow locked and released,
        match success rate, top rejection reasons."""
        return dict(self._request("GET", "/metrics_summary"))

    # -- intents, match, contracts (this node as requester) -----------------------------------------
    def create_intent(self, intent: dict[str, Any], *, base_dirs: list[str] | None = None) -> dict[str, Any]:
        """Keep an intent (a draft; `open: true` in it opens it at once). Relative paths of its job are read
        from `base_dirs` when it is matched (default: the current directory of this process)."""
        dirs = [os.getcwd()] if base_dirs is None else list(base_dirs)
        return dict(self._request("POST", "/intents", json={**intent, "base_dirs": dirs}))

    def intents(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
        return list(self._request("GET", "/intents", params=params)["intents"])

    def intent(self, intent_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/intents/{intent_id}"))

    def transition_intent(self, intent_id: str, status: str, *, cause: str = "") -> dict[str, Any]:
        """Open or cancel an intent (any other move: `intent_transition_invalid`)."""
        body = {"status": status, "cause": cause}
        return dict(self._request("POST", f"/intents/{intent_id}/transition", json=body))

    def match(
        self, intent_id: str, *, preview: bool = False, base_dirs: list[str] | None = None, wait: float = 30.0
    ) -> dict[str, Any]:
        """Match an open intent: its contracts, or the rejection counts; `preview` changes nothing."""
        body: dict[str, Any] = {"intent_id": intent_id, "preview": preview, "wait": wait, "base_dirs": base_dirs}
        return dict(self._request("POST", "/match", json=body, timeout=wait + 15.0))

    def contracts(
        self, *, state: str | None = None, job_id: str | None = None, intent_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("state", state), ("job_id", job_id), ("intent_id", intent_id)):
            if value:
                params[key] = value
        return list(self._request("GET", "/contracts", params=params)["contracts"])

    def contract(self, contract_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/contracts/{contract_id}"))

    def release_contract(self, contract_id: str, *, amount: int | None = None) -> dict[str, Any]:
        return dict(self._request("POST", f"/contracts/{contract_id}/release", json={"amount": amount}))

    def refund_contract(self, contract_id: str, *, reason: str = "") -> dict[str, Any]:
        return dict(self._request("POST", f"/contracts/{contract_id}/refund", json={"reason": reason}))

    def dispute_contract(self, contract_id: str, *, reason: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/contracts/{contract_id}/dispute", json={"reason": reason}))

    # -- the ledger (money, at this node's hub) ------------------------------------------------------
    def ledger(self) -> dict[str, Any]:
        """Where this node's money lives: `hubs`, and the hub's `operators` and journal `head`."""
        return dict(self._request("GET", "/ledger"))

    def balance(self, account: str | None = None) -> dict[str, Any]:
        """`{account, balance}` of a DID's wallet or an account (default: this node's wallet)."""
        params = {"account": account} if account else {}
        return dict(self._request("GET", "/ledger/balance", params=params))

    def ledger_entries(self, account: str | None = None, *, since: int = 0, limit: int = 100) -> dict[str, Any]:
        """Entries of an account (default: this node's wallet; "all": the whole journal), oldest first."""
        params: dict[str, Any] = {"since": since, "limit": limit}
        if account:
            params["account"] = account
        return dict(self._request("GET", "/ledger/entries", params=params))

    def ledger_verify(self) -> dict[str, Any]:
        """The node walks the whole journal itself: `ok`, `entries`, `problems`, `sum`, and the hub's report."""
        return dict(self._request("GET", "/ledger/verify"))

    def mint(self, to: str, amount: int, *, idem: str | None = None, memo: str = "") -> dict[str, Any]:
        """Issue `amount` into `to`'s wallet (this node must be one of the hub's operators)."""
        body: dict[str, Any] = {"to": to, "amount": amount, "memo": memo, **({"idem": idem} if idem else {})}
        return dict(self._request("POST", "/ledger/mint", json=body))

    def transfer(self, to: str, amount: int, *, idem: str | None = None, memo: str = "") -> dict[str, Any]:
        """Move `amount` of this node's money to `to` (a DID, or `fees`)."""
        body: dict[str, Any] = {"to": to, "amount": amount, "memo": memo, **({"idem": idem} if idem else {})}
        return dict(self._request("POST", "/ledger/transfer", json=body))

    def stake(self, amount: int, *, idem: str | None = None, unlock: bool = False) -> dict[str, Any]:
        """Lock `amount` of this node's money in its stake (`unlock`: take it back); `{entry, stake}`."""
        body: dict[str, Any] = {"amount": amount, **({"idem": idem} if idem else {})}
        return dict(self._request("POST", "/ledger/unstake" if unlock else "/ledger/stake", json=body))

    # -- fl (data sets and training runs) ----------------------------------------------------------
    def add_dataset(self, path: str, *, tags: list[str], licence: str, **options: Any) -> dict[str, Any]:
        """Offer the data set at `path` on the node's machine (options: name, price_per_update, custom_code,
        label, schema); the answer is the published offer (no path)."""
        return dict(
            self._request("POST", "/datasets", json={"path": path, "tags": tags, "licence": licence, **options})
        )

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/datasets")["datasets"])

    def remove_dataset(self, offer_id: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/datasets/{offer_id}"))

    def start_training(self, spec: dict[str, Any], *, budget: int | None = None, local: bool = False) -> dict[str, Any]:
        """Match and start a run on the peers' data sets (or, `local`, on this node's own)."""
        params: dict[str, Any] = {"providers": "local" if local else "peers"}
        if budget is not None:
            params["budget"] = budget
        return dict(self._request("POST", "/training/runs", json=spec, params=params))

    def training_status(self) -> dict[str, Any]:
        return dict(self._request("GET", "/training/status"))

    def training_run(self, run_id: str, *, wait_s: float = 0.0) -> dict[str, Any]:
        return dict(self._request("GET", f"/training/runs/{run_id}", params={"wait_s": wait_s}, timeout=wait_s + 30))

    def stop_training(self, run_id: str) -> dict[str, Any]:
        return dict(self._request("POST", f"/training/runs/{run_id}/stop"))

    # -- inference --
    def models(self) -> dict[str, Any]:
        """The network's models (from the market index): each with its providers and prices."""
        return dict(self._request("GET", "/inference/models"))

    def local_models(self) -> dict[str, Any]:
        """The models this node serves, with their runners."""
        return dict(self._request("GET", "/inference/models/local"))

    def model_add(self, model: str, **fields: Any) -> dict[str, Any]:
        """Serve a model: kind, context, price_in, price_out (per 1k tokens), max_concurrency, runner, url,
        upstream_model."""
        return dict(self._request("POST", "/inference/models", json={"model": model, **fields}))

    def model_remove(self, model: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/inference/models/{model}"))

    def quote(self, model: str, **fields: Any) -> dict[str, Any]:
        """Signed quotes (est_in, est_out, routing controls) from the providers routing would use."""
        return dict(self._request("POST", "/inference/quote", json={"model": model, **fields}))

    def infer(self, prompt: str, **fields: Any) -> dict[str, Any]:
        """One request through the market: text, usage, provider, the verified metering record, paid."""
        return dict(self._request("POST", "/inference/run", json={"prompt": prompt, **fields}))

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[Iterator[str]]:
        """The lines of a streamed answer (server-sent events); an error status raises its AgoraError
        (OpenAI's error shape or ours)."""
        with self._http.stream(method, path, **kw) as resp:
            if resp.status_code != 200:
                resp.read()
                try:
                    body = resp.json()
                except ValueError:
                    body = {}
                err = body.get("error") if isinstance(body.get("error"), dict) else body
                raise AgoraError.from_dict(err if isinstance(err, dict) else {})
            yield resp.iter_lines()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Any other endpoint, with the same error handling."""
        return self._request(method, path, **kw)


__all__ = [
    "DEFAULT_API",
    "AgoraClient",
    "devnet_dir",
    "discover_api",
    "local_api_token",
    "read_devnet_file",
    "resolve_node",
]
