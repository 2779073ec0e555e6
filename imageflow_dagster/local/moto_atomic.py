"""DynamoDB's guarantee, restored in moto: one request at a time per table store.

moto serves requests on concurrent threads without a lock, so two conditional updates of one item can both pass
their condition; measured here with both cores busy, 16 threads claiming 50 jobs produced duplicate winners in 4
runs of 5. DynamoDB evaluates a condition and applies the write atomically, and imageflow's claims rely on that.
Serializing moto's DynamoDB request handling (pinned moto 5.2.5) gives the local stack and the tests the same
semantics; it changes no answer moto gives.
"""

import functools
import threading

from moto.dynamodb.responses import DynamoHandler

_DYNAMODB_LOCK = threading.RLock()


def serialize_dynamodb_requests() -> None:
    """Idempotent; call in the process that runs the moto server, before it serves."""
    if getattr(DynamoHandler.call_action, "serialized", False):
        return
    unserialized = DynamoHandler.call_action

    @functools.wraps(unserialized)
    def call_action(self):
        with _DYNAMODB_LOCK:
            return unserialized(self)

    call_action.serialized = True
    DynamoHandler.call_action = call_action
