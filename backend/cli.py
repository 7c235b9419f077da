"""`tracetune backend`, `concepts`, `signals`, `search` and `similar`: the backend's commands.

Heavy imports (torch, scikit-learn, the Label Studio SDK) happen inside the commands, so
`tracetune --help` stays fast.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, TextIO
from urllib.parse import urlsplit

import typer

from tracetune.sync.errors import InvalidInputError, NotFoundError
from tracetune.sync.settings import Settings

if TYPE_CHECKING:
    from tracetune.backend.services import Backend
    from tracetune.sync.label_studio import LabelStudioGateway

BACKEND_HELP = """Serve the ML backend that pre-annotates Label Studio tasks (gunicorn).

Label Studio calls it to predict flags, PII regions and scores for each task; reviewers then
accept or fix the pre-labels. Needs Redis (REDIS_URL) for its caches and concepts.

Examples:

  tracetune backend                                   # http://127.0.0.1:9090, 2 workers

  tracetune backend --host 0.0.0.0 --port 9090 --workers 4

  tracetune backend --dev                             # Werkzeug's server, one process

  tracetune backend connect -p "Docs QA review"       # make the project use it
"""

CONNECT_HELP = """Connect a Label Studio project to the backend: ML backend and webhook.

Registers `<url>/webhook` as a project webhook (with the basic-auth header when
BASIC_AUTH_USER/PASS are set), so reviewers' annotations reach the backend, then adds the
backend as the project's model. Safe to re-run: nothing is registered twice.

Example:

  tracetune backend connect -p "Docs QA review" --url http://127.0.0.1:9090
"""

CONCEPTS_HELP = """Concepts: classifiers over sentence embeddings, learned from examples.

Examples:

  tracetune concepts list

  echo '{"text": "you are an idiot"}' | tracetune concepts score toxicity

  tracetune concepts add billing -p "I was charged twice" -p "refund my invoice" \\
      -n "how do I export a CSV" -n "the app crashes on start" --project "Docs QA review"
"""

SIGNALS_HELP = """Signals: PII, secrets, language, text statistics, refusals, code...

Examples:

  tracetune signals list

  echo '{"text": "mail me at jane@example.com"}' | tracetune signals run pii

  tracetune signals run near_duplicate < prompts.jsonl
