"""The intent service's FastStream app: answers its commands over Kafka."""

from __future__ import annotations

from faststream import FastStream

from shared.service import Runtime, build_app
from shared.settings import Settings


def create_app(settings: Settings) -> tuple[FastStream, Runtime]:
    return build_app("intent", settings)
