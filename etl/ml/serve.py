"""`etl serve`: the estimates over HTTP (FastAPI on uvicorn).

`POST /v1/estimate` takes one trip or a list, with the fields of a batch prediction file, and
answers with the same columns batch prediction writes (:func:`etl.ml.estimate.estimate`, the
same code). `GET /v1/model` tells which models answer; `GET /healthz` that the service is up;
`/docs` is the OpenAPI page. Invalid input gets a 422 whose `loc` names the field.

New models are picked up without a restart: a thread looks at model.json every half second;
when it changed, the new set is loaded beside the old one (checked whole, see
:func:`etl.ml.estimate.load_models`) and then swapped in with one assignment, so a request
is answered by the old models or the new ones, never fails for the change.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint's annotations at
# run time, and `Body` is imported inside create_app (fastapi is an optional extra).
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import polars as pl

from etl.errors import MlModelError
from etl.ml.estimate import Models, estimate, load_models
from etl.ml.requests import REQUIRED
from etl.ml.train import META_FILE

SERVE_HINT = "fastapi and uvicorn are not installed: pip install -e '.[serve]'"
POLL_S = 0.5
MAX_TRIPS = 10_000  # per request: a bigger file is a job for `etl predict --in`


class ModelStore:
    """The models being served, and the watch that swaps in new ones."""

    def __init__(self, path: Path, log: Callable[[str], None] = lambda _: None) -> None:
        self.path = path
        self.log = log
        self._seen = self._signature()
        self.current: Models = load_models(path)
        self._stop = threading.Event()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = (self.path / META_FILE).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def poll(self) -> None:
        """Load and swap in the models if model.json changed; keep the old ones on failure."""
        seen = self._signature()
        if seen is None or seen == self._seen:
            return
        try:
            models = load_models(self.path)
        except MlModelError as exc:
            self.log(f"keeping models {self.current.version}: {exc}")
            return
        self._seen = seen
        if models.version != self.current.version:
            self.current = models  # one assignment: a request holds the old set or the new one
            self.log(f"now serving models {models.version}")

    def watch(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def start(self) -> None:
        threading.Thread(target=self.watch, name="model-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def create_app(store: ModelStore) -> Any:
    """The FastAPI application answering from `store`."""
    from fastapi import Body, FastAPI
    from fastapi.exceptions import RequestValidationError

    app = FastAPI(
        title="DC trip ETA and fare",
        summary="Mean duration and fare of trips in Washington, DC, with 80% intervals.",
        version="1",
    )
    trips_adapter = _trips_adapter()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "models_version": store.current.version}

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        models = store.current
        metrics = models.metrics
        return {
            "version": models.version,
            "path": str(models.path),
            "data_window": metrics["split"],
            "rows": metrics["rows"],
            "metrics": metrics["metrics"],
            "region": models.meta.get("region"),
            "sources": models.meta["levels"]["source"],
            "default_source": models.meta["default_source"],
        }

    @app.post("/v1/estimate")
    def estimate_trips(
        body: Annotated[Any, Body(openapi_examples=EXAMPLES)],
    ) -> Any:
        from pydantic import ValidationError

        single = not isinstance(body, list)
        try:
            trips = trips_adapter.validate_python([body] if single else body)
        except ValidationError as exc:
            raise RequestValidationError(_locate(exc.errors(), single)) from None
        models = store.current  # this request's models, whatever the watch does meanwhile
        answers = _answer(models, trips)
        failed = _row_errors(answers)
        if failed:
            raise RequestValidationError(_locate(failed, single))
        return answers[0] if single else answers

    return app


def _trips_adapter() -> Any:
    from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

    class Trip(BaseModel):
        """A trip to estimate. Other fields (an id) come back unchanged."""

        model_config = ConfigDict(extra="allow")
        pickup_lat: float = Field(ge=-90, le=90)
        pickup_lon: float = Field(ge=-180, le=180)
        dropoff_lat: float = Field(ge=-90, le=90)
        dropoff_lon: float = Field(ge=-180, le=180)
        pickup_at: str = Field(description="ISO 8601; DC local time without an offset")
        source: str | None = None

    return TypeAdapter(Annotated[list[Trip], Field(min_length=1, max_length=MAX_TRIPS)])


EXAMPLES = {
    "one": {
        "summary": "One trip",
        "value": {
            "id": "A-1",
            "pickup_lat": 38.8977,
            "pickup_lon": -77.0365,
            "dropoff_lat": 38.8973,
            "dropoff_lon": -77.0063,
            "pickup_at": "2024-05-14T08:30",
        },
    }
}


def _answer(models: Models, trips: list[Any]) -> list[dict[str, Any]]:
    """The batch prediction rows of `trips`, each with its own extra fields put back."""
    fields = [*REQUIRED, "source"]
    frame = pl.DataFrame(
        {name: [getattr(trip, name) for trip in trips] for name in fields},
        schema={
            name: pl.String if name in ("pickup_at", "source") else pl.Float64 for name in fields
        },
    )
    rows = estimate(models, frame).to_dicts()
    return [{**(trip.model_extra or {}), **row} for trip, row in zip(trips, rows, strict=True)]


def _row_errors(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic-style errors for rows that could not be estimated ("field: message; ...")."""
    errors = []
    for index, row in enumerate(answers):
        for part in (row["error"] or "").split("; "):
            if part:
                field, _, message = part.partition(": ")
                errors.append({"type": "value_error", "loc": (index, field), "msg": message})
    return errors


def _locate(errors: list[Any], single: bool) -> list[dict[str, Any]]:
    """Errors with `loc` starting at "body", without the list index for a single trip."""
    located = []
    for error in errors:
        loc = tuple(error["loc"])
        if single and loc and loc[0] == 0:
            loc = loc[1:]
        located.append({**{k: v for k, v in error.items() if k != "ctx"}, "loc": ("body", *loc)})
    return located


def run_server(models: Path, host: str, port: int, log: Callable[[str], None]) -> None:
    """Serve `models` on host:port until interrupted; MlModelError if there is nothing to serve."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise MlModelError(SERVE_HINT) from None
    store = ModelStore(models, log)
    _check_free(host, port)
    store.start()
    log(f"serving models {store.current.version} from {models} on http://{host}:{port} (/docs)")
    try:
        uvicorn.run(create_app(store), host=host, port=port, log_level="warning", access_log=False)
    finally:
        store.stop()


def _check_free(host: str, port: int) -> None:
    """A one-line error now, rather than uvicorn's log line and exit code 1 later."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise MlModelError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
