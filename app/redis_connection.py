"""One Redis connection held by each process and thread for the shared store's hot commands (MGET and the
Lua scripts): a round trip on redis-py's own connection, the command packed by hiredis, without the pool,
retry and observability layers around every call (about 40-60 µs of CPU each). Made after a fork, never
shared between threads; a dropped connection is made again once, as the client's retry would.

A script can also be sent without waiting for its reply (`send_later`): the reply is read, and handed on,
before anything else this thread sends to the store (`settle`), so what the thread sent keeps its order."""
from __future__ import annotations

import logging
import os
import threading

import redis
from hiredis import pack_command
from redis.commands.core import Script
from redis.exceptions import NoScriptError

logger = logging.getLogger("app.store")


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
            held = self.local.held = (os.getpid(), self.pool.connection_class(**self.pool.connection_kwargs), [])
        return held[1]

    def pending(self) -> bool:
        """Whether this thread sent a script whose reply it has not read."""
        held = getattr(self.local, "held", None)
        return held is not None and bool(held[2]) and held[0] == os.getpid()

    def send_later(self, script: Script, keys, args, then) -> None:
        """Send `script` by its digest without waiting; its reply goes to `then` when `settle` reads it."""
        connection, packed = self.connection(), pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
        try:
            connection.send_packed_command([packed])
        except redis.ConnectionError:  # it disconnected: what it sent before first, then this, on a new one
            self.settle()
            connection.send_packed_command([packed])
        self.local.held[2].append((script, keys, args, then))

    def settle(self) -> None:
        """Read the replies of what `send_later` sent, in order, and hand each to its `then`. A script the
        server did not know is sent again by its source; when the connection is lost before the replies,
        it is made again and each script sent once more (the scripts sent later are safe to repeat)."""
        held = getattr(self.local, "held", None)
        if held is None or held[0] != os.getpid():
            return
        connection, waiting = held[1], held[2]
        while waiting:
            script, keys, args, then = waiting.pop(0)
            try:
                reply = connection.read_response()
            except NoScriptError:
                reply = self.script(script, keys, args)
            except redis.ResponseError:
                logger.exception("store: a script sent without waiting failed")
                continue
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                connection.disconnect()  # the replies of the others will not come either
                lost = [(script, keys, args, then), *waiting]
                del waiting[:]
                for script, keys, args, then in lost:
                    then(self.script(script, keys, args))
                return
            then(reply)

    def command(self, *args):
        self.settle()
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
