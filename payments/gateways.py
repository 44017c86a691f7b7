"""One ``Gateway`` per process and configuration (the SDK client is thread-safe)."""

from __future__ import annotations

import os
import threading

from payments.config import Config
from payments.gateway import Gateway, gateway_from_config

_lock = threading.Lock()
_cache: dict[tuple[object, ...], Gateway] = {}


def gateway_for(config: Config) -> Gateway:
    key = (os.getpid(), config.stripe_secret_key, config.stripe_api_base,
           config.stripe_webhook_secrets)
    found = _cache.get(key)
    if found is None:
        with _lock:
            found = _cache.get(key)
            if found is None:
                found = _cache[key] = gateway_from_config(config)
    return found
