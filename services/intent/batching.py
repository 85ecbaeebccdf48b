"""Classify concurrent messages together: for one message the classifier's fixed cost dominates,
so messages that arrive in the same event-loop turn share one call (32 at once cost about as much
as three alone). A lone message is classified at once, with no added wait."""

from __future__ import annotations

import asyncio

from services.intent.domain.classifier import IntentClassifier

Prediction = tuple[str, float]


class BatchingClassifier:
    def __init__(self, classifier: IntentClassifier, max_batch: int = 64) -> None:
        self._classifier = classifier
        self._max_batch = max_batch
        self._waiting: list[tuple[str, asyncio.Future[Prediction]]] = []
        self._scheduled = False

    async def predict(self, text: str) -> Prediction:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        self._waiting.append((text, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)  # after the messages already in this turn have queued
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._waiting:
            batch, self._waiting = (
                self._waiting[: self._max_batch],
                self._waiting[self._max_batch :],
            )
            try:
                predictions = self._classifier.predict_many([text for text, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), prediction in zip(batch, predictions, strict=True):
                if not future.done():
                    future.set_result(prediction)
