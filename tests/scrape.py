"""A scrape of `/metrics`, read as the tests need it: sample values by name and labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    text: str

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named `sample` whose labels include `labels` (0 if none)."""
        total = 0.0
        for family in text_string_to_metric_families(self.text):
            for found in family.samples:
                if found.name == sample and labels.items() <= found.labels.items():
                    total += found.value
        return total

    def has(self, sample: str) -> bool:
        return any(
            found.name == sample
            for family in text_string_to_metric_families(self.text)
            for found in family.samples
        )


def delta(before: Scrape, after: Scrape, sample: str, **labels: str) -> float:
    return after.value(sample, **labels) - before.value(sample, **labels)