"""

#: Needs the whole input at once; not a per-text signal, so not in the registry.
NEAR_DUPLICATE = "near_duplicate"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _backend(settings: Settings) -> Backend:
    from tracetune.backend.serve import check_redis
    from tracetune.backend.services import Backend

    check_redis(settings)
    return Backend.create(settings)


def _gateway(settings: Settings) -> LabelStudioGateway:
    from tracetune.sync.label_studio import LabelStudioGateway

    return LabelStudioGateway(settings)


def _project(gateway: LabelStudioGateway, project: str) -> Any:
    """A project by title, or by id when PROJECT is a number."""
    if project.isdigit():
        return gateway.project(int(project))
    found = gateway.find_project(project)
    if found is None:
        raise NotFoundError(f"no Label Studio project titled {project!r}")
    return found


def _read_jsonl(stream: TextIO) -> list[dict[str, Any]]:
    """Lines of JSON objects, each with a string `text`."""
    records = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"stdin line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InvalidInputError(f"stdin line {number}: needs an object with a string 'text'")
        records.append(record)
    return records


def _write_jsonl(records: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> None:
    for record in records:
        _out(json.dumps(record, ensure_ascii=False))


# --- tracetune backend -------------------------------------------------------------------


def backend(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface (default: from the URL).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: from the URL).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes (TRACETUNE_BACKEND_WORKERS, 2).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Threads per process (TRACETUNE_BACKEND_THREADS).")
    ] = None,
    dev: Annotated[bool, typer.Option(help="Werkzeug's development server instead.")] = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from tracetune.backend.serve import serve

    settings = Settings()
    url = urlsplit(settings.tracetune_backend_url)
    serve(
        settings,
        host or url.hostname or "127.0.0.1",
        port or url.port or 9090,
        workers or settings.tracetune_backend_workers,
        threads or settings.tracetune_backend_threads,
        dev=dev,
    )


def connect(
    project: Annotated[str, typer.Option("--project", "-p", help="Project title or id.")],
    url: Annotated[
        str | None,
        typer.Option(help="Backend URL as Label Studio reaches it (TRACETUNE_BACKEND_URL)."),
    ] = None,
    title: Annotated[str, typer.Option(help="Model name shown in Label Studio.")] = "tracetune",
) -> None:
    from tracetune.sync.label_studio import label_studio_errors

    settings = Settings()
    backend_url = (url or settings.tracetune_backend_url).rstrip("/")
    gateway = _gateway(settings)
    found = _project(gateway, project)
    password = settings.secret("basic_auth_pass")
    auth: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if settings.basic_auth_user and password:
        auth = {
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": settings.basic_auth_user,
            "basic_auth_pass": password,
        }
        token = base64.b64encode(f"{settings.basic_auth_user}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    client = gateway.client
    with label_studio_errors(gateway.url):
        hook_url = f"{backend_url}/webhook"
        hooks = [h for h in client.webhooks.list(project=found.id) if h.url == hook_url]
        if not hooks:
            client.webhooks.create(url=hook_url, project=found.id, send_payload=True,
                                   send_for_all_actions=True, headers=headers)  # fmt: skip
        models = [m for m in client.ml.list(project=found.id) if m.url.rstrip("/") == backend_url]
        if not models:
            client.ml.create(url=backend_url, project=found.id, title=title, **auth)
    _out(f"project {found.title!r} (id {found.id}) uses the backend at {backend_url}")
    _out(f"  webhook  {'already registered' if hooks else 'registered'}: {hook_url}")
    _out(f"  model    {'already connected' if models else 'connected'}: {title}")


# --- tracetune concepts ------------------------------------------------------------------


def concepts_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per concept.")] = False,
) -> None:
    """Every concept, with its examples, version and cross-validated ROC-AUC.

    Trains the built-in concepts first if this Redis has never seen them (seconds).
    """
    backend = _backend(Settings())
    backend.ensure_builtins()
    rows = []
    for concept in backend.concepts.all():
        stored = backend.concepts.stored_model(concept.name)
        learned = sum(len(e) for e in backend.concepts.learned(concept.name).values())
        model = stored.model
        rows.append(
            {
                "name": concept.name,
                "flag": concept.flag,
                "reads": concept.reads.value,
                "builtin": concept.builtin,
                "positive": len(concept.positive),
                "negative": len(concept.negative),
                "background": concept.background,
                "learned": learned,
                "trained_positive": model.positives if model else None,
                "trained_negative": model.negatives if model else None,
                "version": stored.version,
                "cv_auc": model.cv_auc if model else None,
                "description": concept.description,
            }
        )
    if as_json:
        _write_jsonl(rows)
        return
    _out(f"{'name':<20} {'flag':<20} {'reads':<8} {'own +/-':>8} {'learned':>7} "
         f"{'trained +/-':>11} {'version':>7} {'cv auc':>6}")  # fmt: skip
    for row in rows:
        auc = "-" if row["cv_auc"] is None else f"{row['cv_auc']:.3f}"
        own = f"{row['positive']}/{row['negative']}"
        trained = f"{row['trained_positive']}/{row['trained_negative']}"
        _out(f"{row['name']:<20} {row['flag']:<20} {row['reads']:<8} {own:>8} "
             f"{row['learned']:>7} {trained:>11} {row['version']:>7} {auc:>6}")  # fmt: skip


def concepts_score(
    name: Annotated[str, typer.Argument(help="Concept name (see `concepts list`).")],
) -> None:
    """Score JSONL on stdin: each line's object comes back with a `score` in [0, 1].

    Example: `echo '{"text": "you are an idiot"}' | tracetune concepts score toxicity`
    """
    records = _read_jsonl(sys.stdin)
    backend = _backend(Settings())
    backend.ensure_builtins()
    backend.concepts.get(name)
    vectors = backend.embedder.embed([r["text"] for r in records])
    scores = backend.scorer.score(name, vectors) if records else []
    _write_jsonl([{**r, "score": round(float(s), 4)} for r, s in zip(records, scores, strict=True)])


def concepts_add(
    name: Annotated[str, typer.Argument(help="New concept name: lower case, digits, _.")],
    positive: Annotated[
        list[str] | None, typer.Option("--positive", "-p", help="A text showing it (repeat).")
    ] = None,
    negative: Annotated[
        list[str] | None, typer.Option("--negative", "-n", help="A text not showing it (repeat).")
    ] = None,
    examples: Annotated[
        typer.FileText | None,
        typer.Option("--examples", help='JSONL of {"text": ..., "label": 1 or 0}.'),
    ] = None,
    flag: Annotated[str | None, typer.Option(help="Flag it sets (default: the name).")] = None,
    reads: Annotated[str, typer.Option(help="all, answers or prompt.")] = "all",
    description: Annotated[str, typer.Option(help="What it means, for reviewers.")] = "",
    background: Annotated[
        list[str] | None,
        typer.Option(help="Concept whose positives count as negatives here (repeat)."),
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Also add the flag to this Label Studio project's config.")
    ] = None,
) -> None:
    """Create (or redefine) a concept from examples and train it now."""
    from tracetune.backend.concepts.store import Concept
    from tracetune.backend.concepts.training import train
    from tracetune.backend.signals import Reads

    positives, negatives = list(positive or []), list(negative or [])
    if examples is not None:
        for record in _read_jsonl(examples):
            (positives if record.get("label") in (1, True, "1") else negatives).append(
                record["text"]
            )
    if reads not in {r.value for r in Reads}:
        raise InvalidInputError(f"--reads must be all, answers or prompt, not {reads!r}")
    concept = Concept(
        name=name,
        flag=flag or name,
        reads=Reads(reads),
        description=description,
        positive=positives,
        negative=negatives,
        background=list(background or []),
    )
    settings = Settings()
    backend = _backend(settings)
    for other in concept.background:
        backend.concepts.get(other)
    existing = backend.concepts.names()
    if name in existing and backend.concepts.get(name).builtin:
        raise InvalidInputError(f"{name!r} is a built-in concept; choose another name")
    backend.concepts.put(concept)
    result = train(backend.concepts, backend.embedder, name)
    auc = "n/a" if result.cv_auc is None else f"{result.cv_auc:.3f}"
    _out(f"concept {name!r}: version {result.version}, {result.positives} positive and "
         f"{result.negatives} negative examples, cross-validated ROC-AUC {auc}")  # fmt: skip
    if project:
        _add_flag(settings, project, concept.flag)


def _add_flag(settings: Settings, project: str, flag: str) -> None:
    from tracetune.sync.label_config import flag_choices, kind_of_config, render_label_config
    from tracetune.sync.label_studio import label_studio_errors

    gateway = _gateway(settings)
    found = _project(gateway, project)
    kind = kind_of_config(found.label_config)
    if kind is None:
        raise InvalidInputError(f"project {found.title!r} does not use a tracetune label config")
    flags = flag_choices(found.label_config)
    if flag in flags:
        _out(f"project {found.title!r} already offers the flag {flag!r}")
        return
    config = render_label_config(kind, flags=[*flags, flag])
    with label_studio_errors(gateway.url):
        gateway.client.projects.update(id=found.id, label_config=config)
    _out(f"project {found.title!r} now offers the flag {flag!r}")


# --- tracetune signals -------------------------------------------------------------------


def signals_list() -> None:
    """Every signal: name, the flag it sets, what it reads, what it finds."""
    from tracetune.backend.signals import SIGNALS

    _out(f"{'name':<16} {'flag':<16} {'reads':<8} description")
    for name, signal in sorted(SIGNALS.items()):
        _out(f"{name:<16} {signal.flag or '-':<16} {signal.reads.value:<8} {signal.description}")
    _out(f"{NEAR_DUPLICATE:<16} {NEAR_DUPLICATE:<16} {'all':<8} near-duplicates among the input "
         "lines: MinHash LSH and embedding similarity")  # fmt: skip


def signals_run(
    name: Annotated[str, typer.Argument(help="Signal name (see `signals list`).")],
) -> None:
    """Run a signal on JSONL from stdin: each line comes back with its result under NAME.

    Example: `echo '{"text": "mail jane@example.com"}' | tracetune signals run pii`
    """
    from tracetune.backend.signals import SIGNALS

    if name != NEAR_DUPLICATE and name not in SIGNALS:
        known = ", ".join([*sorted(SIGNALS), NEAR_DUPLICATE])
        raise NotFoundError(f"no signal named {name!r} (known: {known})")
    records = _read_jsonl(sys.stdin)
    texts = [r["text"] for r in records]
    if name == NEAR_DUPLICATE:
        from tracetune.backend.duplicates import find_near_duplicates

        settings = Settings()
        backend = _backend(settings)
        matches = find_near_duplicates(
            backend.client, backend.embedder, texts,
            settings.tracetune_near_duplicate_threshold,
            settings.tracetune_semantic_duplicate_threshold,
        )  # fmt: skip
        results = [m.to_json() for m in matches]
    else:
        results = [r.to_json() for r in SIGNALS[name]().compute(texts)]
    _write_jsonl([{**r, name: result} for r, result in zip(records, results, strict=True)])


# --- tracetune search / similar ----------------------------------------------------------


def _search_setup(project: str) -> tuple[Backend, Any, str, dict[int, Any], dict[int, Any]]:
    from tracetune.backend.search import project_vectors, task_texts
    from tracetune.sync.label_studio import label_studio_errors

    settings = Settings()
    backend = _backend(settings)
    gateway = _gateway(settings)
    found = _project(gateway, project)
    with label_studio_errors(gateway.url):
        listed = gateway.client.tasks.list(
            project=found.id, page_size=settings.tracetune_page_size, fields="task_only"
        )
        tasks = task_texts(backend, ({"id": t.id, "data": t.data} for t in listed))
    vectors = project_vectors(backend, found.id, tasks)
    return backend, found, f"{gateway.url}/projects/{found.id}/data?task=", tasks, vectors


def _print_hits(hits: list[Any], link: str, as_json: bool) -> None:
    for hit in hits:
        if as_json:
            _out(json.dumps({"task_id": hit.task_id, "score": hit.score,
                             "url": f"{link}{hit.task_id}", "text": hit.text},
                            ensure_ascii=False))  # fmt: skip
            continue
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 70 else snippet[:67] + "..."
        _out(f"{hit.score:.3f}  task {hit.task_id:<6}  {link}{hit.task_id}  {snippet}")


def search(
    project: Annotated[str, typer.Argument(help="Project title or id.")],
    text: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    limit: Annotated[int, typer.Option(min=1, help="How many tasks.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per task.")] = False,
) -> None:
    """Tasks of a project closest in meaning to TEXT, with scores and Label Studio links.

    Example: `tracetune search "Docs QA review" "refund for a double charge"`
    """
    from tracetune.backend.search import nearest

    backend, _, link, tasks, vectors = _search_setup(project)
    query = backend.embedder.embed([text])[0]
    _print_hits(nearest(vectors, query, tasks, limit), link, as_json)


def similar(
    project: Annotated[str, typer.Argument(help="Project title or id.")],
    task_id: Annotated[int, typer.Argument(help="A task of that project.")],
    limit: Annotated[int, typer.Option(min=1, help="How many tasks.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per task.")] = False,
) -> None:
    """Tasks of a project closest in meaning to one of its tasks.

    Example: `tracetune similar "Docs QA review" 42`
    """
    from tracetune.backend.search import nearest

    _, _, link, tasks, vectors = _search_setup(project)
    if task_id not in vectors:
        raise NotFoundError(f"task {task_id} is not in the project (or has no text)")
    _print_hits(nearest(vectors, vectors[task_id], tasks, limit, exclude=task_id), link, as_json)


def register(app: typer.Typer) -> None:
    backend_app = typer.Typer(help=BACKEND_HELP, invoke_without_command=True)
    backend_app.callback()(backend)
    backend_app.command("connect", help=CONNECT_HELP)(connect)
    app.add_typer(backend_app, name="backend")

    concepts_app = typer.Typer(help=CONCEPTS_HELP, no_args_is_help=True)
    concepts_app.command("list")(concepts_list)
    concepts_app.command("score")(concepts_score)
    concepts_app.command("add")(concepts_add)
    app.add_typer(concepts_app, name="concepts")

    signals_app = typer.Typer(help=SIGNALS_HELP, no_args_is_help=True)
    signals_app.command("list")(signals_list)
    signals_app.command("run")(signals_run)
    app.add_typer(signals_app, name="signals")

    app.command("search")(search)
    app.command("similar")(similar)
