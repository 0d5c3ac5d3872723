"""The promotion gate: a challenger replaces the champion only if its quantiles are
calibrated and it is better on the same time-ordered holdout by a configured margin."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Relative nRMSE improvement a challenger must show: 1 % of the champion's error.
DEFAULT_MARGIN = 0.01
# How far the challenger's holdout coverage of its outer quantiles (P10-P90: nominally
# 80 %) may stray from nominal, in points of probability, for it to be promoted.
DEFAULT_COVERAGE_BAND = 0.05


@dataclass(frozen=True)
class Coverage:
    """The challenger's outermost quantiles on the holdout: how often the measured
    value fell between them, and how often it should (their levels' difference)."""

    observed: float
    nominal: float
    band: float = DEFAULT_COVERAGE_BAND

    @property
    def calibrated(self) -> bool:
        return abs(self.observed - self.nominal) <= self.band

    def describe(self) -> str:
        return (
            f"holdout coverage {self.observed:.1%} of its {self.nominal:.0%} interval "
            f"(allowed {self.nominal - self.band:.0%} to {self.nominal + self.band:.0%})"
        )


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    challenger_version: str
    challenger_nrmse: float
    champion_version: str | None
    champion_nrmse: float | None
    margin: float
    holdout_window: str
    holdout_rows: int
    coverage: Coverage | None

    @property
    def verdict(self) -> str:
        return "promoted" if self.promote else "refused"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "verdict": self.verdict}


def decide(
    challenger_version: str,
    challenger_nrmse: float,
    champion_version: str | None,
    champion_nrmse: float | None,
    margin: float,
    holdout_window: str,
    holdout_rows: int,
    coverage: Coverage | None,
) -> GateDecision:
    """Pure decision from two scores on the same rows and the challenger's coverage
    (None: it has no quantiles); the reason says which rule fired."""
    if not 0 <= margin < 1:
        raise ValueError(f"gate margin must be in [0, 1), got {margin}")

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote=promote,
            reason=reason,
            challenger_version=challenger_version,
            challenger_nrmse=challenger_nrmse,
            champion_version=champion_version,
            champion_nrmse=champion_nrmse,
            margin=margin,
            holdout_window=holdout_window,
            holdout_rows=holdout_rows,
            coverage=coverage,
        )

    if coverage is None:
        return decision(False, "the challenger has no quantiles: retrain it with this code")
    if not coverage.calibrated:
        return decision(False, f"quantiles not calibrated: {coverage.describe()}")
    if champion_version is None or champion_nrmse is None:
        return decision(True, "no champion yet: first model")
    if challenger_version == champion_version:
        return decision(False, "already the champion")
    required = champion_nrmse * (1 - margin)
    improvement = 1 - challenger_nrmse / champion_nrmse
    if challenger_nrmse <= required:
        reason = (
            f"nRMSE {challenger_nrmse:.4f} beats champion v{champion_version} "
            f"({champion_nrmse:.4f}) by {improvement:.2%}, margin {margin:.2%}"
        )
        return decision(True, reason)
    reason = (
        f"nRMSE {challenger_nrmse:.4f} is not better than champion v{champion_version} "
        f"({champion_nrmse:.4f}) by the required {margin:.2%} "
        f"(improvement {improvement:.2%}, needed nRMSE <= {required:.4f})"
    )
    return decision(False, reason)
