"""The ledger's persistence: SQLAlchemy tables, the posting SQL and database helpers.

Importing it makes psycopg decode every `json` and `jsonb` value it reads, on every
connection, with `canonical_json.loads`: orjson where that gives the standard library's
value, the standard library where not (about 1 µs for a small object against 3.8).
Posting reads each transfer's metadata, the sealer each audit record's details and a
long poll each transfer it answers with.
"""

from psycopg.types.json import set_json_loads

from ledger_core.canonical_json import loads

set_json_loads(loads)
