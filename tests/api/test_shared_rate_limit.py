"""Requests per minute in Redis (TUNEFORGE_REDIS_URL): every API replica counts into one window per key,
and a Redis that does not answer refuses requests (503) instead of letting them through uncounted."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.api.test_auth import new_key
from tests.system.replicas import REDIS_URL
from tuneforge.api.app import create_app
from tuneforge.settings import Settings


def test_two_apps_on_one_redis_share_each_keys_window(settings: Settings) -> None:
    shared = settings.model_copy(
        update={
            "auth": True,
            "requests_per_minute": 4,
            "redis_url": REDIS_URL,
            "redis_key_prefix": uuid.uuid4().hex,
        }
    )
    first = create_app(shared, workers=0)
    second = create_app(shared, workers=0)  # another replica: its own process state, the same Redis
    headers = {"Authorization": f"Bearer {new_key(first, 'acme')}"}
    with TestClient(first) as a, TestClient(second) as b:
        statuses = [(a if i % 2 else b).get("/v1/models", headers=headers).status_code for i in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_a_redis_that_does_not_answer_is_a_503_not_an_uncounted_request(settings: Settings) -> None:
    down = settings.model_copy(update={"auth": True, "redis_url": "redis://127.0.0.1:1/0"})  # nothing listens
    app = create_app(down, workers=0)
    with TestClient(app) as http:
        response = http.get("/v1/models", headers={"Authorization": f"Bearer {new_key(app, 'acme')}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "limits_unavailable"
