"""A webhook delivery taken once: its de-duplication key and the writes that queue its job, in one round trip.

GitHub redelivers, so a delivery id seen within `DELIVERY_TTL_SECONDS` is a duplicate. Checking the id (`SET NX`)
and then queueing the job took three round trips (the `SET NX`, RQ's `SADD rq:queues`, RQ's job hash and `RPUSH`).
Here the job's writes are staged on a redis-py pipeline that is never executed (RQ's `enqueue_call(pipeline=...)`
records its commands there), and one Lua script runs them only when the delivery id is new:

    KEYS[1]   tfbot:delivery:<id>
    ARGV[1]   the key's TTL in seconds
    ARGV[2..] the staged commands, each as <argument count> <command> <arguments...>
    returns   1: new, the commands ran and the key is set; 0: a duplicate, nothing written

The key is set after the commands, in the same script: a command that fails leaves no key behind, so GitHub's
redelivery of that event is not mistaken for a duplicate. The staged commands touch RQ's keys, which are not
declared in KEYS; that is fine on one Redis server, which is all RQ supports.
"""
from __future__ import annotations

from typing import Any, Callable

import redis
from redis.client import Pipeline

from bot.state import keys

# GitHub may redeliver for days; a week of delivery ids costs little and covers manual redeliveries.
DELIVERY_TTL_SECONDS = 7 * 24 * 3600

_TAKE_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""
# Writes RQ issues to queue a job without dependencies; anything else staged is refused before it reaches Redis.
_STAGED_COMMANDS = frozenset({"SADD", "HSET", "HDEL", "RPUSH", "LPUSH", "EXPIRE", "PERSIST", "ZREM", "DEL"})


class Deliveries:
    """The de-duplication of deliveries; one per Redis connection (the script is registered once)."""

    def __init__(self, conn: redis.Redis) -> None:
        self._redis = conn
        self._take_once = conn.register_script(_TAKE_ONCE)

    def take_once(self, delivery_id: str, stage: Callable[[Pipeline], Any]) -> bool:
        """Run the writes `stage` records on the pipeline it is given, only if `delivery_id` is new; one round trip.

        Returns True when the delivery was new (its writes ran, its key is set for a week), False for a duplicate
        (nothing written). Raises redis.RedisError when Redis fails (then nothing is written, the key included),
        ValueError when `stage` records a command other than the writes RQ makes to queue a job.
        """
        pipe = self._redis.pipeline(transaction=False)
        try:
            stage(pipe)
            staged: list[Any] = []
            for command, _options in pipe.command_stack:
                name = str(command[0]).upper()
                if name not in _STAGED_COMMANDS:
                    raise ValueError(f"{name} cannot be staged for a delivery: only the writes that queue a job")
                staged += [len(command), *command]
        finally:
            pipe.reset()
        return bool(self._take_once(keys=[keys.delivery(delivery_id)], args=[DELIVERY_TTL_SECONDS, *staged]))
