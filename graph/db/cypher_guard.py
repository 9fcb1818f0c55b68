"""Raw Cypher from people, run safely: read-only as the server plans it, bounded, streamed.

Read-only mode (the default) does not trust the text. It asks the server for the plan
(`EXPLAIN <statement>`, nothing runs) and runs the statement only when

- the summary's query type is read-only (`r`): no write, no schema change, no system command;
- no operator of the plan loads external data (`LoadCSV`) or is an administration command
  (`TERMINATE TRANSACTIONS`, `SHOW TRANSACTIONS`/`SETTINGS`/`USERS`, anything on `system`);
- every procedure it calls is in `ALLOWED_PROCEDURES`, and it calls no user-defined function
  (plugins such as APOC can fetch URLs or change state from inside a "read").

A statement the server cannot plan is refused. The statement then runs in an explicit read
transaction, so the server refuses any write it might still attempt.

Every run is bounded: a transaction timeout (the server stops the query) and a row limit (the
client stops reading; rows are yielded as they arrive, never collected). Explicit transactions are
not retried by the driver, so a query that fails for a reason that will not go away (timeout,
memory limit, syntax) is reported once; only a lost connection before the first row is retried.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from neo4j import READ_ACCESS, WRITE_ACCESS, Driver, Query, Session
from neo4j.exceptions import ClientError, Neo4jError, ServiceUnavailable, SessionExpired

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ROWS = 10_000

# Read-only procedures a query may call: schema introspection and index look-ups.
# Not db.clearQueryCaches, dbms.*, or anything that changes state or reads configuration.
ALLOWED_PROCEDURES = frozenset({
    "db.labels", "db.relationshipTypes", "db.propertyKeys",
    "db.schema.visualization", "db.schema.nodeTypeProperties", "db.schema.relTypeProperties",
    "db.index.fulltext.queryNodes", "db.index.fulltext.queryRelationships",
    "db.index.vector.queryNodes", "db.index.vector.queryRelationships",
})
# SHOW commands that only describe the schema or what can be called; every other SHOW/TERMINATE
# (transactions, settings, users, databases, servers) is an administration command.
ALLOWED_SHOW_OPERATORS = frozenset({"ShowIndexes", "ShowConstraints", "ShowFunctions", "ShowProcedures"})
REFUSED_OPERATORS = frozenset({"LoadCSV", "AdministrationCommand", "SystemProcedureCall"})
ADMIN_OPERATOR_PREFIXES = ("Show", "Terminate", "Create", "Drop", "Alter", "Grant", "Deny", "Revoke",
                           "Rename", "Start", "Stop", "Enable", "Deallocate", "Reallocate")

# Server codes of a write refused inside a read transaction.
_WRITE_REFUSED = {"Neo.ClientError.Statement.AccessMode", "Neo.ClientError.Security.Forbidden"}
_TIMEOUT_CODES = {"Neo.ClientError.Transaction.TransactionTimedOut",
                  "Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration"}
_CALL = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)\s*\(")


class ReadOnlyError(PermissionError):
    """The statement is not read-only as the server plans it (or cannot be planned)."""


class QueryTimeoutError(RuntimeError):
    """The server stopped the query at its transaction timeout."""


@dataclass(frozen=True)
class PlanOperator:
    name: str  # without the "@database" suffix
    details: str


def plan_operators(plan: Mapping[str, Any] | None) -> Iterator[PlanOperator]:
    """Every operator of a plan (summary.plan), depth first."""
    if not plan:
        return
    name = str(plan.get("operatorType", "")).split("@", 1)[0]
    args = plan.get("args") or plan.get("arguments") or {}
    yield PlanOperator(name, str(args.get("Details", "")))
    for child in plan.get("children") or ():
        yield from plan_operators(child)


def plan_violations(query_type: str | None, plan: Mapping[str, Any] | None,
                    user_functions: frozenset[str] = frozenset()) -> list[str]:
    """Why a planned statement is not a plain read (empty when it is)."""
    reasons = []
    if query_type != "r":
        kind = {"w": "writes", "rw": "reads and writes", "s": "changes the schema or runs a system command"}
        reasons.append(f"it {kind.get(query_type or '', f'is of query type {query_type!r}')}")
    for op in plan_operators(plan):
        if op.name == "LoadCSV":
            reasons.append("it loads external data (LOAD CSV)")
        elif op.name in REFUSED_OPERATORS or (op.name.startswith(ADMIN_OPERATOR_PREFIXES)
                                             and op.name not in ALLOWED_SHOW_OPERATORS):
            reasons.append(f"it is an administration command ({op.name})")
        elif op.name == "ProcedureCall":
            called = op.details.split("(", 1)[0].strip()
            if called not in ALLOWED_PROCEDURES:
                reasons.append(f"it calls procedure {called}, which is not on the read-only allowlist")
        for name in _CALL.findall(op.details):
            if name in user_functions:
                reasons.append(f"it calls the user-defined function {name}")
    return list(dict.fromkeys(reasons))


def user_defined_functions(session: Session) -> frozenset[str]:
    """Functions a plugin added (built-in functions only compute values)."""
    result = session.run("SHOW FUNCTIONS YIELD name, isBuiltIn WHERE NOT isBuiltIn RETURN name")
    return frozenset(r["name"] for r in result)


def check_read_only(session: Session, text: str, params: Mapping[str, Any]) -> None:
    """Raise ReadOnlyError (one line, with --write advice) unless the plan is a plain read."""
    try:
        # The statement is what the user asked to run; EXPLAIN plans it without running it.
        summary = session.run(Query("EXPLAIN " + text), dict(params)).consume()
    except ClientError as exc:
        if exc.code and exc.code.startswith("Neo.ClientError.Statement.") and exc.code.endswith(
                ("SyntaxError", "ParameterMissing", "TypeError", "SemanticError")):
            raise  # a plain mistake in the statement: the server's own message says what is wrong
        raise ReadOnlyError(f"refused in read-only mode: the server cannot plan this statement as a query "
                            f"({exc.code}). Pass --write to run it anyway.") from exc
    reasons = plan_violations(summary.query_type, summary.plan, user_defined_functions(session))
    if reasons:
        raise ReadOnlyError(f"refused in read-only mode: {'; '.join(reasons)}. Pass --write to run it anyway.")


class CypherStream:
    """Rows of one statement as they arrive; `truncated` is True once the row limit cut it short.

        stream = CypherStream(driver, "MATCH (g:Gene) RETURN g.symbol AS s", max_rows=100)
        for row in stream: ...
        stream.truncated, stream.columns
    """

    def __init__(self, driver: Driver, text: str, params: Mapping[str, Any] | None = None, *,
                 write: bool = False, check_plan: bool = True, database: str | None = None,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S, max_rows: int | None = DEFAULT_MAX_ROWS):
        self.driver, self.text, self.params = driver, text, dict(params or {})
        self.write, self.check_plan, self.database = write, check_plan, database
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.max_rows = max_rows if max_rows and max_rows > 0 else None
        self.columns: list[str] = []
        self.rows = 0
        self.truncated = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for attempt in range(2):
            try:
                yield from self._run()
                return
            except (ServiceUnavailable, SessionExpired):
                # A lost connection is retried once, and only if nothing was yielded yet.
                if self.rows or attempt:
                    raise

    def _run(self) -> Iterator[dict[str, Any]]:
        mode = WRITE_ACCESS if self.write else READ_ACCESS
        with self.driver.session(database=self.database, default_access_mode=mode) as session:
            try:
                if self.write:
                    # Auto-commit, so `CALL {…} IN TRANSACTIONS` works; the driver does not retry it.
                    yield from self._rows(session.run(Query(self.text, timeout=self.timeout_s), self.params))
                    return
                if self.check_plan:
                    check_read_only(session, self.text, self.params)
                with session.begin_transaction(timeout=self.timeout_s) as tx:
                    yield from self._rows(tx.run(self.text, self.params))
            except ClientError as exc:
                if exc.code in _WRITE_REFUSED:
                    raise ReadOnlyError(f"refused in read-only mode: this statement writes ({exc.message}). "
                                        "Pass --write to allow writes.") from exc
                if exc.code in _TIMEOUT_CODES:
                    raise QueryTimeoutError(
                        f"the query was stopped at its {self.timeout_s:g} s timeout"
                        + (f" after {self.rows:,} rows" if self.rows else "")
                        + "; raise it with --timeout SECONDS") from exc
                raise

    def _rows(self, result) -> Iterator[dict[str, Any]]:
        self.columns = list(result.keys())
        for record in result:
            if self.max_rows is not None and self.rows >= self.max_rows:
                self.truncated = True  # a row beyond the limit exists; stop reading (the rest is discarded)
                return
            self.rows += 1
            yield record.data()


def run_cypher(driver: Driver, text: str, params: Mapping[str, Any] | None = None, *, write: bool = False,
               database: str | None = None, timeout_s: float | None = DEFAULT_TIMEOUT_S,
               max_rows: int | None = None) -> list[dict[str, Any]]:
    """Raw Cypher as a list (for code and tests; the CLI streams). Read-only unless write=True:
    refused with ReadOnlyError when the plan is not a plain read, then run in a read transaction."""
    return list(CypherStream(driver, text, params, write=write, database=database, timeout_s=timeout_s,
                             max_rows=max_rows))


def one_line(exc: Neo4jError) -> str:
    """A server error as one line: code and the first line of its message."""
    message = (exc.message or str(exc)).strip().splitlines()
    return f"{exc.code}: {message[0] if message else ''}"


INT64 = (-(2 ** 63), 2 ** 63 - 1)


def check_values(values: Any, where: str = "value") -> None:
    """ValueError (one line) for what Bolt cannot carry: text that is not valid Unicode (e.g. a
    non-UTF-8 command-line argument) and integers beyond 64 bits."""
    if isinstance(values, str):
        try:
            values.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} is not valid UTF-8 text (undecodable bytes in the argument)") from None
    elif isinstance(values, bool) or values is None or isinstance(values, float):
        return
    elif isinstance(values, int):
        if not INT64[0] <= values <= INT64[1]:
            raise ValueError(f"{where} is an integer beyond 64 bits ({len(str(abs(values)))} digits); Neo4j "
                             "integers are 64-bit: pass it as a string instead")
    elif isinstance(values, Mapping):
        for key, value in values.items():
            check_values(key, f"{where} key")
            check_values(value, where)
    elif isinstance(values, list | tuple):
        for value in values:
            check_values(value, where)
