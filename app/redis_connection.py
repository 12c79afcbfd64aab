"""One Redis connection held by each process and thread for the shared store's hot commands (MGET and the
Lua scripts): a round trip on redis-py's own connection, the command packed by hiredis, without the pool,
retry and observability layers around every call (about 40-60 µs of CPU each). Made after a fork, never
shared between threads; a dropped connection is made again once, as the client's retry would."""
from __future__ import annotations

import os
import threading

import redis
from hiredis import pack_command
from redis.commands.core import Script
from redis.exceptions import NoScriptError


class HeldConnection:
    """Commands on this process's and thread's own connection, made with the settings of `client`'s pool."""

    def __init__(self, client: redis.Redis):
        self.pool = client.connection_pool
        self.local = threading.local()

    def connection(self):
        held = getattr(self.local, "held", None)
        if held is None or held[0] != os.getpid():  # a connection made before a fork is the parent's
            # made beside the pool, not taken from it: the pool's limit is for its own callers, and a
            # thread's connection closes when the thread ends and its local goes
            held = self.local.held = (os.getpid(), self.pool.connection_class(**self.pool.connection_kwargs))
        return held[1]

    def command(self, *args):
        connection = self.connection()
        try:
            return self._round_trip(connection, args)
        except redis.ConnectionError:  # e.g. the server restarted since: once more (it reconnects, disconnected)
            return self._round_trip(connection, args)

    def script(self, script: Script, keys, args):
        """The script by its digest, or by its source when the server does not know it (then it does)."""
        try:
            return self.command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.command("EVAL", script.script, len(keys), *keys, *args)

    @staticmethod
    def _round_trip(connection, args):
        packed = pack_command(args)  # str, bytes, int and float, as the store sends
        try:
            connection.send_packed_command([packed])
            return connection.read_response()
        except redis.ResponseError:  # the reply was read whole: the connection is fine
            raise
        except BaseException:  # a reply cut short leaves the connection out of step
            connection.disconnect()
            raise
