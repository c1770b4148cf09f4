"""Bounds on every number and string the ledger accepts.

Points and money are int64 on the wire; the bounds keep every sum far from
overflow so arithmetic stays exact.
"""

INT64_MAX = 2**63 - 1
# One request moves at most a trillion points or a trillion major units.
MAX_POINTS_PER_REQUEST = 10**12
MAX_AMOUNT_MINOR = 10**15
# A balance may never leave this range (checked on every posting).
MAX_ABS_BALANCE = 10**17

MAX_ID_LENGTH = 128
MAX_REASON_LENGTH = 500
MAX_ORDER_LINES = 500
MAX_LINE_QUANTITY = 1_000_000
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# Clock skew tolerated between a till and the server for occurred_at.
MAX_FUTURE_SKEW_SECONDS = 300
