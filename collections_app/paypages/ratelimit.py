"""A small fixed-window rate limit for the public pages, on Django's cache (the database
cache table in production, so every web node shares the counters)."""
from __future__ import annotations

import functools
import time

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render


def client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def rate_limited(scope: str):
    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            limit, window = settings.PAYPAGE_RATE_LIMIT
            bucket = int(time.time() // window)
            key = f"ratelimit:{scope}:{client_ip(request)}:{bucket}"
            # add() then incr(): atomic on every cache backend, no read-modify-write race.
            cache.add(key, 0, timeout=window + 5)
            try:
                count = cache.incr(key)
            except ValueError:  # evicted between add and incr
                cache.set(key, 1, timeout=window + 5)
                count = 1
            if count > limit:
                response = render(request, "paypages/429.html", status=429)
                response["Retry-After"] = str(window - int(time.time()) % window)
                return response
            return view(request, *args, **kwargs)
        return wrapper
    return decorator
