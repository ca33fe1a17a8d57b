"""Reading ``/metrics`` the way Prometheus does: through ``prometheus_client``'s parser."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "scrape"]


class Scrape:
    """One scrape's samples; :meth:`value` adds up those matching a name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(
            value
            for sample, found, value in self.samples
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value ``label`` takes among ``name``'s samples."""
        return {found[label] for sample, found, _ in self.samples if sample == name}


async def scrape(root: str, headers: dict[str, str] | None = None) -> Scrape:
    """GET ``root/metrics`` and parse it (the answer must be a 200)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{root}/metrics", headers=headers) as response,
    ):
        text = await response.text()
        assert response.status == 200, text
        assert response.content_type == "text/plain"
    return Scrape(text)
